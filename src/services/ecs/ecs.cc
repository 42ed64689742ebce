#include "services/ecs/ecs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

#include "aws/arn.h"
#include "common/strings.h"
#include "services/util.h"
#include "services/ecs/internal.h"
#include "services/ecs/services.h"
#include "services/ecs/tasks.h"

namespace pier::svc::ecs {

using aws::RequestContext;
using store::Db;
using store::Stmt;
namespace json = boost::json;

namespace internal {

Error client(std::string msg) { return Error::invalid("ClientException", std::move(msg)); }
Error invalid(std::string msg) { return Error::invalid("InvalidParameterException", std::move(msg)); }
Error cluster_not_found() { return Error::not_found("ClusterNotFoundException", "Cluster not found."); }

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

std::string cluster_arn(const RequestContext& ctx, std::string_view name) {
  return aws::make_arn("ecs", ctx.region, ctx.principal.account, fmt::format("cluster/{}", name));
}

// A cluster reference — a name or an ARN — as the cluster's name.
Result<std::string> cluster_name(const RequestContext& ctx, std::string_view ref) {
  if (ref.empty()) return std::string("default");
  if (ref.starts_with("arn:")) {
    auto a = aws::Arn::parse(ref);
    if (!a || a->service != "ecs" || !a->resource.starts_with("cluster/"))
      return invalid("Invalid identifier: Unexpected number of separators");
    if (a->region != ctx.region || a->account != ctx.principal.account)
      return invalid("Invalid identifier: the cluster ARN is for another region or account");
    return a->resource.substr(8);
  }
  return std::string(ref);
}

Result<std::optional<json::object>> load_cluster(Db& db, const RequestContext& ctx,
                                                 const std::string& name) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM ecs_clusters WHERE account=? AND region=? AND name=?"));
  st->args(ctx.principal.account, ctx.region, name);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<json::object>();
  PIER_ASSIGN(auto doc, parse_object(st->text(0)));
  st->reset();
  return std::optional<json::object>(std::move(doc));
}

Result<json::object> require_active_cluster(Db& db, const RequestContext& ctx, const std::string& ref) {
  PIER_ASSIGN(std::string name, cluster_name(ctx, ref));
  PIER_ASSIGN(auto c, load_cluster(db, ctx, name));
  if (!c || get_string(*c, "status") == "INACTIVE") return cluster_not_found();
  return std::move(*c);
}

Status save_cluster(Db& db, const RequestContext& ctx, const json::object& c) {
  PIER_ASSIGN(auto* st, db.prepare(
      "INSERT INTO ecs_clusters(account, region, name, arn, status, doc) VALUES(?,?,?,?,?,?) "
      "ON CONFLICT(account, region, name) DO UPDATE SET arn=excluded.arn, status=excluded.status, doc=excluded.doc"));
  st->args(ctx.principal.account, ctx.region, get_string(c, "clusterName"), get_string(c, "clusterArn"),
           get_string(c, "status"), json::serialize(c));
  return st->run();
}

// The cluster as DescribeClusters shows it: counts always; settings,
// configuration, tags, statistics and attachments only when asked for.
Result<json::object> view_cluster(Db& db, json::object c, const std::vector<std::string>& include,
                                  bool all) {
  auto has = [&](std::string_view what) {
    return all || std::find(include.begin(), include.end(), what) != include.end();
  };
  // The counts, as they are now.
  auto count = [&](const char* sql) -> Result<int64_t> {
    auto a = aws::Arn::parse(get_string(c, "clusterArn"));
    if (!a) return int64_t{0};
    PIER_ASSIGN(auto* st, db.prepare(sql));
    st->args(a->account, a->region, get_string(c, "clusterName"));
    PIER_ASSIGN(bool row, st->step());
    int64_t n = row ? st->integer(0) : 0;
    st->reset();
    return n;
  };
  if (get_string(c, "status") == "ACTIVE") {
    PIER_ASSIGN(c["runningTasksCount"], count("SELECT COUNT(*) FROM ecs_tasks WHERE account=? AND region=? AND cluster=? AND last_status='RUNNING'"));
    PIER_ASSIGN(c["pendingTasksCount"], count("SELECT COUNT(*) FROM ecs_tasks WHERE account=? AND region=? AND cluster=? AND desired_status='RUNNING' AND last_status<>'RUNNING'"));
    PIER_ASSIGN(c["activeServicesCount"], count("SELECT COUNT(*) FROM ecs_services WHERE account=? AND region=? AND cluster=? AND status='ACTIVE'"));
  }
  if (!has("SETTINGS")) c.erase("settings");
  if (!has("CONFIGURATIONS")) c.erase("configuration");
  if (!has("ATTACHMENTS")) c.erase("attachments");
  if (has("STATISTICS")) c["statistics"] = json::array();
  if (has("TAGS")) {
    PIER_ASSIGN(auto tags, list_tags(db, get_string(c, "clusterArn"), "key", "value"));
    c["tags"] = std::move(tags);
  }
  return c;
}

Status check_tags(const json::object& in) {
  if (const auto* tags = get_array(in, "tags")) {
    if (tags->size() > 50) return invalid("Tags can have a maximum of 50 tags.");
    for (const auto& t : *tags) {
      std::string k = get_string(t.as_object(), "key");
      if (k.empty()) return invalid("Tag keys must not be empty.");
      if (str::starts_with_icase(k, "aws:"))
        return invalid("Tag keys may not begin with the reserved prefix 'aws:'.");
    }
  }
  return {};
}

// ---------------------------------------------------------------- task definitions

Result<TdRef> parse_td_ref(const RequestContext& ctx, std::string_view ref, bool need_revision) {
  std::string_view s = ref;
  if (s.starts_with("arn:")) {
    auto a = aws::Arn::parse(s);
    if (!a || a->service != "ecs" || !a->resource.starts_with("task-definition/") ||
        a->account != ctx.principal.account || a->region != ctx.region)
      return client("The specified task definition identifier is invalid. Specify a valid name or ARN and try again.");
    s = std::string_view(ref).substr(ref.find("task-definition/") + 16);
  }
  TdRef r;
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) {
    if (need_revision)
      return client("The specified task definition identifier is invalid. Specify a valid name or ARN and try again.");
    r.family = std::string(s);
  } else {
    r.family = std::string(s.substr(0, colon));
    std::string rev(s.substr(colon + 1));
    char* end = nullptr;
    long v = std::strtol(rev.c_str(), &end, 10);
    if (rev.empty() || *end || v <= 0)
      return client("The specified task definition identifier is invalid. Specify a valid name or ARN and try again.");
    r.revision = v;
  }
  if (!valid_name(r.family))
    return client("The specified task definition identifier is invalid. Specify a valid name or ARN and try again.");
  return r;
}

Result<std::optional<json::object>> load_td(Db& db, const RequestContext& ctx, const TdRef& r) {
  Stmt* st = nullptr;
  if (r.revision) {
    PIER_ASSIGN(st, db.prepare("SELECT doc FROM ecs_task_definitions WHERE account=? AND region=? AND family=? AND revision=?"));
    st->args(ctx.principal.account, ctx.region, r.family, r.revision);
  } else {
    PIER_ASSIGN(st, db.prepare("SELECT doc FROM ecs_task_definitions WHERE account=? AND region=? AND family=? AND status='ACTIVE' ORDER BY revision DESC LIMIT 1"));
    st->args(ctx.principal.account, ctx.region, r.family);
  }
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<json::object>();
  PIER_ASSIGN(auto doc, parse_object(st->text(0)));
  st->reset();
  return std::optional<json::object>(std::move(doc));
}

// Fills in what ECS fills in, and checks what ECS checks, for one container.
Status normalize_container(json::object& c, bool awsvpc) {
  if (get_string(c, "name").empty()) return client("Container.name should not be null or empty.");
  if (get_string(c, "image").empty()) return client("Container.image should not be null or empty.");
  if (!c.contains("cpu")) c["cpu"] = 0;
  if (!c.contains("essential")) c["essential"] = true;
  for (const char* k : {"portMappings", "environment", "mountPoints", "volumesFrom", "systemControls"})
    if (!c.contains(k)) c[k] = json::array();
  if (auto* pm = c.if_contains("portMappings"); pm && pm->is_array()) {
    for (auto& p : pm->as_array()) {
      if (!p.is_object()) continue;
      auto& po = p.as_object();
      auto cp = get_int(po, "containerPort");
      auto hp = get_int(po, "hostPort");
      if (awsvpc && cp && hp && *cp != *hp)
        return client("When networkMode=awsvpc, the host ports and container ports in port mappings must match.");
      if (awsvpc && cp && !hp) po["hostPort"] = *cp;
      if (!po.contains("protocol")) po["protocol"] = "tcp";
    }
  }
  return {};
}

Result<Page> read_page(const json::object& in) {
  Page p;
  p.max = get_int(in, "maxResults").value_or(100);
  if (p.max < 1 || p.max > 100) return invalid("maxResults must be between 1 and 100.");
  if (auto tok = get_string(in, "nextToken"); !tok.empty()) {
    auto o = parse_page_token(tok);
    if (!o) return invalid("Invalid token");
    p.offset = *o;
  }
  return p;
}

// Steps a statement bound with LIMIT page.max + 1 and OFFSET page.offset and
// returns {key: [first column…], nextToken when there is more}.
Result<json::object> collect_page(Stmt* st, const Page& page, std::string_view key) {
  json::array items;
  for (;;) {
    PIER_ASSIGN(bool row, st->step());
    if (!row) break;
    items.push_back(json::string(st->text(0)));
  }
  json::object out;
  if (static_cast<int64_t>(items.size()) > page.max) {
    items.pop_back();
    out["nextToken"] = page_token(page.offset + static_cast<size_t>(page.max));
  }
  out[key] = std::move(items);
  return out;
}

}  // namespace internal

using namespace internal;

// Fargate task sizes (cpu units → allowed memory in MiB).
bool fargate_size_valid(int64_t cpu, int64_t mem) {
  auto range = [&](int64_t lo, int64_t hi, int64_t step) {
    return mem >= lo && mem <= hi && (mem - lo) % step == 0;
  };
  switch (cpu) {
    case 256: return mem == 512 || mem == 1024 || mem == 2048;
    case 512: return range(1024, 4096, 1024);
    case 1024: return range(2048, 8192, 1024);
    case 2048: return range(4096, 16384, 1024);
    case 4096: return range(8192, 30720, 1024);
    case 8192: return range(16384, 61440, 4096);
    case 16384: return range(32768, 122880, 8192);
    default: return false;
  }
}

namespace {
std::optional<std::pair<double, std::string>> number_and_unit(std::string_view s) {
  std::string t(str::trim(s));
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end == t.c_str() || v < 0) return std::nullopt;
  return std::make_pair(v, str::lower(str::trim(std::string_view(end))));
}
}  // namespace

std::optional<int64_t> parse_cpu(std::string_view s) {
  auto nu = number_and_unit(s);
  if (!nu) return std::nullopt;
  auto [v, unit] = *nu;
  if (unit.empty() || unit == "cpu" || unit == "cpu units") return std::llround(v);
  if (unit == "vcpu") return std::llround(v * 1024);
  return std::nullopt;
}

std::optional<int64_t> parse_memory(std::string_view s) {
  auto nu = number_and_unit(s);
  if (!nu) return std::nullopt;
  auto [v, unit] = *nu;
  if (unit.empty() || unit == "mib" || unit == "mb") return std::llround(v);
  if (unit == "gb" || unit == "gib") return std::llround(v * 1024);
  return std::nullopt;
}

EcsService::EcsService(store::Store& store, std::function<void()> on_change, exec::Broker* broker)
    : store_(store), on_change_(std::move(on_change)), broker_(broker) {}

aws::ServiceDef EcsService::definition() {
  aws::ServiceDef def;
  def.model_id = "ecs";
  auto cluster_resource = [](const RequestContext& ctx, const json::object& in) {
    aws::Authz a;
    std::string ref = get_string(in, "cluster", get_string(in, "clusterName", "default"));
    auto name = cluster_name(ctx, ref);
    a.resource = cluster_arn(ctx, name.ok() ? *name : ref);
    return a;
  };

  def.actions.push_back({"CreateCluster", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "clusterName", "default");
    if (!valid_name(name))
      return invalid("Cluster name can only contain alphanumeric characters, hyphens and underscores, and must be 1-255 characters long.");
    PIER_TRY(check_tags(in));
    json::object c;
    c["clusterArn"] = cluster_arn(ctx, name);
    c["clusterName"] = name;
    c["status"] = "ACTIVE";
    c["registeredContainerInstancesCount"] = 0;
    c["runningTasksCount"] = 0;
    c["pendingTasksCount"] = 0;
    c["activeServicesCount"] = 0;
    c["statistics"] = json::array();
    c["settings"] = in.contains("settings") ? in["settings"]
                                            : json::value(json::array{json::object{{"name", "containerInsights"}, {"value", "disabled"}}});
    if (in.contains("configuration")) c["configuration"] = in["configuration"];
    c["capacityProviders"] = in.contains("capacityProviders") ? in["capacityProviders"] : json::value(json::array());
    c["defaultCapacityProviderStrategy"] = in.contains("defaultCapacityProviderStrategy") ? in["defaultCapacityProviderStrategy"] : json::value(json::array());
    if (in.contains("serviceConnectDefaults")) c["serviceConnectDefaults"] = in["serviceConnectDefaults"];
    json::object result;
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto existing, load_cluster(db, ctx, name));
      if (existing && get_string(*existing, "status") == "ACTIVE") {
        // CreateCluster on an existing active cluster returns it unchanged.
        result = std::move(*existing);
        return {};
      }
      PIER_TRY(drop_tags(db, get_string(c, "clusterArn")));
      PIER_TRY(save_cluster(db, ctx, c));
      if (const auto* tags = get_array(in, "tags"))
        PIER_TRY(put_tags(db, get_string(c, "clusterArn"), *tags, "key", "value"));
      result = c;
      return {};
    }));
    PIER_ASSIGN(auto view, store_.read([&](Db& db) { return view_cluster(db, result, {}, true); }));
    return json::object{{"cluster", view}};
  }, "", cluster_resource});

  def.actions.push_back({"DescribeClusters", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::vector<std::string> refs = get_strings(in, "clusters");
    if (refs.empty()) refs.push_back("default");
    if (refs.size() > 100) return invalid("clusters can have at most 100 items.");
    std::vector<std::string> include = get_strings(in, "include");
    return store_.read([&](Db& db) -> Result<json::object> {
      json::array clusters, failures;
      for (const auto& ref : refs) {
        auto name = cluster_name(ctx, ref);
        std::string arn = ref.starts_with("arn:") ? ref : cluster_arn(ctx, ref);
        if (!name.ok()) {
          failures.push_back(json::object{{"arn", arn}, {"reason", "MISSING"}});
          continue;
        }
        PIER_ASSIGN(auto c, load_cluster(db, ctx, *name));
        if (!c) {
          failures.push_back(json::object{{"arn", arn}, {"reason", "MISSING"}});
          continue;
        }
        PIER_ASSIGN(auto view, view_cluster(db, std::move(*c), include, false));
        clusters.push_back(std::move(view));
      }
      return json::object{{"clusters", clusters}, {"failures", failures}};
    });
  }});

  def.actions.push_back({"ListClusters", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(Page page, read_page(in));
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto* st, db.prepare("SELECT arn FROM ecs_clusters WHERE account=? AND region=? AND status='ACTIVE' ORDER BY arn LIMIT ? OFFSET ?"));
      st->args(ctx.principal.account, ctx.region, page.max + 1, static_cast<int64_t>(page.offset));
      return collect_page(st, page, "clusterArns");
    });
  }});

  def.actions.push_back({"DeleteCluster", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    json::object result;
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto c, require_active_cluster(db, ctx, get_string(in, "cluster")));
      auto count = [&](const char* sql) -> Result<int64_t> {
        PIER_ASSIGN(auto* st, db.prepare(sql));
        st->args(ctx.principal.account, ctx.region, get_string(c, "clusterName"));
        PIER_ASSIGN(bool row, st->step());
        int64_t n = row ? st->integer(0) : 0;
        st->reset();
        return n;
      };
      PIER_ASSIGN(int64_t services, count("SELECT COUNT(*) FROM ecs_services WHERE account=? AND region=? AND cluster=? AND status IN ('ACTIVE','DRAINING')"));
      if (services > 0)
        return Error::conflict("ClusterContainsServicesException", "The Cluster cannot be deleted while Services are active.");
      PIER_ASSIGN(int64_t tasks, count("SELECT COUNT(*) FROM ecs_tasks WHERE account=? AND region=? AND cluster=? AND last_status<>'STOPPED'"));
      if (tasks > 0)
        return Error::conflict("ClusterContainsTasksException", "The Cluster cannot be deleted while Tasks are active.");
      c["status"] = "INACTIVE";
      PIER_TRY(save_cluster(db, ctx, c));
      result = std::move(c);
      return {};
    }));
    PIER_ASSIGN(auto view, store_.read([&](Db& db) { return view_cluster(db, result, {}, true); }));
    return json::object{{"cluster", view}};
  }, "", cluster_resource});

  auto update = [this](bool settings_only) {
    return [this, settings_only](RequestContext& ctx, json::object& in) -> Result<json::object> {
      json::object result;
      PIER_TRY(store_.write([&](Db& db) -> Status {
        PIER_ASSIGN(auto c, require_active_cluster(db, ctx, get_string(in, "cluster")));
        if (const auto* s = get_array(in, "settings")) {
          // Settings merge by name, as ECS does.
          json::array merged = c.contains("settings") && c["settings"].is_array() ? c["settings"].as_array() : json::array();
          for (const auto& ns : *s) {
            std::string n = get_string(ns.as_object(), "name");
            bool found = false;
            for (auto& old : merged)
              if (get_string(old.as_object(), "name") == n) {
                old = ns;
                found = true;
              }
            if (!found) merged.push_back(ns);
          }
          c["settings"] = std::move(merged);
        }
        if (!settings_only) {
          if (in.contains("configuration")) c["configuration"] = in["configuration"];
          if (in.contains("serviceConnectDefaults")) c["serviceConnectDefaults"] = in["serviceConnectDefaults"];
        }
        PIER_TRY(save_cluster(db, ctx, c));
        result = std::move(c);
        return {};
      }));
      PIER_ASSIGN(auto view, store_.read([&](Db& db) { return view_cluster(db, result, {}, true); }));
      return json::object{{"cluster", view}};
    };
  };
  def.actions.push_back({"UpdateCluster", update(false), "", cluster_resource});
  def.actions.push_back({"UpdateClusterSettings", update(true), "", cluster_resource});

  def.actions.push_back({"RegisterTaskDefinition", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string family = get_string(in, "family");
    if (!valid_name(family))
      return client("Family contains invalid characters. Family can only contain letters (uppercase and lowercase), numbers, hyphens (-), and underscores (_).");
    PIER_TRY(check_tags(in));
    const auto* containers = get_array(in, "containerDefinitions");
    if (!containers || containers->empty()) return client("TaskDefinition must contain at least one container definition.");
    json::object td = in;
    td.erase("tags");
    std::string mode = get_string(td, "networkMode", "");
    bool awsvpc = mode == "awsvpc";
    json::array cdefs;
    std::vector<std::string> names;
    for (const auto& c : *containers) {
      json::object co = c.as_object();
      PIER_TRY(normalize_container(co, awsvpc));
      std::string n = get_string(co, "name");
      if (std::find(names.begin(), names.end(), n) != names.end())
        return client(fmt::format("Duplicate container name found: {}. Container names must be unique within a task definition.", n));
      names.push_back(n);
      cdefs.push_back(std::move(co));
    }
    td["containerDefinitions"] = std::move(cdefs);
    // Task size: normalized to units and MiB, and checked against Fargate's
    // table when the task requires Fargate.
    std::optional<int64_t> cpu, mem;
    if (auto s = get_string(td, "cpu"); !s.empty()) {
      cpu = parse_cpu(s);
      if (!cpu) return client(fmt::format("Invalid 'cpu' setting for task: {}", s));
      td["cpu"] = std::to_string(*cpu);
    }
    if (auto s = get_string(td, "memory"); !s.empty()) {
      mem = parse_memory(s);
      if (!mem) return client(fmt::format("Invalid 'memory' setting for task: {}", s));
      td["memory"] = std::to_string(*mem);
    }
    auto requires_compat = get_strings(td, "requiresCompatibilities");
    bool fargate = std::find(requires_compat.begin(), requires_compat.end(), "FARGATE") != requires_compat.end();
    if (fargate) {
      if (!awsvpc) return client("Fargate only supports network mode 'awsvpc'.");
      if (!cpu) return client("Fargate requires that 'cpu' be defined at the task level.");
      if (!mem) return client("Fargate requires that 'memory' be defined at the task level.");
      if (!fargate_size_valid(*cpu, *mem))
        return client(fmt::format("No Fargate configuration exists for given values: {} CPU, {} memory. See the Amazon ECS documentation for the valid CPU and memory combinations.", *cpu, *mem));
    }
    bool fargate_ok = awsvpc && cpu && mem && fargate_size_valid(*cpu, *mem);
    json::array compat{"EC2"};
    if (fargate_ok) compat.push_back("FARGATE");
    td["compatibilities"] = std::move(compat);
    // requiresAttributes: the agent capabilities the definition depends on.
    json::array attrs;
    auto attr = [&](std::string n) { attrs.push_back(json::object{{"name", std::move(n)}}); };
    attr("com.amazonaws.ecs.capability.docker-remote-api.1.18");
    if (awsvpc) attr("ecs.capability.task-eni");
    if (td.contains("taskRoleArn")) attr("com.amazonaws.ecs.capability.task-iam-role");
    bool awslogs = false;
    for (const auto& c : td["containerDefinitions"].as_array()) {
      const auto& co = c.as_object();
      if (auto* lc = co.if_contains("logConfiguration"); lc && lc->is_object() &&
          get_string(lc->as_object(), "logDriver") == "awslogs")
        awslogs = true;
    }
    if (awslogs) {
      attr("com.amazonaws.ecs.capability.logging-driver.awslogs");
      attr("com.amazonaws.ecs.capability.docker-remote-api.1.19");
      if (td.contains("executionRoleArn")) attr("ecs.capability.execution-role-awslogs");
    }
    td["requiresAttributes"] = std::move(attrs);
    if (!td.contains("volumes")) td["volumes"] = json::array();
    if (!td.contains("placementConstraints")) td["placementConstraints"] = json::array();
    td["status"] = "ACTIVE";
    td["registeredAt"] = ctx.now;
    td["registeredBy"] = ctx.principal.arn;

    json::object out;
    PIER_TRY(store_.write([&](Db& db) -> Status {
      // The next revision is one past the highest ever used in the family, in
      // the same transaction as the insert, so revisions have no gaps or repeats.
      PIER_ASSIGN(auto* st, db.prepare("SELECT COALESCE(MAX(revision), 0) FROM ecs_task_definitions WHERE account=? AND region=? AND family=?"));
      st->args(ctx.principal.account, ctx.region, family);
      PIER_ASSIGN(bool row, st->step());
      int64_t rev = (row ? st->integer(0) : 0) + 1;
      st->reset();
      std::string arn = aws::make_arn("ecs", ctx.region, ctx.principal.account, fmt::format("task-definition/{}:{}", family, rev));
      td["taskDefinitionArn"] = arn;
      td["revision"] = rev;
      PIER_ASSIGN(auto* ins, db.prepare("INSERT INTO ecs_task_definitions(account, region, family, revision, arn, status, doc) VALUES(?,?,?,?,?,?,?)"));
      ins->args(ctx.principal.account, ctx.region, family, rev, arn, "ACTIVE", json::serialize(td));
      PIER_TRY(ins->run());
      if (const auto* tags = get_array(in, "tags")) PIER_TRY(put_tags(db, arn, *tags, "key", "value"));
      return {};
    }));
    out["taskDefinition"] = td;
    if (const auto* tags = get_array(in, "tags")) out["tags"] = *tags;
    return out;
  }});

  def.actions.push_back({"DescribeTaskDefinition", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(TdRef ref, parse_td_ref(ctx, get_string(in, "taskDefinition"), false));
    auto include = get_strings(in, "include");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto td, load_td(db, ctx, ref));
      if (!td) return client("Unable to describe task definition.");
      json::object out{{"taskDefinition", *td}};
      if (std::find(include.begin(), include.end(), "TAGS") != include.end()) {
        PIER_ASSIGN(auto tags, list_tags(db, get_string(*td, "taskDefinitionArn"), "key", "value"));
        out["tags"] = std::move(tags);
      }
      return out;
    });
  }});

  def.actions.push_back({"DeregisterTaskDefinition", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(TdRef ref, parse_td_ref(ctx, get_string(in, "taskDefinition"), true));
    json::object result;
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto td, load_td(db, ctx, ref));
      if (!td) return client("The specified task definition does not exist. Specify a valid account, family, revision and try again.");
      if (get_string(*td, "status") == "ACTIVE") {
        (*td)["status"] = "INACTIVE";
        (*td)["deregisteredAt"] = ctx.now;
        PIER_ASSIGN(auto* st, db.prepare("UPDATE ecs_task_definitions SET status='INACTIVE', doc=? WHERE arn=?"));
        st->args(json::serialize(*td), get_string(*td, "taskDefinitionArn"));
        PIER_TRY(st->run());
      }
      result = std::move(*td);
      return {};
    }));
    return json::object{{"taskDefinition", result}};
  }});

  def.actions.push_back({"ListTaskDefinitions", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string family = get_string(in, "familyPrefix");
    std::string status = get_string(in, "status", "ACTIVE");
    bool desc = get_string(in, "sort", "ASC") == "DESC";
    PIER_ASSIGN(Page page, read_page(in));
    return store_.read([&](Db& db) -> Result<json::object> {
      std::string sql = fmt::format(
          "SELECT arn FROM ecs_task_definitions WHERE account=? AND region=? AND status=? "
          "AND (?='' OR family=?) ORDER BY family {0}, revision {0} LIMIT ? OFFSET ?",
          desc ? "DESC" : "ASC");
      PIER_ASSIGN(auto* st, db.prepare(sql));
      st->args(ctx.principal.account, ctx.region, status, family, family, page.max + 1,
               static_cast<int64_t>(page.offset));
      return collect_page(st, page, "taskDefinitionArns");
    });
  }});

  def.actions.push_back({"ListTaskDefinitionFamilies", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string prefix = get_string(in, "familyPrefix");
    std::string status = get_string(in, "status", "ACTIVE");
    PIER_ASSIGN(Page page, read_page(in));
    return store_.read([&](Db& db) -> Result<json::object> {
      // A family is ACTIVE while any revision is; INACTIVE when none is.
      const char* having = status == "ACTIVE" ? "HAVING SUM(status='ACTIVE') > 0"
                           : status == "INACTIVE" ? "HAVING SUM(status='ACTIVE') = 0" : "";
      std::string sql = fmt::format(
          "SELECT family FROM ecs_task_definitions WHERE account=? AND region=? AND substr(family, 1, length(?))=? "
          "GROUP BY family {} ORDER BY family LIMIT ? OFFSET ?", having);
      PIER_ASSIGN(auto* st, db.prepare(sql));
      st->args(ctx.principal.account, ctx.region, prefix, prefix, page.max + 1,
               static_cast<int64_t>(page.offset));
      return collect_page(st, page, "families");
    });
  }});

  // Tags: the resource must exist (a cluster or a task definition so far).
  auto resource_exists = [](Db& db, const RequestContext& ctx, const std::string& arn) -> Result<bool> {
    auto a = aws::Arn::parse(arn);
    if (!a || a->service != "ecs") return invalid("The ARN provided is invalid.");
    if (a->account != ctx.principal.account || a->region != ctx.region) return false;
    const char* sql = a->resource.starts_with("cluster/") ? "SELECT 1 FROM ecs_clusters WHERE arn=? AND status='ACTIVE'"
                      : a->resource.starts_with("task-definition/") ? "SELECT 1 FROM ecs_task_definitions WHERE arn=?"
                      : a->resource.starts_with("service/") ? "SELECT 1 FROM ecs_services WHERE arn=? AND status<>'INACTIVE'"
                      : a->resource.starts_with("task/") ? "SELECT 1 FROM ecs_tasks WHERE arn=?"
                                                                    : nullptr;
    if (!sql) return false;
    PIER_ASSIGN(auto* st, db.prepare(sql));
    st->args(arn);
    PIER_ASSIGN(bool row, st->step());
    st->reset();
    return row;
  };
  auto arn_resource = [](const RequestContext&, const json::object& in) {
    aws::Authz a;
    a.resource = get_string(in, "resourceArn");
    return a;
  };
  def.actions.push_back({"TagResource", [this, resource_exists](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "resourceArn");
    PIER_TRY(check_tags(in));
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(bool ok, resource_exists(db, ctx, arn));
      if (!ok) return Error::not_found("ResourceNotFoundException", "The specified resource could not be found.");
      return put_tags(db, arn, *get_array(in, "tags"), "key", "value");
    }));
    return json::object();
  }, "", arn_resource});
  def.actions.push_back({"UntagResource", [this, resource_exists](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "resourceArn");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(bool ok, resource_exists(db, ctx, arn));
      if (!ok) return Error::not_found("ResourceNotFoundException", "The specified resource could not be found.");
      return remove_tags(db, arn, get_strings(in, "tagKeys"));
    }));
    return json::object();
  }, "", arn_resource});
  def.actions.push_back({"ListTagsForResource", [this, resource_exists](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "resourceArn");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(bool ok, resource_exists(db, ctx, arn));
      if (!ok) return Error::not_found("ResourceNotFoundException", "The specified resource could not be found.");
      PIER_ASSIGN(auto tags, list_tags(db, arn, "key", "value"));
      return json::object{{"tags", tags}};
    });
  }, "", arn_resource});
  add_task_actions(def, store_, on_change_);
  add_service_actions(def, store_, on_change_);
  add_exec_actions(def, store_, broker_);
  return def;
}

}  // namespace pier::svc::ecs
