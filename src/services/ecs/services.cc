#include "services/ecs/services.h"

namespace pier::svc::ecs {

void add_service_actions(aws::ServiceDef&, store::Store&, std::function<void()>) {}

Result<bool> schedule_services(store::Store&, double) { return false; }

}  // namespace pier::svc::ecs
