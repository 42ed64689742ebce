// ECS tasks in the store: the records RunTask, StopTask and the service
// scheduler make, and the task controller (controllers/tasks.h) drives
// through the lifecycle by what really happens.
//
// A task is one row of ecs_tasks; its doc is the Task as DescribeTasks shows
// it plus members whose names begin with "_" (pier's own, never shown): the
// task definition as it was when the task started ("_TaskDefinition"), its
// ENI ("_Eni"), the secret path of its credentials ("_CredentialsId"), the
// task role, and the controller's bookkeeping (stop deadline, log offsets).
#pragma once

#include <boost/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aws/dispatcher.h"
#include "store/db.h"
#include "store/store.h"

namespace pier::svc::ecs {

namespace json = boost::json;

// What a new task is made from (RunTask or a service's deployment).
struct NewTask {
  std::string account, region;
  std::string cluster;             // name
  json::object task_definition;    // as stored, ACTIVE or not
  json::object awsvpc;             // networkConfiguration.awsvpcConfiguration
  json::object overrides;          // TaskOverride
  json::array tags;
  std::string started_by, group, service;  // service: "" unless a service's task
  bool enable_execute_command = false;
  std::string platform_version = "LATEST";
  double now = 0;
};

// Checks the network configuration and the overrides, makes the task's ENI
// and the task record (PROVISIONING / RUNNING). AWS's errors; nothing is
// made when one is returned (the caller's transaction rolls back).
Result<json::object> create_task(store::Db& db, const NewTask& t);

// desiredStatus → STOPPED with a stopCode and reason (the controller stops
// the containers). No-op for a task already stopping or stopped.
Status request_stop(store::Db& db, json::object& task, const std::string& stop_code,
                    const std::string& reason, double now);
void request_stop(json::object& task, const std::string& stop_code, const std::string& reason, double now);

struct TaskRow {
  std::string account, region, id;
  json::object doc;
};
// Every task whose lastStatus is not STOPPED, oldest first.
Result<std::vector<TaskRow>> live_tasks(store::Db& db);
Result<std::optional<TaskRow>> load_task(store::Db& db, const std::string& account, const std::string& region,
                                         const std::string& id);
Status save_task(store::Db& db, const TaskRow& t);
// The task as AWS shows it (pier's own members removed).
json::object task_view(const json::object& doc);

// The task id of an ARN or id ("" if it is neither).
std::string task_id_of(std::string_view ref);

// RunTask, StartTask (refused: no container instances), StopTask,
// DescribeTasks, ListTasks. on_change: after every change (the controllers' kick).
void add_task_actions(aws::ServiceDef& def, store::Store& store, std::function<void()> on_change);

}  // namespace pier::svc::ecs
