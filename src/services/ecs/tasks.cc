// RunTask, StopTask, DescribeTasks, ListTasks and the task records they
// share with the service scheduler and the task controller.
#include "services/ecs/tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "aws/arn.h"
#include "common/ids.h"
#include "services/ec2/ec2.h"
#include "services/ecs/ecs.h"
#include "services/ecs/internal.h"
#include "services/util.h"

namespace pier::svc::ecs {

using aws::RequestContext;
using store::Db;
using store::Stmt;
using namespace internal;

namespace {

std::string cluster_arn_of(const std::string& account, const std::string& region, const std::string& cluster) {
  return aws::make_arn("ecs", region, account, fmt::format("cluster/{}", cluster));
}

std::string task_arn(const std::string& account, const std::string& region, const std::string& cluster,
                     const std::string& id) {
  return aws::make_arn("ecs", region, account, fmt::format("task/{}/{}", cluster, id));
}

// EC2's error as ECS words it when it looks up the network of a task.
Error ec2_error(const Error& e, const std::string& id) {
  if (e.code == "InvalidSubnetID.NotFound")
    return invalid(fmt::format("Error retrieving subnet information for [{}]: The subnet ID '{}' does not exist "
                               "(Service: AmazonEC2; Status Code: 400; Error Code: InvalidSubnetID.NotFound)", id, id));
  if (e.code == "InvalidGroup.NotFound")
    return invalid(fmt::format("Error retrieving security group information for [{}]: The security group '{}' does "
                               "not exist (Service: AmazonEC2; Status Code: 400; Error Code: InvalidGroup.NotFound)", id, id));
  return invalid(e.message);
}

// The container overrides by name, each checked against the definition.
Result<std::map<std::string, json::object>> container_overrides(const json::object& td, const json::object& ov) {
  std::map<std::string, json::object> out;
  const auto* list = get_array(ov, "containerOverrides");
  if (!list) return out;
  for (const auto& v : *list) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    std::string name = get_string(o, "name");
    bool known = false;
    for (const auto& c : td.at("containerDefinitions").as_array())
      if (get_string(c.as_object(), "name") == name) known = true;
    if (!known) return invalid(fmt::format("Override for container named {} is not a container in the TaskDefinition.", name));
    out[name] = o;
  }
  return out;
}

}  // namespace

std::string task_id_of(std::string_view ref) {
  auto slash = ref.rfind('/');
  std::string_view id = slash == std::string_view::npos ? ref : ref.substr(slash + 1);
  if (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string_view::npos) return "";
  if (slash != std::string_view::npos && !ref.starts_with("arn:")) return "";
  return std::string(id);
}

json::object task_view(const json::object& doc) {
  json::object v;
  for (const auto& [k, val] : doc)
    if (!k.starts_with("_")) v.emplace(k, val);
  if (auto* cs = v.if_contains("containers"); cs && cs->is_array())
    for (auto& c : cs->as_array())
      if (c.is_object()) {
        auto& co = c.as_object();
        for (auto it = co.begin(); it != co.end();) it = it->key().starts_with("_") ? co.erase(it) : it + 1;
      }
  return v;
}

Result<json::object> create_task(Db& db, const NewTask& t) {
  const auto& td = t.task_definition;
  bool fargate = false;
  if (const auto* compat = td.if_contains("compatibilities"); compat && compat->is_array())
    for (const auto& c : compat->as_array())
      if (c.is_string() && c.as_string() == "FARGATE") fargate = true;
  if (!fargate) return invalid("Task definition does not support launch_type FARGATE.");

  // The network: subnets of one VPC, groups of that VPC.
  auto subnets = get_strings(t.awsvpc, "subnets");
  auto groups = get_strings(t.awsvpc, "securityGroups");
  if (subnets.empty()) return invalid("subnets can not be empty.");
  if (subnets.size() > 16) return invalid("subnets can have at most 16 items.");
  if (groups.size() > 5) return invalid("securityGroups can have at most 5 items.");
  std::string assign = get_string(t.awsvpc, "assignPublicIp", "DISABLED");
  if (assign != "ENABLED" && assign != "DISABLED") return invalid("assignPublicIp must be ENABLED or DISABLED.");
  std::string vpc;
  for (const auto& id : subnets) {
    PIER_ASSIGN(auto sn, ec2::load_object(db, t.account, t.region, id, "subnet"));
    if (!sn) return ec2_error(Error::not_found("InvalidSubnetID.NotFound", ""), id);
    std::string v = get_string(*sn, "VpcId");
    if (!vpc.empty() && v != vpc) return invalid("Subnets must all be in the same VPC.");
    vpc = v;
  }
  for (const auto& id : groups) {
    PIER_ASSIGN(auto g, ec2::load_object(db, t.account, t.region, id, "security-group"));
    if (!g) return ec2_error(Error::not_found("InvalidGroup.NotFound", ""), id);
    if (get_string(*g, "VpcId") != vpc)
      return invalid(fmt::format("Security group {} does not belong to VPC {}.", id, vpc));
  }

  // The size: the definition's, or the overrides' (which Fargate checks again).
  std::string cpu = get_string(td, "cpu"), memory = get_string(td, "memory");
  if (auto c = get_string(t.overrides, "cpu"); !c.empty()) {
    auto v = parse_cpu(c);
    if (!v) return invalid(fmt::format("Invalid 'cpu' setting for task: {}", c));
    cpu = std::to_string(*v);
  }
  if (auto m = get_string(t.overrides, "memory"); !m.empty()) {
    auto v = parse_memory(m);
    if (!v) return invalid(fmt::format("Invalid 'memory' setting for task: {}", m));
    memory = std::to_string(*v);
  }
  if (!fargate_size_valid(std::stoll(cpu.empty() ? "0" : cpu), std::stoll(memory.empty() ? "0" : memory)))
    return client(fmt::format("No Fargate configuration exists for given values: {} CPU, {} memory. See the Amazon ECS "
                              "documentation for the valid CPU and memory combinations.", cpu, memory));
  PIER_ASSIGN(auto overrides, container_overrides(td, t.overrides));

  std::string id = ids::hex_id(32);
  std::string arn = task_arn(t.account, t.region, t.cluster, id);
  std::string attachment = ids::uuid4();
  static thread_local std::mt19937 rng(std::random_device{}());
  std::string subnet = subnets[std::uniform_int_distribution<size_t>(0, subnets.size() - 1)(rng)];
  auto eni = ec2::make_task_interface(db, t.account, t.region, subnet, groups,
                                      aws::make_arn("ecs", t.region, t.account, "attachment/" + attachment));
  if (!eni.ok()) return ec2_error(eni.error(), eni.error().code == "InvalidSubnetID.NotFound" ? subnet : eni.error().message);
  std::string eni_id = get_string(*eni, "NetworkInterfaceId");
  std::string ip = get_string(*eni, "PrivateIpAddress");

  json::array containers;
  for (const auto& cv : td.at("containerDefinitions").as_array()) {
    const auto& cd = cv.as_object();
    std::string name = get_string(cd, "name");
    json::object c{
        {"containerArn", aws::make_arn("ecs", t.region, t.account, fmt::format("container/{}/{}/{}", t.cluster, id, ids::uuid4()))},
        {"taskArn", arn},
        {"name", name},
        {"image", cd.at("image")},
        {"lastStatus", "PENDING"},
        {"networkBindings", json::array()},
        {"networkInterfaces", json::array{json::object{{"attachmentId", attachment}, {"privateIpv4Address", ip}}}},
        {"healthStatus", "UNKNOWN"},
        {"cpu", std::to_string(get_int(cd, "cpu").value_or(0))}};
    if (auto m = get_int(cd, "memory")) c["memory"] = std::to_string(*m);
    if (auto m = get_int(cd, "memoryReservation")) c["memoryReservation"] = std::to_string(*m);
    if (auto it = overrides.find(name); it != overrides.end()) c["_Override"] = it->second;
    if (t.enable_execute_command)
      c["managedAgents"] = json::array{json::object{{"name", "ExecuteCommandAgent"}, {"lastStatus", "PENDING"}}};
    containers.push_back(std::move(c));
  }

  json::object task{
      {"attachments", json::array{json::object{
          {"id", attachment},
          {"type", "ElasticNetworkInterface"},
          {"status", "PRECREATED"},
          {"details", json::array{json::object{{"name", "subnetId"}, {"value", subnet}},
                                  json::object{{"name", "networkInterfaceId"}, {"value", eni_id}},
                                  json::object{{"name", "macAddress"}, {"value", eni->at("MacAddress")}},
                                  json::object{{"name", "privateDnsName"}, {"value", eni->at("PrivateDnsName")}},
                                  json::object{{"name", "privateIPv4Address"}, {"value", ip}}}}}}},
      {"attributes", json::array{json::object{{"name", "ecs.cpu-architecture"}, {"value", "x86_64"}}}},
      {"availabilityZone", eni->at("AvailabilityZone")},
      {"clusterArn", cluster_arn_of(t.account, t.region, t.cluster)},
      {"connectivity", "CONNECTED"},
      {"connectivityAt", t.now},
      {"containers", std::move(containers)},
      {"cpu", cpu},
      {"createdAt", t.now},
      {"desiredStatus", "RUNNING"},
      {"enableExecuteCommand", t.enable_execute_command},
      {"ephemeralStorage", json::object{{"sizeInGiB", 20}}},
      {"fargateEphemeralStorage", json::object{{"sizeInGiB", 20}}},
      {"group", t.group.empty() ? "family:" + get_string(td, "family") : t.group},
      {"healthStatus", "UNKNOWN"},
      {"lastStatus", "PROVISIONING"},
      {"launchType", "FARGATE"},
      {"memory", memory},
      {"overrides", t.overrides.empty() ? json::object{{"containerOverrides", json::array()}, {"inferenceAcceleratorOverrides", json::array()}} : t.overrides},
      {"platformVersion", t.platform_version == "LATEST" ? "1.4.0" : t.platform_version},
      {"platformFamily", "Linux"},
      {"tags", t.tags},
      {"taskArn", arn},
      {"taskDefinitionArn", td.at("taskDefinitionArn")},
      {"version", 1},
      {"_TaskDefinition", td},
      {"_Eni", eni_id},
      {"_Vpc", vpc},
      {"_CredentialsId", ids::uuid4()},
      {"_AssignPublicIp", assign}};
  if (!t.started_by.empty()) task["startedBy"] = t.started_by;
  std::string role = get_string(t.overrides, "taskRoleArn", get_string(td, "taskRoleArn"));
  std::string exec_role = get_string(t.overrides, "executionRoleArn", get_string(td, "executionRoleArn"));
  // ECS assumes the roles: each must be the caller's account's and trust ecs-tasks.amazonaws.com.
  for (const auto& r : {role, exec_role}) {
    if (r.empty()) continue;
    auto a = aws::Arn::parse(r);
    bool ok = a && a->service == "iam" && a->account == t.account;
    if (ok) {
      PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM iam_roles WHERE arn=?"));
      st->args(r);
      PIER_ASSIGN(bool row, st->step());
      ok = row && st->text(0).find("ecs-tasks.amazonaws.com") != std::string::npos;
      st->reset();
    }
    if (!ok)
      return client(fmt::format("ECS was unable to assume the role '{}' that was provided for this task. Please verify "
                                "that the role being passed has the proper trust relationship and permissions and that "
                                "your IAM user has permissions to pass this role.", r));
  }
  if (!role.empty()) task["_TaskRoleArn"] = role;
  if (!exec_role.empty()) task["_ExecutionRoleArn"] = exec_role;
  PIER_TRY(save_task(db, TaskRow{t.account, t.region, id, task}));
  if (!t.tags.empty()) PIER_TRY(put_tags(db, arn, t.tags, "key", "value"));
  if (!t.service.empty()) {
    PIER_ASSIGN(auto* st, db.prepare("UPDATE ecs_tasks SET service=? WHERE account=? AND region=? AND id=?"));
    st->args(t.service, t.account, t.region, id);
    PIER_TRY(st->run());
  }
  return task;
}

Status request_stop(Db&, json::object& task, const std::string& stop_code, const std::string& reason, double now) {
  request_stop(task, stop_code, reason, now);
  return {};
}

void request_stop(json::object& task, const std::string& stop_code, const std::string& reason, double now) {
  if (get_string(task, "desiredStatus") == "STOPPED") return;
  task["desiredStatus"] = "STOPPED";
  task["stopCode"] = stop_code;
  task["stoppedReason"] = reason;
  task["stoppingAt"] = now;
  task["version"] = get_int(task, "version").value_or(1) + 1;
}

Result<std::vector<TaskRow>> live_tasks(Db& db) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT account, region, id, doc FROM ecs_tasks WHERE last_status <> 'STOPPED' ORDER BY created"));
  std::vector<TaskRow> out;
  for (;;) {
    PIER_ASSIGN(bool row, st->step());
    if (!row) break;
    PIER_ASSIGN(auto doc, parse_object(st->text(3)));
    out.push_back(TaskRow{st->text(0), st->text(1), st->text(2), std::move(doc)});
  }
  return out;
}

Result<std::optional<TaskRow>> load_task(Db& db, const std::string& account, const std::string& region,
                                         const std::string& id) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM ecs_tasks WHERE account=? AND region=? AND id=?"));
  st->args(account, region, id);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<TaskRow>();
  PIER_ASSIGN(auto doc, parse_object(st->text(0)));
  st->reset();
  return std::optional<TaskRow>(TaskRow{account, region, id, std::move(doc)});
}

Status save_task(Db& db, const TaskRow& t) {
  auto a = aws::Arn::parse(get_string(t.doc, "clusterArn"));
  std::string cluster = a ? a->resource.substr(std::string_view("cluster/").size()) : "";
  PIER_ASSIGN(auto* st, db.prepare(
      "INSERT INTO ecs_tasks(account, region, id, arn, cluster, service, last_status, desired_status, created, doc) "
      "VALUES(?,?,?,?,?,'',?,?,?,?) ON CONFLICT(account, region, id) DO UPDATE SET last_status=excluded.last_status, "
      "desired_status=excluded.desired_status, doc=excluded.doc"));
  double created = t.doc.contains("createdAt") && t.doc.at("createdAt").is_number() ? t.doc.at("createdAt").to_number<double>() : 0;
  st->args(t.account, t.region, t.id, get_string(t.doc, "taskArn"), cluster, get_string(t.doc, "lastStatus"),
           get_string(t.doc, "desiredStatus"), created, json::serialize(t.doc));
  return st->run();
}

void add_task_actions(aws::ServiceDef& def, store::Store& store, std::function<void()> on_change) {
  auto kick = [on_change] {
    if (on_change) on_change();
  };
  def.actions.push_back({"RunTask", [&store, kick](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string launch = get_string(in, "launchType");
    const auto* cps = get_array(in, "capacityProviderStrategy");
    if (!launch.empty() && cps && !cps->empty())
      return invalid("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.");
    if (cps && !cps->empty()) {
      for (const auto& p : *cps) {
        std::string n = p.is_object() ? get_string(p.as_object(), "capacityProvider") : "";
        if (n != "FARGATE" && n != "FARGATE_SPOT") return invalid(fmt::format("The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again."));
      }
      launch = "FARGATE";
    }
    if (launch.empty() || launch == "EC2" || launch == "EXTERNAL")
      return invalid("No Container Instances were found in your cluster.");
    if (launch != "FARGATE") return invalid(fmt::format("Invalid launch type: {}", launch));
    int64_t count = get_int(in, "count").value_or(1);
    if (count < 1 || count > 10) return invalid("count must be between 1 and 10.");
    PIER_TRY(check_tags(in));
    std::string td_ref = get_string(in, "taskDefinition");
    if (td_ref.empty()) return invalid("taskDefinition can not be blank.");
    PIER_ASSIGN(TdRef ref, parse_td_ref(ctx, td_ref, false));
    const json::value* nc = in.if_contains("networkConfiguration");
    const json::value* awsvpc = nc && nc->is_object() ? nc->as_object().if_contains("awsvpcConfiguration") : nullptr;
    json::object out{{"tasks", json::array()}, {"failures", json::array()}};
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto cluster, require_active_cluster(db, ctx, get_string(in, "cluster", "default")));
      PIER_ASSIGN(auto td, load_td(db, ctx, ref));
      if (!td) return client("TaskDefinition not found.");
      if (get_string(*td, "networkMode") == "awsvpc" && (!awsvpc || !awsvpc->is_object()))
        return invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.");
      NewTask t;
      t.account = ctx.principal.account;
      t.region = ctx.region;
      t.cluster = get_string(cluster, "clusterName");
      t.task_definition = *td;
      if (awsvpc && awsvpc->is_object()) t.awsvpc = awsvpc->as_object();
      if (auto* o = in.if_contains("overrides"); o && o->is_object()) t.overrides = o->as_object();
      if (const auto* tags = get_array(in, "tags")) t.tags = *tags;
      t.started_by = get_string(in, "startedBy");
      t.group = get_string(in, "group");
      t.enable_execute_command = get_bool(in, "enableExecuteCommand");
      t.platform_version = get_string(in, "platformVersion", "LATEST");
      t.now = ctx.now;
      for (int64_t i = 0; i < count; ++i) {
        PIER_ASSIGN(auto task, create_task(db, t));
        out["tasks"].as_array().push_back(task_view(task));
      }
      return {};
    }));
    kick();
    return out;
  }});

  def.actions.push_back({"StopTask", [&store, kick](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string ref = get_string(in, "task");
    std::string id = task_id_of(ref);
    if (id.empty()) return invalid("The referenced task was not found.");
    json::object out;
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto cluster, require_active_cluster(db, ctx, get_string(in, "cluster", "default")));
      PIER_ASSIGN(auto row, load_task(db, ctx.principal.account, ctx.region, id));
      if (!row || get_string(row->doc, "clusterArn") != get_string(cluster, "clusterArn"))
        return invalid("The referenced task was not found.");
      std::string reason = get_string(in, "reason");
      if (reason.empty()) reason = "Task stopped by user";
      PIER_TRY(request_stop(db, row->doc, "UserInitiated", reason, ctx.now));
      PIER_TRY(save_task(db, *row));
      out["task"] = task_view(row->doc);
      return {};
    }));
    kick();
    return out;
  }});

  def.actions.push_back({"DescribeTasks", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    auto refs = get_strings(in, "tasks");
    if (refs.empty()) return invalid("Tasks cannot be empty.");
    if (refs.size() > 100) return invalid("Too many tasks were specified. A maximum of 100 tasks can be specified.");
    bool tags = false;
    for (const auto& i : get_strings(in, "include")) tags = tags || i == "TAGS";
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto cluster, require_active_cluster(db, ctx, get_string(in, "cluster", "default")));
      json::array tasks, failures;
      for (const auto& ref : refs) {
        std::string id = task_id_of(ref);
        std::optional<TaskRow> row;
        if (!id.empty()) {
          PIER_ASSIGN(row, load_task(db, ctx.principal.account, ctx.region, id));
        }
        if (!row || get_string(row->doc, "clusterArn") != get_string(cluster, "clusterArn")) {
          std::string arn = ref.starts_with("arn:") ? ref
                                                    : task_arn(ctx.principal.account, ctx.region,
                                                               get_string(cluster, "clusterName"), ref);
          failures.push_back(json::object{{"arn", arn}, {"reason", "MISSING"}});
          continue;
        }
        auto v = task_view(row->doc);
        if (tags) {
          PIER_ASSIGN(auto t, list_tags(db, get_string(v, "taskArn"), "key", "value"));
          v["tags"] = std::move(t);
        } else {
          v.erase("tags");
        }
        tasks.push_back(std::move(v));
      }
      return json::object{{"tasks", tasks}, {"failures", failures}};
    });
  }});

  def.actions.push_back({"ListTasks", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(Page page, read_page(in));
    std::string desired = get_string(in, "desiredStatus", "RUNNING");
    if (desired != "RUNNING" && desired != "PENDING" && desired != "STOPPED")
      return invalid("desiredStatus must be one of RUNNING, PENDING, STOPPED.");
    std::string launch = get_string(in, "launchType");
    std::string family = get_string(in, "family"), started_by = get_string(in, "startedBy"),
                service = get_string(in, "serviceName");
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto cluster, require_active_cluster(db, ctx, get_string(in, "cluster", "default")));
      PIER_ASSIGN(auto* st, db.prepare(
          "SELECT arn FROM ecs_tasks WHERE account=? AND region=? AND cluster=? AND desired_status=? "
          "AND (?='' OR service=?) "
          "AND (?='' OR json_extract(doc, '$.startedBy')=?) "
          "AND (?='' OR json_extract(doc, '$._TaskDefinition.family')=?) "
          "AND (?='' OR ?='FARGATE') AND (?<>'PENDING' OR last_status<>'RUNNING') "
          "ORDER BY created, id LIMIT ? OFFSET ?"));
      // PENDING lists tasks that are meant to run but do not yet.
      std::string want = desired == "PENDING" ? "RUNNING" : desired;
      st->args(ctx.principal.account, ctx.region, get_string(cluster, "clusterName"), want, service, service,
               started_by, started_by, family, family, launch, launch, desired, page.max + 1,
               static_cast<int64_t>(page.offset));
      return collect_page(st, page, "taskArns");
    });
  }});

  def.actions.push_back({"StartTask", [](RequestContext&, json::object&) -> Result<json::object> {
    return invalid("No Container Instances were found in your cluster.");
  }});
}

}  // namespace pier::svc::ecs
