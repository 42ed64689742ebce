#include "pierd/builtins.h"
#include "pierd/builtins_impl.h"
#include "pierd/ps_api.h"

#include "services/ec2/ec2.h"
#include "services/ecs/ecs.h"
#include "services/iam/iam.h"
#include "services/logs/logs.h"
#include "services/ssm/journal.h"
#include "services/ssm/ssm.h"
#include "services/sts/sts.h"

namespace pier::pierd {


Result<std::unique_ptr<Services>> Services::create(store::Store& store,
                                                   const std::string& model_dir,
                                                   time::Clock clock, std::string public_url,
                                                   std::function<void()> on_network_change) {
  std::unique_ptr<Services> s(new Services());
  s->b_ = std::make_unique<Builtins>(store, model_dir, clock, std::move(public_url),
                                     std::move(on_network_change));
  auto& d = s->b_->dispatcher;
  PIER_TRY(d.add_service(s->b_->sts.definition()));
  PIER_TRY(d.add_service(s->b_->iam.definition()));
  PIER_TRY(d.add_service(s->b_->ecs.definition()));
  PIER_TRY(d.add_service(s->b_->logs.definition()));
  PIER_TRY(d.add_service(s->b_->ec2.definition()));
  PIER_TRY(d.add_service(s->b_->ssm.definition()));
  for (auto& r : s->b_->ssm.channel_routes()) d.add_signed(std::move(r));
  add_ps_route(d, store, s->b_->broker);
  return s;
}

Services::~Services() = default;

aws::Dispatcher& Services::dispatcher() { return b_->dispatcher; }

http::Upgrade Services::upgrade(http::Request& req, const http::Peer& peer) {
  auto auth = [this](http::Request& r, const http::Peer& p, std::string_view action) -> Status {
    PIER_ASSIGN(auto ctx, b_->dispatcher.authenticate(r, p));
    return b_->dispatcher.authorize_action(ctx, action, "*");
  };
  return b_->broker.upgrade(req, peer, auth);
}

}  // namespace pier::pierd
