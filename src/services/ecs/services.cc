// ECS services: the API (CreateService, UpdateService, DeleteService,
// DescribeServices, ListServices) and the scheduler that keeps each service's
// tasks at its desired count.
//
// A service is one row of ecs_services; its doc is the Service as
// DescribeServices shows it plus pier's own members, whose names begin with
// "_" (never shown): the client token of the create, the scheduler's backoff
// state ("_Failures", "_NextLaunchAt"), whether the steady-state event was
// written since the last change ("_Steady") and when the service became
// INACTIVE ("_InactiveAt"). Its tasks are ecs_tasks rows with the service's
// name in the `service` column; each task's doc names its deployment
// ("_Deployment"), and a stopped task the scheduler has accounted for is
// marked "_ServiceSeen".
#include "services/ecs/services.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "aws/arn.h"
#include "common/ids.h"
#include "common/log.h"
#include "services/ec2/ec2.h"
#include "services/ecs/internal.h"
#include "services/ecs/tasks.h"
#include "services/util.h"

namespace pier::svc::ecs {

using aws::RequestContext;
using store::Db;
using store::Stmt;
using namespace internal;

namespace {

// The scheduler's numbers.
constexpr size_t kMaxEvents = 100;         // events kept, newest first (as ECS)
constexpr double kStableSeconds = 60;      // a task RUNNING this long started successfully
constexpr int64_t kFreeRetries = 3;        // failed launches retried at once
constexpr double kFirstBackoff = 30;       // then 30 s, doubling …
constexpr double kMaxBackoff = 900;        // … up to 15 minutes
constexpr double kInactiveKeep = 3600;     // INACTIVE services are described for an hour

Error service_not_found() { return Error::not_found("ServiceNotFoundException", "Service not found."); }
Error service_not_active() { return Error::invalid("ServiceNotActiveException", "Service was not ACTIVE."); }

double get_num(const json::object& o, std::string_view key, double dflt = 0) {
  if (const auto* v = o.if_contains(key); v && v->is_number()) return v->to_number<double>();
  return dflt;
}

std::string service_arn(const std::string& account, const std::string& region, const std::string& cluster,
                        const std::string& name) {
  return aws::make_arn("ecs", region, account, fmt::format("service/{}/{}", cluster, name));
}

std::string deployment_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::string s = "ecs-svc/";
  s += static_cast<char>('1' + std::uniform_int_distribution<int>(0, 8)(rng));
  for (int i = 0; i < 18; ++i) s += static_cast<char>('0' + std::uniform_int_distribution<int>(0, 9)(rng));
  return s;
}

struct ServiceRow {
  std::string account, region, cluster, name;
  json::object doc;
};

Result<std::optional<ServiceRow>> load_service(Db& db, const std::string& account, const std::string& region,
                                               const std::string& cluster, const std::string& name) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM ecs_services WHERE account=? AND region=? AND cluster=? AND name=?"));
  st->args(account, region, cluster, name);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<ServiceRow>();
  PIER_ASSIGN(auto doc, parse_object(st->text(0)));
  st->reset();
  return std::optional<ServiceRow>(ServiceRow{account, region, cluster, name, std::move(doc)});
}

Status save_service(Db& db, const ServiceRow& s) {
  PIER_ASSIGN(auto* st, db.prepare(
      "INSERT INTO ecs_services(account, region, cluster, name, arn, status, created, doc) VALUES(?,?,?,?,?,?,?,?) "
      "ON CONFLICT(account, region, cluster, name) DO UPDATE SET arn=excluded.arn, status=excluded.status, "
      "created=excluded.created, doc=excluded.doc"));
  st->args(s.account, s.region, s.cluster, s.name, get_string(s.doc, "serviceArn"), get_string(s.doc, "status"),
           get_num(s.doc, "createdAt"), json::serialize(s.doc));
  return st->run();
}

json::object strip_hidden(const json::object& o) {
  json::object v;
  for (const auto& [k, val] : o)
    if (!k.starts_with("_")) v.emplace(k, val);
  return v;
}

// The service as AWS shows it (pier's own members removed).
json::object service_view(const json::object& doc) {
  json::object v = strip_hidden(doc);
  if (auto* ds = v.if_contains("deployments"); ds && ds->is_array())
    for (auto& d : ds->as_array())
      if (d.is_object()) d = strip_hidden(d.as_object());
  return v;
}

void add_event(json::object& doc, std::string message, double now) {
  if (!doc["events"].is_array()) doc["events"] = json::array();
  auto& ev = doc["events"].as_array();
  ev.insert(ev.begin(), json::object{{"id", ids::uuid4()}, {"createdAt", now}, {"message", std::move(message)}});
  while (ev.size() > kMaxEvents) ev.pop_back();
}

// A service reference — a name or an ARN (service/CLUSTER/NAME, or the old
// service/NAME) — as the service's name; "" when an ARN names another cluster.
Result<std::string> service_name_of(const RequestContext& ctx, const std::string& cluster, const std::string& ref) {
  if (!ref.starts_with("arn:")) return ref;
  auto a = aws::Arn::parse(ref);
  if (!a || a->service != "ecs" || !a->resource.starts_with("service/"))
    return invalid("Invalid identifier: Unexpected number of separators");
  if (a->region != ctx.region || a->account != ctx.principal.account) return std::string();
  std::string rest = a->resource.substr(8);
  auto slash = rest.find('/');
  if (slash == std::string::npos) return rest;
  if (rest.substr(0, slash) != cluster) return std::string();
  return rest.substr(slash + 1);
}

// EC2's error as ECS words it when it looks up the network of a service.
Error ec2_error(const std::string& code, const std::string& id) {
  if (code == "InvalidSubnetID.NotFound")
    return invalid(fmt::format("Error retrieving subnet information for [{}]: The subnet ID '{}' does not exist "
                               "(Service: AmazonEC2; Status Code: 400; Error Code: InvalidSubnetID.NotFound)", id, id));
  return invalid(fmt::format("Error retrieving security group information for [{}]: The security group '{}' does "
                             "not exist (Service: AmazonEC2; Status Code: 400; Error Code: InvalidGroup.NotFound)", id, id));
}

// Checks a networkConfiguration the way ECS does when the service is made or
// updated (subnets of one VPC, groups of that VPC) and returns it as the
// service shows it.
Result<json::object> check_network(Db& db, const RequestContext& ctx, const json::value& nc) {
  const json::value* av = nc.is_object() ? nc.as_object().if_contains("awsvpcConfiguration") : nullptr;
  if (!av || !av->is_object())
    return invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.");
  json::object a = av->as_object();
  auto subnets = get_strings(a, "subnets");
  auto groups = get_strings(a, "securityGroups");
  if (subnets.empty()) return invalid("subnets can not be empty.");
  if (subnets.size() > 16) return invalid("subnets can have at most 16 items.");
  if (groups.size() > 5) return invalid("securityGroups can have at most 5 items.");
  std::string assign = get_string(a, "assignPublicIp", "DISABLED");
  if (assign != "ENABLED" && assign != "DISABLED") return invalid("assignPublicIp must be ENABLED or DISABLED.");
  a["assignPublicIp"] = assign;
  if (!a.contains("securityGroups")) a["securityGroups"] = json::array();
  std::string vpc;
  for (const auto& id : subnets) {
    PIER_ASSIGN(auto sn, ec2::load_object(db, ctx.principal.account, ctx.region, id, "subnet"));
    if (!sn) return ec2_error("InvalidSubnetID.NotFound", id);
    std::string v = get_string(*sn, "VpcId");
    if (!vpc.empty() && v != vpc) return invalid("Subnets must all be in the same VPC.");
    vpc = v;
  }
  for (const auto& id : groups) {
    PIER_ASSIGN(auto g, ec2::load_object(db, ctx.principal.account, ctx.region, id, "security-group"));
    if (!g) return ec2_error("InvalidGroup.NotFound", id);
    if (get_string(*g, "VpcId") != vpc)
      return invalid(fmt::format("Security group {} does not belong to VPC {}.", id, vpc));
  }
  return json::object{{"awsvpcConfiguration", std::move(a)}};
}

// The task definition a service runs: ACTIVE, Fargate-compatible.
Result<json::object> service_td(Db& db, const RequestContext& ctx, const std::string& ref) {
  if (ref.empty()) return invalid("TaskDefinition can not be blank.");
  PIER_ASSIGN(TdRef r, parse_td_ref(ctx, ref, false));
  PIER_ASSIGN(auto td, load_td(db, ctx, r));
  if (!td) return client("TaskDefinition not found.");
  if (get_string(*td, "status") != "ACTIVE")
    return client(fmt::format("TaskDefinition is inactive ({})", get_string(*td, "taskDefinitionArn")));
  bool fargate = false;
  if (const auto* c = get_array(*td, "compatibilities"))
    for (const auto& v : *c) fargate = fargate || (v.is_string() && v.as_string() == "FARGATE");
  if (!fargate) return invalid("Task definition does not support launch_type FARGATE.");
  return std::move(*td);
}

// launchType or capacityProviderStrategy → the members the service and its
// deployments carry ({launchType} or {capacityProviderStrategy}).
Result<json::object> placement(const json::object& in, const json::object* cluster) {
  std::string launch = get_string(in, "launchType");
  const auto* cps = get_array(in, "capacityProviderStrategy");
  if (!launch.empty() && cps && !cps->empty())
    return invalid("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.");
  if ((!cps || cps->empty()) && launch.empty() && cluster) cps = get_array(*cluster, "defaultCapacityProviderStrategy");
  if (cps && !cps->empty()) {
    json::array out;
    for (const auto& p : *cps) {
      std::string n = p.is_object() ? get_string(p.as_object(), "capacityProvider") : "";
      if (n != "FARGATE" && n != "FARGATE_SPOT")
        return invalid("The specified capacity provider strategy cannot contain a capacity provider that is not "
                       "associated with the cluster. Associate the capacity provider with the cluster or specify a "
                       "valid capacity provider and try again.");
      const auto& po = p.as_object();
      out.push_back(json::object{{"capacityProvider", n},
                                 {"weight", get_int(po, "weight").value_or(0)},
                                 {"base", get_int(po, "base").value_or(0)}});
    }
    return json::object{{"capacityProviderStrategy", std::move(out)}};
  }
  if (launch.empty() || launch == "EC2" || launch == "EXTERNAL")
    return invalid("pier runs services on Fargate only: specify launchType FARGATE or a capacity provider "
                   "strategy of FARGATE / FARGATE_SPOT.");
  if (launch != "FARGATE") return invalid(fmt::format("Invalid launch type: {}", launch));
  return json::object{{"launchType", "FARGATE"}};
}

Result<std::string> platform_version(const json::object& in, const std::string& dflt) {
  std::string pv = get_string(in, "platformVersion", dflt);
  if (pv != "LATEST" && pv != "1.4.0" && pv != "1.3.0")
    return Error::invalid("PlatformUnknownException", fmt::format("The specified platform version ({}) does not exist.", pv));
  return pv;
}

// deploymentConfiguration merged over the current one (or ECS's defaults).
Result<json::object> deployment_config(const json::object& in, json::object cur) {
  if (cur.empty())
    cur = json::object{{"deploymentCircuitBreaker", json::object{{"enable", false}, {"rollback", false}}},
                       {"maximumPercent", 200},
                       {"minimumHealthyPercent", 100}};
  const auto* v = in.if_contains("deploymentConfiguration");
  if (!v || !v->is_object()) return cur;
  for (const auto& [k, val] : v->as_object()) cur[k] = val;
  auto max = get_int(cur, "maximumPercent"), min = get_int(cur, "minimumHealthyPercent");
  if (!max || *max < 100) return invalid("maximumPercent must be greater than or equal to 100.");
  if (!min || *min < 0 || *min > 100) return invalid("minimumHealthyPercent must be between 0 and 100.");
  if (*min >= *max) return invalid("minimumHealthyPercent must be less than maximumPercent.");
  return cur;
}

json::object new_deployment(const json::object& svc, const std::string& td_arn, const json::object& network,
                            const std::string& pv, double now) {
  std::string id = deployment_id();
  json::object d{{"id", id},
                 {"status", "PRIMARY"},
                 {"taskDefinition", td_arn},
                 {"desiredCount", svc.at("desiredCount")},
                 {"pendingCount", 0},
                 {"runningCount", 0},
                 {"failedTasks", 0},
                 {"createdAt", now},
                 {"updatedAt", now}};
  if (svc.contains("capacityProviderStrategy")) d["capacityProviderStrategy"] = svc.at("capacityProviderStrategy");
  else d["launchType"] = "FARGATE";
  d["platformVersion"] = pv == "LATEST" ? "1.4.0" : pv;
  d["platformFamily"] = "Linux";
  if (!network.empty()) d["networkConfiguration"] = network;
  d["rolloutState"] = "IN_PROGRESS";
  d["rolloutStateReason"] = fmt::format("ECS deployment {} in progress.", id);
  return d;
}

json::array& deployments(json::object& doc) {
  if (!doc["deployments"].is_array()) doc["deployments"] = json::array();
  return doc["deployments"].as_array();
}

// Makes a new PRIMARY deployment; the old primary becomes ACTIVE.
void start_deployment(json::object& doc, const std::string& td_arn, const json::object& network,
                      const std::string& pv, double now) {
  auto& ds = deployments(doc);
  for (auto& d : ds)
    if (get_string(d.as_object(), "status") == "PRIMARY") {
      d.as_object()["status"] = "ACTIVE";
      d.as_object()["updatedAt"] = now;
    }
  ds.insert(ds.begin(), new_deployment(doc, td_arn, network, pv, now));
  doc["taskDefinition"] = td_arn;
  doc["_Steady"] = false;
  doc["_Failures"] = 0;
  doc["_NextLaunchAt"] = 0;
}

Result<json::object> require_cluster(Db& db, const RequestContext& ctx, const json::object& in) {
  return require_active_cluster(db, ctx, get_string(in, "cluster", "default"));
}

// The service a request names, in its cluster.
Result<ServiceRow> require_service(Db& db, const RequestContext& ctx, const json::object& cluster,
                                   const std::string& ref) {
  if (ref.empty()) return service_not_found();
  std::string cname = get_string(cluster, "clusterName");
  PIER_ASSIGN(std::string name, service_name_of(ctx, cname, ref));
  if (name.empty()) return service_not_found();
  PIER_ASSIGN(auto s, load_service(db, ctx.principal.account, ctx.region, cname, name));
  if (!s) return service_not_found();
  return std::move(*s);
}

Result<json::object> view_with_tags(Db& db, const json::object& doc, bool tags) {
  auto v = service_view(doc);
  if (tags) {
    PIER_ASSIGN(auto t, list_tags(db, get_string(doc, "serviceArn"), "key", "value"));
    v["tags"] = std::move(t);
  }
  return v;
}

// ---------------------------------------------------------------- scheduler

struct Task {
  TaskRow row;
  std::string deployment;
  bool live = false;     // lastStatus not STOPPED
  bool wanted = false;   // desiredStatus RUNNING
  bool running = false;  // lastStatus RUNNING
};

// A stopped task that counts as a failed launch: it never got to RUNNING, or
// failed to start, or stopped soon after it started — and was not stopped by
// a user or the scheduler.
bool failed_launch(const json::object& t, double now) {
  std::string code = get_string(t, "stopCode");
  if (code == "UserInitiated" || code == "ServiceSchedulerInitiated" || code == "SpotInterruption" ||
      code == "TerminationNotice")
    return false;
  if (code == "TaskFailedToStart") return true;
  if (!t.contains("startedAt")) return true;
  double stopped = get_num(t, "stoppedAt", get_num(t, "executionStoppedAt", get_num(t, "stoppingAt", now)));
  return stopped - get_num(t, "startedAt") < kStableSeconds;
}

double backoff(int64_t failures) {
  if (failures < kFreeRetries) return 0;
  return std::min(kMaxBackoff, kFirstBackoff * std::pow(2.0, static_cast<double>(failures - kFreeRetries)));
}

std::string task_list(const std::vector<std::string>& ids) {
  std::string s;
  for (const auto& id : ids) s += fmt::format("{}(task {})", s.empty() ? "" : " ", id);
  return s;
}

struct Pass {
  Db& db;
  ServiceRow& svc;
  double now;
  bool changed = false;
  std::vector<std::string> stopped;

  std::string name() const { return svc.name; }

  Status stop(Task& t, const std::string& deployment) {
    PIER_TRY(request_stop(db, t.row.doc, "ServiceSchedulerInitiated",
                          fmt::format("Scaling activity initiated by (deployment {})", deployment), now));
    PIER_TRY(save_task(db, t.row));
    t.wanted = false;
    if (t.running) stopped.push_back(t.row.id);
    changed = true;
    return {};
  }

  void failure(const std::string& deployment) {
    auto& doc = svc.doc;
    int64_t f = get_int(doc, "_Failures").value_or(0) + 1;
    doc["_Failures"] = f;
    doc["_NextLaunchAt"] = now + backoff(f);
    for (auto& d : deployments(doc))
      if (get_string(d.as_object(), "id") == deployment)
        d.as_object()["failedTasks"] = get_int(d.as_object(), "failedTasks").value_or(0) + 1;
    if (f >= kFreeRetries)
      add_event(doc, fmt::format("(service {}) is unable to consistently start tasks successfully. For more "
                                 "information, see the Troubleshooting section of the Amazon ECS Developer Guide.",
                                 name()), now);
  }

  // Starts up to n tasks of the deployment; returns the ids started.
  Result<std::vector<std::string>> launch(const json::object& d, int64_t n) {
    std::vector<std::string> started;
    if (n <= 0) return started;
    const auto& doc = svc.doc;
    std::string dep = get_string(d, "id");
    PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM ecs_task_definitions WHERE arn=?"));
    st->args(get_string(d, "taskDefinition"));
    PIER_ASSIGN(bool row, st->step());
    if (!row) {
      add_event(svc.doc, fmt::format("(service {}) failed to launch a task with (error TaskDefinition not found.).", name()), now);
      failure(dep);
      changed = true;
      return started;
    }
    PIER_ASSIGN(auto td, parse_object(st->text(0)));
    st->reset();
    NewTask t;
    t.account = svc.account;
    t.region = svc.region;
    t.cluster = svc.cluster;
    t.task_definition = std::move(td);
    if (const auto* nc = d.if_contains("networkConfiguration"); nc && nc->is_object())
      if (const auto* a = nc->as_object().if_contains("awsvpcConfiguration"); a && a->is_object())
        t.awsvpc = a->as_object();
    t.started_by = dep;
    t.group = "service:" + svc.name;
    t.service = svc.name;
    t.enable_execute_command = get_bool(doc, "enableExecuteCommand");
    t.platform_version = get_string(d, "platformVersion", "LATEST");
    t.now = now;
    std::string propagate = get_string(doc, "propagateTags", "NONE");
    if (propagate == "SERVICE") {
      PIER_ASSIGN(t.tags, list_tags(db, get_string(doc, "serviceArn"), "key", "value"));
    } else if (propagate == "TASK_DEFINITION") {
      PIER_ASSIGN(t.tags, list_tags(db, get_string(t.task_definition, "taskDefinitionArn"), "key", "value"));
    }
    if (get_bool(doc, "enableECSManagedTags")) {
      t.tags.push_back(json::object{{"key", "aws:ecs:clusterName"}, {"value", svc.cluster}});
      t.tags.push_back(json::object{{"key", "aws:ecs:serviceName"}, {"value", svc.name}});
    }
    for (int64_t i = 0; i < n; ++i) {
      // One task at a time, so a failure undoes only what that task made.
      PIER_TRY(db.exec("SAVEPOINT pier_launch"));
      auto task = create_task(db, t);
      if (!task.ok()) {
        PIER_TRY(db.exec("ROLLBACK TO pier_launch"));
        PIER_TRY(db.exec("RELEASE pier_launch"));
        add_event(svc.doc, fmt::format("(service {}) failed to launch a task with (error {}).", name(),
                                       task.error().message), now);
        failure(dep);
        changed = true;
        break;
      }
      (*task)["_Deployment"] = dep;
      std::string id = task_id_of(get_string(*task, "taskArn"));
      PIER_TRY(save_task(db, TaskRow{svc.account, svc.region, id, std::move(*task)}));
      PIER_TRY(db.exec("RELEASE pier_launch"));
      started.push_back(id);
      changed = true;
    }
    return started;
  }

  Result<std::vector<Task>> tasks() {
    PIER_ASSIGN(auto* st, db.prepare(
        "SELECT id, doc FROM ecs_tasks WHERE account=? AND region=? AND cluster=? AND service=? "
        "AND (last_status<>'STOPPED' OR json_extract(doc, '$._ServiceSeen') IS NULL) ORDER BY created, id"));
    st->args(svc.account, svc.region, svc.cluster, svc.name);
    std::vector<Task> out;
    for (;;) {
      PIER_ASSIGN(bool row, st->step());
      if (!row) break;
      PIER_ASSIGN(auto doc, parse_object(st->text(1)));
      Task t;
      t.row = TaskRow{svc.account, svc.region, st->text(0), std::move(doc)};
      const auto& d = t.row.doc;
      t.deployment = get_string(d, "_Deployment", get_string(d, "startedBy"));
      t.live = get_string(d, "lastStatus") != "STOPPED";
      t.wanted = t.live && get_string(d, "desiredStatus") == "RUNNING";
      t.running = get_string(d, "lastStatus") == "RUNNING";
      out.push_back(std::move(t));
    }
    return out;
  }

  Status run() {
    auto& doc = svc.doc;
    // Every member the pass sets exists before it starts: it holds references
    // into the doc, which a new member could move.
    for (const char* k : {"_Failures", "_NextLaunchAt", "_InactiveAt"})
      if (!doc.contains(k)) doc[k] = 0;
    if (!doc.contains("_Steady")) doc["_Steady"] = false;
    if (!doc["events"].is_array()) doc["events"] = json::array();
    deployments(doc);
    PIER_ASSIGN(auto all, tasks());
    std::string status = get_string(doc, "status");
    std::string primary_id;
    for (const auto& d : deployments(doc))
      if (get_string(d.as_object(), "status") == "PRIMARY") primary_id = get_string(d.as_object(), "id");

    // Stopped tasks not yet accounted for: failed launches feed the backoff.
    std::vector<Task> live;
    for (auto& t : all) {
      if (t.live) {
        live.push_back(std::move(t));
        continue;
      }
      t.row.doc["_ServiceSeen"] = true;
      PIER_TRY(save_task(db, t.row));
      changed = true;
      if (status == "ACTIVE" && failed_launch(t.row.doc, now)) failure(t.deployment);
    }
    // A task of the primary that has stayed RUNNING resets the backoff.
    for (const auto& t : live)
      if (t.running && t.deployment == primary_id &&
          now - get_num(t.row.doc, "startedAt", get_num(t.row.doc, "createdAt", now)) >= kStableSeconds &&
          get_int(doc, "_Failures").value_or(0) != 0) {
        doc["_Failures"] = 0;
        doc["_NextLaunchAt"] = 0;
      }

    if (status == "DRAINING") {
      for (auto& t : live)
        if (t.wanted) PIER_TRY(stop(t, t.deployment.empty() ? primary_id : t.deployment));
      if (live.empty()) {
        doc["status"] = "INACTIVE";
        doc["_InactiveAt"] = now;
      }
    } else {
      PIER_TRY(schedule(live, primary_id));
    }
    if (!stopped.empty())
      add_event(doc, fmt::format("(service {}) has stopped {} running tasks: {}.", name(), stopped.size(),
                                 task_list(stopped)), now);
    count(live, primary_id);
    return {};
  }

  Status schedule(std::vector<Task>& live, const std::string& primary_id) {
    auto& doc = svc.doc;
    auto& ds = deployments(doc);
    json::object* primary = nullptr;
    for (auto& d : ds)
      if (get_string(d.as_object(), "id") == primary_id) primary = &d.as_object();
    if (!primary) return {};
    int64_t desired = get_int(doc, "desiredCount").value_or(0);
    const auto& cfg = doc["deploymentConfiguration"].as_object();
    int64_t max_pct = get_int(cfg, "maximumPercent").value_or(200);
    int64_t min_pct = get_int(cfg, "minimumHealthyPercent").value_or(100);
    int64_t max_total = std::max(desired, desired * max_pct / 100);
    int64_t min_healthy = (desired * min_pct + 99) / 100;

    // Too many tasks in the primary: stop the extra, pending ones first, then the newest.
    std::vector<Task*> mine;
    for (auto& t : live)
      if (t.wanted && t.deployment == primary_id) mine.push_back(&t);
    if (static_cast<int64_t>(mine.size()) > desired) {
      std::reverse(mine.begin(), mine.end());  // newest first among equals
      std::stable_sort(mine.begin(), mine.end(), [](const Task* a, const Task* b) {
        if (a->running != b->running) return !a->running;
        return get_num(a->row.doc, "createdAt") > get_num(b->row.doc, "createdAt");
      });
      for (size_t i = 0; static_cast<int64_t>(i) < static_cast<int64_t>(mine.size()) - desired; ++i)
        PIER_TRY(stop(*mine[i], primary_id));
    }
    int64_t have = 0, live_total = static_cast<int64_t>(live.size());
    for (const auto& t : live)
      if (t.wanted && t.deployment == primary_id) ++have;

    // Short: start tasks, within maximumPercent and the backoff.
    if (have < desired) {
      int64_t n = std::min(desired - have, max_total - live_total);
      int64_t failures = get_int(doc, "_Failures").value_or(0);
      if (failures > 0 && now < get_num(doc, "_NextLaunchAt")) n = 0;
      if (failures >= kFreeRetries) n = std::min<int64_t>(n, 1);
      PIER_ASSIGN(auto started, launch(*primary, n));
      if (!started.empty()) {
        add_event(doc, fmt::format("(service {}) has started {} tasks: {}.", name(), started.size(), task_list(started)), now);
        doc["_Steady"] = false;
        for (const auto& id : started) {
          PIER_ASSIGN(auto row, load_task(db, svc.account, svc.region, id));
          Task t;
          t.row = std::move(*row);
          t.deployment = primary_id;
          t.live = t.wanted = true;
          live.push_back(std::move(t));
        }
      }
    }

    // Old deployments: their pending tasks go at once; their running ones as
    // long as minimumHealthyPercent stays running.
    int64_t healthy = 0;
    for (const auto& t : live)
      if (t.wanted && t.running) ++healthy;
    for (auto& t : live)
      if (t.wanted && t.deployment != primary_id && !t.running) PIER_TRY(stop(t, primary_id));
    for (auto& t : live)
      if (t.wanted && t.deployment != primary_id && t.running && healthy - 1 >= min_healthy) {
        PIER_TRY(stop(t, primary_id));
        --healthy;
      }

    // An old deployment with no task left is gone.
    auto& remaining = deployments(doc);
    for (auto it = remaining.begin(); it != remaining.end();) {
      std::string id = get_string(it->as_object(), "id");
      bool has = std::any_of(live.begin(), live.end(), [&](const Task& t) { return t.deployment == id; });
      if (id != primary_id && !has) {
        it = remaining.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    return {};
  }

  // Counts of each deployment and the service; the rollout's end.
  void count(const std::vector<Task>& live, const std::string& primary_id) {
    auto& doc = svc.doc;
    auto& ds = deployments(doc);
    int64_t running = 0, pending = 0;
    for (auto& dv : ds) {
      auto& d = dv.as_object();
      std::string id = get_string(d, "id");
      int64_t r = 0, p = 0, w = 0;
      for (const auto& t : live) {
        if (t.deployment != id && !(id == primary_id && t.deployment.empty())) continue;
        if (t.running) ++r;
        if (t.wanted) ++w;
        if (t.wanted && !t.running) ++p;
      }
      int64_t desired = id == primary_id ? get_int(doc, "desiredCount").value_or(0) : w;
      if (get_int(d, "runningCount") != r || get_int(d, "pendingCount") != p || get_int(d, "desiredCount") != desired) {
        d["runningCount"] = r;
        d["pendingCount"] = p;
        d["desiredCount"] = desired;
        d["updatedAt"] = now;
      }
      running += r;
      pending += p;
    }
    doc["runningCount"] = running;
    doc["pendingCount"] = pending;
    if (get_string(doc, "status") != "ACTIVE") return;
    json::object* primary = nullptr;
    for (auto& d : ds)
      if (get_string(d.as_object(), "id") == primary_id) primary = &d.as_object();
    if (!primary) return;
    int64_t desired = get_int(doc, "desiredCount").value_or(0);
    int64_t wanted = 0, ready = 0;
    for (const auto& t : live)
      if (t.deployment == primary_id && t.wanted) {
        ++wanted;
        if (t.running) ++ready;
      }
    bool steady = ds.size() == 1 && wanted == desired && ready == desired;
    if (!steady) return;
    if (get_string(*primary, "rolloutState") == "IN_PROGRESS") {
      (*primary)["rolloutState"] = "COMPLETED";
      (*primary)["rolloutStateReason"] = fmt::format("ECS deployment {} completed.", primary_id);
      (*primary)["updatedAt"] = now;
      add_event(doc, fmt::format("(service {}) (deployment {}) deployment completed.", name(), primary_id), now);
    }
    if (!get_bool(doc, "_Steady")) {
      doc["_Steady"] = true;
      add_event(doc, fmt::format("(service {}) has reached a steady state.", name()), now);
    }
  }
};

// Stops every task of a service the scheduler has not stopped yet (DeleteService).
Status stop_service_tasks(Db& db, ServiceRow& s, double now) {
  Pass p{db, s, now};
  PIER_ASSIGN(auto all, p.tasks());
  std::string primary;
  for (const auto& d : deployments(s.doc))
    if (get_string(d.as_object(), "status") == "PRIMARY") primary = get_string(d.as_object(), "id");
  for (auto& t : all)
    if (t.wanted) PIER_TRY(p.stop(t, primary));
  if (!p.stopped.empty())
    add_event(s.doc, fmt::format("(service {}) has stopped {} running tasks: {}.", s.name, p.stopped.size(),
                                 task_list(p.stopped)), now);
  return {};
}

}  // namespace

Result<bool> schedule_services(store::Store& store, double now) {
  struct Key {
    std::string account, region, cluster, name;
  };
  // Which services there are to look after (a read: no writer lock when there are none).
  PIER_ASSIGN(auto keys, store.read([&](Db& db) -> Result<std::pair<std::vector<Key>, bool>> {
    PIER_ASSIGN(auto* st, db.prepare(
        "SELECT account, region, cluster, name, status FROM ecs_services "
        "WHERE status IN ('ACTIVE','DRAINING') OR (status='INACTIVE' AND json_extract(doc, '$._InactiveAt') < ?) "
        "ORDER BY account, region, cluster, name"));
    st->args(now - kInactiveKeep);
    std::vector<Key> out;
    bool purge = false;
    for (;;) {
      PIER_ASSIGN(bool row, st->step());
      if (!row) break;
      if (st->text(4) == "INACTIVE") purge = true;
      else out.push_back(Key{st->text(0), st->text(1), st->text(2), st->text(3)});
    }
    return std::make_pair(std::move(out), purge);
  }));
  if (keys.first.empty() && !keys.second) return false;

  // One write for the pass; each service in a savepoint of its own, so a
  // service that fails does not hold up the others.
  return store.write([&](Db& db) -> Result<bool> {
    bool changed = false;
    for (const auto& k : keys.first) {
      PIER_TRY(db.exec("SAVEPOINT pier_service"));
      auto one = [&]() -> Result<bool> {
        PIER_ASSIGN(auto row, load_service(db, k.account, k.region, k.cluster, k.name));
        if (!row) return false;
        std::string status = get_string(row->doc, "status");
        if (status != "ACTIVE" && status != "DRAINING") return false;
        std::string before = json::serialize(row->doc);
        Pass p{db, *row, now};
        PIER_TRY(p.run());
        bool doc_changed = json::serialize(row->doc) != before;
        if (doc_changed) PIER_TRY(save_service(db, *row));
        return p.changed || doc_changed;
      };
      auto r = one();
      if (!r.ok()) {
        PIER_TRY(db.exec("ROLLBACK TO pier_service"));
        PIER_TRY(db.exec("RELEASE pier_service"));
        log::get("ecs")->warn("service {}/{}: {}", k.cluster, k.name, r.error().message);
        continue;
      }
      PIER_TRY(db.exec("RELEASE pier_service"));
      changed = changed || *r;
    }
    if (keys.second) {
      PIER_ASSIGN(auto* st, db.prepare(
          "SELECT arn FROM ecs_services WHERE status='INACTIVE' AND json_extract(doc, '$._InactiveAt') < ?"));
      st->args(now - kInactiveKeep);
      PIER_ASSIGN(auto arns, st->strings());
      for (const auto& arn : arns) PIER_TRY(drop_tags(db, arn));
      PIER_ASSIGN(auto* del, db.prepare(
          "DELETE FROM ecs_services WHERE status='INACTIVE' AND json_extract(doc, '$._InactiveAt') < ?"));
      del->args(now - kInactiveKeep);
      PIER_TRY(del->run());
    }
    return changed;
  });
}

void add_service_actions(aws::ServiceDef& def, store::Store& store, std::function<void()> on_change) {
  auto kick = [on_change] {
    if (on_change) on_change();
  };
  auto service_resource = [](const char* member) {
    return [member](const RequestContext& ctx, const json::object& in) {
      aws::Authz a;
      std::string cluster = get_string(in, "cluster", "default");
      auto cname = cluster_name(ctx, cluster);
      std::string c = cname.ok() ? *cname : cluster;
      std::string ref = get_string(in, member);
      if (ref.starts_with("arn:")) {
        a.resource = ref;
      } else {
        a.resource = service_arn(ctx.principal.account, ctx.region, c, ref);
      }
      a.context["ecs:cluster"] = {cluster_arn(ctx, c)};
      return a;
    };
  };

  def.actions.push_back({"CreateService", [&store, kick](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "serviceName");
    if (!valid_name(name))
      return invalid("Service name can only contain alphanumeric characters, hyphens and underscores, and must be "
                     "1-255 characters long.");
    PIER_TRY(check_tags(in));
    std::string strategy = get_string(in, "schedulingStrategy", "REPLICA");
    if (strategy == "DAEMON") return invalid("The daemon scheduling strategy is not supported with the FARGATE launch type.");
    if (strategy != "REPLICA") return invalid(fmt::format("Invalid scheduling strategy: {}", strategy));
    auto desired = get_int(in, "desiredCount");
    if (!desired) return invalid("The desired count must be specified for a service using the REPLICA scheduling strategy.");
    if (*desired < 0) return invalid("desiredCount must be greater than or equal to 0.");
    if (const auto* dc = in.if_contains("deploymentController"); dc && dc->is_object()) {
      std::string type = get_string(dc->as_object(), "type", "ECS");
      if (type != "ECS") return invalid(fmt::format("pier supports only the ECS deployment controller, not {}.", type));
    }
    std::string propagate = get_string(in, "propagateTags", "NONE");
    if (propagate != "NONE" && propagate != "SERVICE" && propagate != "TASK_DEFINITION")
      return invalid(fmt::format("Invalid propagateTags: {}", propagate));
    PIER_ASSIGN(auto config, deployment_config(in, {}));
    PIER_ASSIGN(std::string pv, platform_version(in, "LATEST"));
    std::string token = get_string(in, "clientToken");
    json::object out;
    bool made = false;
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto cluster, require_cluster(db, ctx, in));
      std::string cname = get_string(cluster, "clusterName");
      PIER_ASSIGN(auto existing, load_service(db, ctx.principal.account, ctx.region, cname, name));
      if (existing) {
        std::string st = get_string(existing->doc, "status");
        if (st == "ACTIVE") {
          if (!token.empty() && get_string(existing->doc, "_ClientToken") == token) {
            PIER_ASSIGN(out, view_with_tags(db, existing->doc, true));
            return {};
          }
          return invalid("Creation of service was not idempotent.");
        }
        if (st == "DRAINING") return invalid("Unable to Start a service that is still Draining.");
      }
      PIER_ASSIGN(auto where, placement(in, &cluster));
      PIER_ASSIGN(auto td, service_td(db, ctx, get_string(in, "taskDefinition")));
      json::object network;
      if (get_string(td, "networkMode") == "awsvpc" || in.contains("networkConfiguration")) {
        const json::value none;
        PIER_ASSIGN(network, check_network(db, ctx, in.contains("networkConfiguration") ? in.at("networkConfiguration") : none));
      }
      std::string arn = service_arn(ctx.principal.account, ctx.region, cname, name);
      json::object s{{"serviceArn", arn},
                     {"serviceName", name},
                     {"clusterArn", get_string(cluster, "clusterArn")},
                     {"loadBalancers", in.contains("loadBalancers") ? in.at("loadBalancers") : json::value(json::array())},
                     {"serviceRegistries", in.contains("serviceRegistries") ? in.at("serviceRegistries") : json::value(json::array())},
                     {"status", "ACTIVE"},
                     {"desiredCount", *desired},
                     {"runningCount", 0},
                     {"pendingCount", 0}};
      for (const auto& [k, v] : where) s[k] = v;
      s["platformVersion"] = pv;
      s["platformFamily"] = "Linux";
      s["taskDefinition"] = td.at("taskDefinitionArn");
      s["deploymentConfiguration"] = config;
      s["deployments"] = json::array();
      s["roleArn"] = fmt::format("arn:aws:iam::{}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
                                 ctx.principal.account);
      s["events"] = json::array();
      s["createdAt"] = ctx.now;
      s["placementConstraints"] = in.contains("placementConstraints") ? in.at("placementConstraints") : json::value(json::array());
      s["placementStrategy"] = in.contains("placementStrategy") ? in.at("placementStrategy") : json::value(json::array());
      if (!network.empty()) s["networkConfiguration"] = network;
      if (auto g = get_int(in, "healthCheckGracePeriodSeconds")) s["healthCheckGracePeriodSeconds"] = *g;
      s["schedulingStrategy"] = strategy;
      s["deploymentController"] = json::object{{"type", "ECS"}};
      s["createdBy"] = ctx.principal.role_arn.empty() ? ctx.principal.arn : ctx.principal.role_arn;
      s["enableECSManagedTags"] = get_bool(in, "enableECSManagedTags");
      s["propagateTags"] = propagate;
      s["enableExecuteCommand"] = get_bool(in, "enableExecuteCommand");
      if (!token.empty()) s["_ClientToken"] = token;
      s["_Failures"] = 0;
      s["_NextLaunchAt"] = 0;
      s["_Steady"] = false;
      deployments(s).push_back(new_deployment(s, get_string(td, "taskDefinitionArn"), network, pv, ctx.now));
      PIER_TRY(drop_tags(db, arn));
      PIER_TRY(save_service(db, ServiceRow{ctx.principal.account, ctx.region, cname, name, s}));
      if (const auto* tags = get_array(in, "tags")) PIER_TRY(put_tags(db, arn, *tags, "key", "value"));
      out = service_view(s);
      if (const auto* tags = get_array(in, "tags"); tags && !tags->empty()) out["tags"] = *tags;
      made = true;
      return {};
    }));
    if (made) kick();
    return json::object{{"service", out}};
  }, "", service_resource("serviceName")});

  def.actions.push_back({"UpdateService", [&store, kick](RequestContext& ctx, json::object& in) -> Result<json::object> {
    auto desired = get_int(in, "desiredCount");
    if (desired && *desired < 0) return invalid("desiredCount must be greater than or equal to 0.");
    json::object out;
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto cluster, require_cluster(db, ctx, in));
      PIER_ASSIGN(auto s, require_service(db, ctx, cluster, get_string(in, "service")));
      auto& doc = s.doc;
      if (get_string(doc, "status") != "ACTIVE") return service_not_active();
      json::object* primary = nullptr;
      for (auto& d : deployments(doc))
        if (get_string(d.as_object(), "status") == "PRIMARY") primary = &d.as_object();
      if (!primary) return Error::internal("service without a primary deployment");
      bool redeploy = get_bool(in, "forceNewDeployment");
      std::string td_arn = get_string(*primary, "taskDefinition");
      json::object network = primary->contains("networkConfiguration") && primary->at("networkConfiguration").is_object()
                                 ? primary->at("networkConfiguration").as_object() : json::object();
      std::string pv = get_string(doc, "platformVersion", "LATEST");
      if (std::string ref = get_string(in, "taskDefinition"); !ref.empty()) {
        PIER_ASSIGN(auto td, service_td(db, ctx, ref));
        std::string arn = get_string(td, "taskDefinitionArn");
        if (arn != td_arn) redeploy = true;
        td_arn = arn;
        if (get_string(td, "networkMode") == "awsvpc" && network.empty() && !in.contains("networkConfiguration"))
          return invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.");
      }
      if (in.contains("networkConfiguration")) {
        PIER_ASSIGN(auto nc, check_network(db, ctx, in.at("networkConfiguration")));
        if (json::serialize(nc) != json::serialize(network)) redeploy = true;
        network = std::move(nc);
        doc["networkConfiguration"] = network;
      }
      if (in.contains("platformVersion")) {
        PIER_ASSIGN(std::string p, platform_version(in, pv));
        if (p != pv) redeploy = true;
        pv = p;
        doc["platformVersion"] = pv;
      }
      if (const auto* v = in.if_contains("enableExecuteCommand"); v && v->is_bool()) {
        if (v->as_bool() != get_bool(doc, "enableExecuteCommand")) redeploy = true;
        doc["enableExecuteCommand"] = v->as_bool();
      }
      if (const auto* cps = get_array(in, "capacityProviderStrategy")) {
        PIER_ASSIGN(auto where, placement(in, nullptr));
        if (json::serialize(where["capacityProviderStrategy"]) != json::serialize(doc["capacityProviderStrategy"]))
          redeploy = true;
        (void)cps;
        doc.erase("launchType");
        doc["capacityProviderStrategy"] = where["capacityProviderStrategy"];
      }
      if (in.contains("deploymentConfiguration")) {
        PIER_ASSIGN(auto cfg, deployment_config(in, doc["deploymentConfiguration"].as_object()));
        doc["deploymentConfiguration"] = std::move(cfg);
      }
      if (desired && *desired != get_int(doc, "desiredCount").value_or(0)) {
        doc["desiredCount"] = *desired;
        (*primary)["desiredCount"] = *desired;
        (*primary)["updatedAt"] = ctx.now;
        doc["_Steady"] = false;
      }
      for (const char* k : {"propagateTags", "enableECSManagedTags", "healthCheckGracePeriodSeconds", "loadBalancers",
                            "serviceRegistries", "placementConstraints", "placementStrategy"})
        if (in.contains(k)) doc[k] = in.at(k);
      if (redeploy) start_deployment(doc, td_arn, network, pv, ctx.now);
      PIER_TRY(save_service(db, s));
      out = service_view(doc);
      return {};
    }));
    kick();
    return json::object{{"service", out}};
  }, "", service_resource("service")});

  def.actions.push_back({"DeleteService", [&store, kick](RequestContext& ctx, json::object& in) -> Result<json::object> {
    bool force = get_bool(in, "force");
    json::object out;
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto cluster, require_cluster(db, ctx, in));
      PIER_ASSIGN(auto s, require_service(db, ctx, cluster, get_string(in, "service")));
      auto& doc = s.doc;
      std::string status = get_string(doc, "status");
      if (status == "INACTIVE") return service_not_active();
      if (status == "ACTIVE") {
        if (get_int(doc, "desiredCount").value_or(0) > 0 && !force)
          return invalid("The service cannot be stopped while it is scaled above 0.");
        doc["status"] = "DRAINING";
        doc["desiredCount"] = 0;
        for (auto& d : deployments(doc))
          if (get_string(d.as_object(), "status") == "PRIMARY") d.as_object()["desiredCount"] = 0;
        PIER_TRY(stop_service_tasks(db, s, ctx.now));
        PIER_TRY(save_service(db, s));
      }
      out = service_view(doc);
      return {};
    }));
    kick();
    return json::object{{"service", out}};
  }, "", service_resource("service")});

  def.actions.push_back({"DescribeServices", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    auto refs = get_strings(in, "services");
    if (refs.empty()) return invalid("Services cannot be empty.");
    if (refs.size() > 10) return invalid("Too many services were specified. A maximum of 10 services can be specified.");
    bool tags = false;
    for (const auto& i : get_strings(in, "include")) tags = tags || i == "TAGS";
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto cluster, require_cluster(db, ctx, in));
      std::string cname = get_string(cluster, "clusterName");
      json::array services, failures;
      for (const auto& ref : refs) {
        auto name = service_name_of(ctx, cname, ref);
        std::optional<ServiceRow> row;
        if (name.ok() && !name->empty()) {
          PIER_ASSIGN(row, load_service(db, ctx.principal.account, ctx.region, cname, *name));
        }
        if (!row) {
          std::string arn = ref.starts_with("arn:") ? ref : service_arn(ctx.principal.account, ctx.region, cname, ref);
          failures.push_back(json::object{{"arn", arn}, {"reason", "MISSING"}});
          continue;
        }
        PIER_ASSIGN(auto v, view_with_tags(db, row->doc, tags));
        services.push_back(std::move(v));
      }
      return json::object{{"services", services}, {"failures", failures}};
    });
  }});

  def.actions.push_back({"ListServices", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(Page page, read_page(in));
    std::string launch = get_string(in, "launchType"), strategy = get_string(in, "schedulingStrategy");
    if (!launch.empty() && launch != "FARGATE" && launch != "EC2" && launch != "EXTERNAL")
      return invalid(fmt::format("Invalid launch type: {}", launch));
    if (!strategy.empty() && strategy != "REPLICA" && strategy != "DAEMON")
      return invalid(fmt::format("Invalid scheduling strategy: {}", strategy));
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto cluster, require_cluster(db, ctx, in));
      PIER_ASSIGN(auto* st, db.prepare(
          "SELECT arn FROM ecs_services WHERE account=? AND region=? AND cluster=? AND status<>'INACTIVE' "
          "AND (?='' OR json_extract(doc, '$.launchType')=?) "
          "AND (?='' OR json_extract(doc, '$.schedulingStrategy')=?) "
          "ORDER BY arn LIMIT ? OFFSET ?"));
      st->args(ctx.principal.account, ctx.region, get_string(cluster, "clusterName"), launch, launch, strategy,
               strategy, page.max + 1, static_cast<int64_t>(page.offset));
      return collect_page(st, page, "serviceArns");
    });
  }});
}

}  // namespace pier::svc::ecs
