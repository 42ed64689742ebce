// The task controller: drives every ECS task in the store through Fargate's
// lifecycle by what really happens, level-triggered like the network
// controller — on start, on every change (kick()), and every second:
//
//   PROVISIONING   the task's ENI is being wired   → its ENI is available
//   PENDING        the image is resolved and its layers unpacked, the log
//                  group checked, the containers started (runc, under a
//                  pier-monitor each)                → every container runs
//                  With enableExecuteCommand, pier-exec-agent and pier's CA
//                  are bound read-only into each container under
//                  /ecs-execute-command-<uuid>/, and its monitor runs the
//                  agent inside as root (containers[].managedAgents).
//   ACTIVATING     → RUNNING (no load balancers to register with)
//   DEACTIVATING   desiredStatus became STOPPED
//   STOPPING       SIGTERM to each container, SIGKILL after stopTimeout
//   DEPROVISIONING every container exited: logs drained, containers removed,
//                  the ENI deleted                   → STOPPED
//
// An essential container that exits stops the task (EssentialContainerExited);
// an image that is missing or for another architecture, or a missing log
// group, fails it (TaskFailedToStart) with the error Fargate gives.
//
// Nothing is held in memory that a restart would lose: the state is the store
// plus each container's monitor files (runtime/container.h), so a pierd that
// was killed re-adopts its running containers and reads the exit codes of
// those that ended meanwhile. Containers under the runtime's root that no task
// owns any more are stopped and removed.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "controllers/network.h"
#include "runtime/container.h"
#include "runtime/images.h"
#include "services/ecs/tasks.h"
#include "store/store.h"

namespace pier::controllers {

class TaskController {
 public:
  struct Config {
    std::string home;                         // task files go under HOME/tasks/<id>/
    std::string tini = "/usr/bin/tini-static";
    // ECS Exec: the agent bound into exec-enabled containers and the CA
    // bundle it trusts (pier's). Without an agent, exec-enabled tasks run
    // without one (their managed agent stays PENDING).
    std::string exec_agent;
    std::string ca_bundle;
  };
  TaskController(store::Store& store, NetworkController& network, runtime::ImageStore& images,
                 runtime::Runtime& runtime, Config config);
  ~TaskController();  // stops the thread; containers keep running

  // Runs after a pass that deleted ENIs (the network controller's kick).
  void set_on_network_change(std::function<void()> f) { on_network_change_ = std::move(f); }
  void start();
  void kick();
  // One pass, now, on the caller's thread.
  Status reconcile();

 private:
  void run();
  Status step(svc::ecs::TaskRow& task, double now, bool& network_changed);
  Status start_containers(svc::ecs::TaskRow& task, double now);
  Status drain_logs(svc::ecs::TaskRow& task, bool final);
  std::string task_cgroup(const std::string& task_id) const;
  Status write_task_files(const svc::ecs::TaskRow& task, const std::string& dir);

  store::Store& store_;
  NetworkController& network_;
  runtime::ImageStore& images_;
  runtime::Runtime& runtime_;
  Config config_;
  std::function<void()> on_network_change_;
  std::mutex mu_;
  std::mutex reconcile_mu_;
  std::condition_variable cv_;
  bool dirty_ = true, stop_ = false;
  double last_purge_ = 0;  // under reconcile_mu_
  std::thread thread_;
};

}  // namespace pier::controllers
