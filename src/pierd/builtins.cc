#include "pierd/builtins.h"

#include "services/ecs/ecs.h"
#include "services/iam/iam.h"
#include "services/sts/sts.h"

namespace pier::pierd {

struct Builtins {
  Builtins(store::Store& store, const std::string& model_dir, time::Clock clock)
      : iam(store, clock, svc::iam::Config{}),
        identities(store, iam),
        sts(store, iam, clock),
        ecs(store),
        dispatcher(model_dir, &identities, clock) {}
  svc::iam::IamService iam;
  svc::iam::Identities identities;
  svc::sts::StsService sts;
  svc::ecs::EcsService ecs;
  aws::Dispatcher dispatcher;
};

Result<std::unique_ptr<Services>> Services::create(store::Store& store,
                                                   const std::string& model_dir,
                                                   time::Clock clock) {
  std::unique_ptr<Services> s(new Services());
  s->b_ = std::make_unique<Builtins>(store, model_dir, clock);
  auto& d = s->b_->dispatcher;
  PIER_TRY(d.add_service(s->b_->sts.definition()));
  PIER_TRY(d.add_service(s->b_->iam.definition()));
  PIER_TRY(d.add_service(s->b_->ecs.definition()));
  return s;
}

Services::~Services() = default;

aws::Dispatcher& Services::dispatcher() { return b_->dispatcher; }

}  // namespace pier::pierd
