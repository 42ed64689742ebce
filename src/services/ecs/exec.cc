// ECS Exec: ExecuteCommand. The task's containers run pier-exec-agent (the
// task controller starts it, as the ECS agent starts AWS's SSM agent); it
// holds a control channel to ssmmessages for the target
// ecs:CLUSTER_TASKID_RUNTIMEID through whatever path the task's network
// gives it. ExecuteCommand checks the request as AWS does and starts an SSM
// session on that target; the AWS CLI hands the session to the plugin.
#include <fmt/format.h>

#include "aws/arn.h"

#include "services/ecs/ecs.h"
#include "services/ecs/internal.h"
#include "services/ecs/tasks.h"
#include "services/ssm/ssm.h"
#include "services/util.h"

namespace pier::svc::ecs {

using namespace internal;
using aws::RequestContext;
using store::Db;

namespace {

constexpr const char* kNotEnabled =
    "The execute command failed because execute command was not enabled when the task was run or the "
    "execute command agent isn\u2019t running. Wait and try again or run a new task with execute command "
    "enabled and try again.";
constexpr const char* kNotConnected = "The execute command failed due to an internal error. Try again later.";

}  // namespace

ExecTarget parse_exec_target(std::string_view target) {
  if (!target.starts_with("ecs:")) return {};
  auto last = target.rfind('_');
  if (last == std::string_view::npos || last < 5) return {};
  auto before = target.rfind('_', last - 1);
  if (before == std::string_view::npos || before < 4) return {};
  return ExecTarget{std::string(target.substr(4, before - 4)), std::string(target.substr(before + 1, last - before - 1))};
}

std::string exec_target_task(std::string_view target) { return parse_exec_target(target).task; }

std::string exec_target(const std::string& cluster_arn, const std::string& task_arn, const std::string& runtime_id) {
  auto last = [](const std::string& arn) { return arn.substr(arn.rfind('/') + 1); };
  return fmt::format("ecs:{}_{}_{}", last(cluster_arn), last(task_arn), runtime_id);
}

void add_exec_actions(aws::ServiceDef& def, store::Store& store, exec::Broker* broker) {
  // ecs:ExecuteCommand on the task, with the condition keys AWS gives it.
  auto resource = [](const RequestContext& ctx, const json::object& in) {
    aws::Authz a;
    std::string ref = get_string(in, "cluster", "default");
    auto name = cluster_name(ctx, ref);
    std::string cluster = name.ok() ? *name : ref;
    std::string task = get_string(in, "task");
    if (!task.starts_with("arn:"))
      task = aws::make_arn("ecs", ctx.region, ctx.principal.account, fmt::format("task/{}/{}", cluster, task));
    a.resource = task;
    a.context["ecs:cluster"] = {cluster_arn(ctx, cluster)};
    a.context["ecs:task"] = {task};
    if (auto c = get_string(in, "container"); !c.empty()) a.context["ecs:container-name"] = {c};
    return a;
  };
  def.actions.push_back({"ExecuteCommand", [&store, broker](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string command = get_string(in, "command");
    if (command.empty()) return invalid("Command cannot be empty.");
    const auto* interactive = in.if_contains("interactive");
    if (!interactive || !interactive->is_bool() || !interactive->as_bool())
      return invalid("Interactive is the only mode supported currently.");
    struct Found {
      json::object task, container, cluster;
      std::optional<exec::Transcript> transcript;
    };
    PIER_ASSIGN(Found f, store.read([&](Db& db) -> Result<Found> {
      Found f;
      PIER_ASSIGN(f.cluster, require_active_cluster(db, ctx, get_string(in, "cluster", "default")));
      std::string id = task_id_of(get_string(in, "task"));
      std::optional<TaskRow> row;
      if (!id.empty()) {
        PIER_ASSIGN(row, load_task(db, ctx.principal.account, ctx.region, id));
      }
      if (!row || get_string(row->doc, "clusterArn") != get_string(f.cluster, "clusterArn"))
        return invalid("The referenced task was not found.");
      f.task = row->doc;
      const auto* cs = get_array(f.task, "containers");
      std::string want = get_string(in, "container");
      const json::object* c = nullptr;
      if (cs) {
        if (want.empty() && cs->size() > 1)
          return invalid("The task has more than one container; specify a container name.");
        for (const auto& cv : *cs)
          if (cv.is_object() && (want.empty() || get_string(cv.as_object(), "name") == want)) {
            c = &cv.as_object();
            break;
          }
      }
      if (!c) return invalid(fmt::format("The container {} does not exist in the task.", want));
      f.container = *c;
      // Logging (the cluster's executeCommandConfiguration): DEFAULT is the
      // container's awslogs group, OVERRIDE the configured one, NONE nothing.
      json::object conf;
      if (const auto* cc = f.cluster.if_contains("configuration"); cc && cc->is_object())
        if (const auto* e = cc->as_object().if_contains("executeCommandConfiguration"); e && e->is_object())
          conf = e->as_object();
      std::string logging = get_string(conf, "logging", "DEFAULT");
      exec::Transcript t{ctx.principal.account, ctx.region, ""};
      if (logging == "DEFAULT") {
        t.log_group = get_string(f.container, "_LogGroup");
        t.region = get_string(f.container, "_LogRegion", ctx.region);
      } else if (logging == "OVERRIDE") {
        if (const auto* lc = conf.if_contains("logConfiguration"); lc && lc->is_object())
          t.log_group = get_string(lc->as_object(), "cloudWatchLogGroupName");
      }
      if (!t.log_group.empty()) f.transcript = t;
      return f;
    }));
    // Exec was on when the task ran, and its agent runs (the managed agent
    // the task controller reports); RUNNING tasks only.
    bool agent_running = false;
    if (const auto* ma = get_array(f.container, "managedAgents"))
      for (const auto& a : *ma)
        if (a.is_object() && get_string(a.as_object(), "name") == "ExecuteCommandAgent")
          agent_running = get_string(a.as_object(), "lastStatus") == "RUNNING";
    if (!get_bool(f.task, "enableExecuteCommand") || get_string(f.task, "lastStatus") != "RUNNING" ||
        get_string(f.container, "lastStatus") != "RUNNING" || !agent_running)
      return invalid(kNotEnabled);
    std::string target = exec_target(get_string(f.task, "clusterArn"), get_string(f.task, "taskArn"),
                                     get_string(f.container, "runtimeId"));
    if (!broker || !broker->target_connected(target))
      return Error::invalid("TargetNotConnectedException", kNotConnected);
    json::object params{{"command", json::array{json::value(command)}}};
    PIER_ASSIGN(json::object doc, ssm::SsmService::document("AmazonECS-ExecuteInteractiveCommand", params));
    if (f.transcript)
      if (auto* inputs = doc.if_contains("inputs"); inputs && inputs->is_object())
        inputs->as_object()["cloudWatchLogGroupName"] = f.transcript->log_group;
    auto started = broker->start_session(target, "AmazonECS-ExecuteInteractiveCommand", doc, ctx.principal.arn,
                                         "ecs-execute-command", f.transcript);
    if (!started.ok()) {
      if (started.error().code == "TargetNotConnected")
        return Error::invalid("TargetNotConnectedException", kNotConnected);
      return started.error();
    }
    return json::object{
        {"clusterArn", get_string(f.task, "clusterArn")},
        {"containerArn", get_string(f.container, "containerArn")},
        {"containerName", get_string(f.container, "name")},
        {"interactive", true},
        {"session", json::object{{"sessionId", started->session_id},
                                 {"streamUrl", started->stream_url},
                                 {"tokenValue", started->token}}},
        {"taskArn", get_string(f.task, "taskArn")}};
  }, "", resource});
}

}  // namespace pier::svc::ecs
