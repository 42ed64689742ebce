// The ECS control plane: clusters, task definitions and tags. Tasks and
// services come with the task controller (issue 5). Thread-safe: all state
// is in the store.
#pragma once

#include <functional>

#include "aws/dispatcher.h"
#include "exec/broker.h"
#include "store/store.h"

namespace pier::svc::ecs {

class EcsService {
 public:
  // on_change runs after every call that changed a task or service (the
  // controllers' kick).
  // broker: where ExecuteCommand starts its sessions (none: exec refused).
  explicit EcsService(store::Store& store, std::function<void()> on_change = {},
                      exec::Broker* broker = nullptr);
  aws::ServiceDef definition();

 private:
  store::Store& store_;
  std::function<void()> on_change_;
  exec::Broker* broker_;
};

// ExecuteCommand (services/ecs/exec.cc).
void add_exec_actions(aws::ServiceDef& def, store::Store& store, exec::Broker* broker);
// ECS Exec's SSM target for a task's container, ecs:CLUSTER_TASKID_RUNTIMEID,
// and back to the task id ("" when it is not such a target).
std::string exec_target(const std::string& cluster_arn, const std::string& task_arn, const std::string& runtime_id);
std::string exec_target_task(std::string_view target);
struct ExecTarget {
  std::string cluster, task;  // both "" when it is not such a target
};
ExecTarget parse_exec_target(std::string_view target);

// Fargate's task sizes: whether cpu units and memory MiB form a valid pair.
bool fargate_size_valid(int64_t cpu, int64_t memory);
// "256", "0.25 vCPU", "1024 CPU" → cpu units; "512", "0.5 GB", "512 MiB" → MiB.
std::optional<int64_t> parse_cpu(std::string_view s);
std::optional<int64_t> parse_memory(std::string_view s);

}  // namespace pier::svc::ecs
