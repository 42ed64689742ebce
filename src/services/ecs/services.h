// ECS services: CreateService, UpdateService, DeleteService,
// DescribeServices, ListServices, and the scheduler that keeps each
// service's tasks at its desired count (called by the task controller on
// every pass).
#pragma once

#include <functional>

#include "aws/dispatcher.h"
#include "store/store.h"

namespace pier::svc::ecs {

void add_service_actions(aws::ServiceDef& def, store::Store& store, std::function<void()> on_change);

// One pass of the service scheduler over every service of every account:
// starts and stops tasks (through create_task / request_stop of tasks.h),
// rolls deployments, writes events and counts. Returns whether it changed
// anything (then the caller runs its task pass again soon).
Result<bool> schedule_services(store::Store& store, double now);

}  // namespace pier::svc::ecs
