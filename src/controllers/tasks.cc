#include "controllers/tasks.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/ids.h"
#include "common/log.h"
#include "services/ec2/ec2.h"
#include "services/logs/logs.h"
#include "services/ecs/services.h"
#include "services/util.h"

namespace pier::controllers {

namespace json = boost::json;
namespace fs = std::filesystem;
using svc::get_string;
using svc::get_int;
using svc::get_bool;
using svc::ecs::TaskRow;

namespace {

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The container definition of a task's container, by name.
const json::object* container_def(const json::object& task, const std::string& name) {
  const auto* td = task.if_contains("_TaskDefinition");
  if (!td || !td->is_object()) return nullptr;
  for (const auto& c : td->as_object().at("containerDefinitions").as_array())
    if (get_string(c.as_object(), "name") == name) return &c.as_object();
  return nullptr;
}

std::vector<std::string> strings_of(const json::value* v) {
  std::vector<std::string> out;
  if (v && v->is_array())
    for (const auto& s : v->as_array())
      if (s.is_string()) out.emplace_back(s.as_string());
  return out;
}

std::string runtime_id(const std::string& task_id, const std::string& name) {
  // As Fargate's: the task id, a dash, a number.
  uint32_t h = 2166136261u;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return fmt::format("{}-{}", task_id, h);
}

struct AwsLogs {
  bool on = false;
  std::string group, region, stream;
  bool create_group = false;
};

AwsLogs awslogs_of(const json::object& cd, const std::string& task_id, const std::string& region) {
  AwsLogs l;
  const auto* lc = cd.if_contains("logConfiguration");
  if (!lc || !lc->is_object() || get_string(lc->as_object(), "logDriver") != "awslogs") return l;
  const auto* opts = lc->as_object().if_contains("options");
  json::object o = opts && opts->is_object() ? opts->as_object() : json::object{};
  l.on = true;
  l.group = get_string(o, "awslogs-group");
  l.region = get_string(o, "awslogs-region", region);
  std::string prefix = get_string(o, "awslogs-stream-prefix");
  l.stream = prefix.empty() ? task_id : fmt::format("{}/{}/{}", prefix, get_string(cd, "name"), task_id);
  l.create_group = get_string(o, "awslogs-create-group") == "true";
  return l;
}

// Reads the monitor's log from `offset`: whole lines only.
std::vector<svc::logs::Event> read_log(const std::string& path, uint64_t& offset) {
  std::vector<svc::logs::Event> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;
  in.seekg(static_cast<std::streamoff>(offset));
  std::string line;
  uint64_t pos = offset;
  while (out.size() < 5000 && std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: a partial line, read it next time
    pos += line.size() + 1;
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto& o = v.as_object();
    svc::logs::Event e;
    e.timestamp_ms = get_int(o, "t").value_or(0);
    e.message = get_string(o, "m");
    out.push_back(std::move(e));
  }
  offset = pos;
  return out;
}

std::string image_error(const std::string& ref) {
  return fmt::format("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve "
                     "ref {}: {}: not found", ref, ref);
}

// Fargate's ulimit names → runc's.
std::string rlimit_name(const std::string& n) {
  std::string up;
  for (char c : n) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return "RLIMIT_" + up;
}

int rlimit_resource(const std::string& n) {
  static const std::map<std::string, int> m = {
      {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},         {"data", RLIMIT_DATA},
      {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},     {"memlock", RLIMIT_MEMLOCK},
      {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},     {"nofile", RLIMIT_NOFILE},
      {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},         {"rtprio", RLIMIT_RTPRIO},
      {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK}};
  auto it = m.find(n);
  return it == m.end() ? -1 : it->second;
}

}  // namespace

// The task's cgroup (its containers' are below it), relative as runc takes it.
std::string TaskController::task_cgroup(const std::string& task_id) const {
  return fmt::format("pier-{}/{}", network_.tag(), task_id);
}

TaskController::TaskController(store::Store& store, NetworkController& network, runtime::ImageStore& images,
                               runtime::Runtime& runtime, Config config)
    : store_(store), network_(network), images_(images), runtime_(runtime), config_(std::move(config)) {}

TaskController::~TaskController() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TaskController::start() { thread_ = std::thread([this] { run(); }); }

void TaskController::kick() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void TaskController::run() {
  auto log = log::get("tasks");
  std::unique_lock lock(mu_);
  while (!stop_) {
    dirty_ = false;
    lock.unlock();
    try {
      if (auto s = reconcile(); !s.ok()) log->warn("task pass: {}", s.error().message);
    } catch (const std::exception& e) {
      log->error("task pass: {}", e.what());
    }
    lock.lock();
    // A second is short enough to notice exits and stop deadlines; the monitor
    // keeps every exit code meanwhile.
    cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return dirty_ || stop_; });
  }
}

Status TaskController::reconcile() {
  std::lock_guard guard(reconcile_mu_);
  auto log = log::get("tasks");
  double now = wall_now();
  // The services first: the tasks they make are started in this same pass.
  auto scheduled = svc::ecs::schedule_services(store_, now);
  if (!scheduled.ok()) log->warn("scheduler: {}", scheduled.error().message);
  PIER_ASSIGN(auto tasks, store_.read([](store::Db& db) { return svc::ecs::live_tasks(db); }));
  bool network_changed = false;
  std::set<std::string> owned;
  Status first;
  for (auto& t : tasks) {
    auto s = step(t, now, network_changed);
    if (!s.ok()) {
      log->warn("task {}: {}", t.id, s.error().message);
      if (first.ok()) first = s;
    }
    if (const auto* cs = t.doc.if_contains("containers"); cs && cs->is_array())
      for (const auto& c : cs->as_array())
        if (auto rid = get_string(c.as_object(), "runtimeId"); !rid.empty()) owned.insert(rid);
  }
  // Containers no live task owns (their task was deleted from under them, or
  // a start was interrupted before it was recorded).
  for (const auto& id : runtime_.list()) {
    if (owned.count(id)) continue;
    auto st = runtime_.state(id);
    if (st.status == runtime::ContainerState::Status::kRunning) {
      log->info("container {} belongs to no task: stopping it", id);
      (void)runtime_.kill(id, SIGKILL);
      continue;  // removed on a later pass, once its monitor saw it exit
    }
    (void)runtime_.remove(id);
    std::error_code ec;
    fs::remove_all(fs::path(config_.home) / "tasks" / id.substr(0, 32), ec);
  }
  if ((network_changed || (scheduled.ok() && *scheduled)) && on_network_change_) on_network_change_();
  if (scheduled.ok() && *scheduled) kick();
  // STOPPED tasks are shown for an hour, as on ECS, then forgotten.
  if (now - last_purge_ > 60) {
    last_purge_ = now;
    auto purged = store_.write([&](store::Db& db) -> Status {
      PIER_ASSIGN(auto* sel, db.prepare("SELECT arn FROM ecs_tasks WHERE last_status='STOPPED' AND "
                                        "json_extract(doc, '$.stoppedAt') < ?"));
      sel->args(now - 3600);
      std::vector<std::string> arns;
      for (;;) {
        PIER_ASSIGN(bool row, sel->step());
        if (!row) break;
        arns.push_back(sel->text(0));
      }
      for (const auto& arn : arns) {
        PIER_TRY(svc::drop_tags(db, arn));
        PIER_ASSIGN(auto* del, db.prepare("DELETE FROM ecs_tasks WHERE arn=?"));
        del->args(arn);
        PIER_TRY(del->run());
      }
      return {};
    });
    if (!purged.ok()) log->warn("purging stopped tasks: {}", purged.error().message);
  }
  return first;
}

// Writes the controller's view of the task back, keeping what the API may
// have changed meanwhile (a StopTask), in one transaction with `also`.
static Status commit(store::Store& store, TaskRow& t, const std::function<Status(store::Db&)>& also = {}) {
  return store.write([&](store::Db& db) -> Status {
    PIER_ASSIGN(auto fresh, svc::ecs::load_task(db, t.account, t.region, t.id));
    if (!fresh) return Error::not_found("TaskNotFound", "the task is gone");
    // The store's copy of what the API owns wins, except a stop the
    // controller decided (an essential container exited, a start failed)
    // while the API had not stopped the task. t.doc is changed in place:
    // callers hold references into it.
    const auto& f = fresh->doc;
    bool ours = get_string(t.doc, "desiredStatus") == "STOPPED" && get_string(f, "desiredStatus") != "STOPPED";
    for (const char* k : {"desiredStatus", "stopCode", "stoppedReason", "stoppingAt", "tags"}) {
      if (ours && std::string_view(k) != "tags") continue;
      if (const auto* v = f.if_contains(k)) t.doc[k] = *v;
    }
    t.doc["version"] = std::max(get_int(t.doc, "version").value_or(1), get_int(f, "version").value_or(1));
    if (also) PIER_TRY(also(db));
    return svc::ecs::save_task(db, t);
  });
}

// containers[].managedAgents[0] as the monitor last saw the agent; true when it changed.
static bool set_managed_agent(json::object& c, const std::string& status, double started, const std::string& reason) {
  auto* ma = c.if_contains("managedAgents");
  if (!ma || !ma->is_array() || ma->as_array().empty() || !ma->as_array()[0].is_object()) return false;
  auto& a = ma->as_array()[0].as_object();
  bool changed = false;
  auto set = [&](const char* k, json::value v) {
    if (const auto* have = a.if_contains(k); have && *have == v) return;
    a[k] = std::move(v);
    changed = true;
  };
  set("lastStatus", json::value(status));
  if (started > 0) set("lastStartedAt", json::value(started));
  if (!reason.empty()) set("reason", json::value(reason));
  return changed;
}

Status TaskController::step(TaskRow& t, double now, bool& network_changed) {
  auto& d = t.doc;
  std::string eni = get_string(d, "_Eni");
  auto set_attachment = [&](const char* status) {
    if (auto* a = d.if_contains("attachments"); a && a->is_array() && !a->as_array().empty())
      a->as_array()[0].as_object()["status"] = status;
  };
  auto deprovision = [&]() -> Status {
    // Containers of a start cut short (a crash between recording and
    // starting them) go before the ENI they sit in.
    for (auto& c : d["containers"].as_array()) {
      std::string rid = get_string(c.as_object(), "runtimeId");
      if (rid.empty()) continue;
      if (runtime_.state(rid).status == runtime::ContainerState::Status::kRunning) (void)runtime_.kill(rid, SIGKILL);
      if (auto s = runtime_.remove(rid); !s.ok()) return s;
    }
    // runc removes each container's own cgroup; the task's is pier's.
    if (auto s = runtime::remove_cgroup_tree(task_cgroup(t.id)); !s.ok())
      log::get("tasks")->warn("task {}: {}", t.id, s.error().message);
    d["lastStatus"] = "STOPPED";
    for (auto& c : d["containers"].as_array()) {
      auto& co = c.as_object();
      if (get_string(co, "lastStatus") != "STOPPED") co["lastStatus"] = "STOPPED";
    }
    set_attachment("DELETED");
    if (!d.contains("executionStoppedAt")) d["executionStoppedAt"] = now;
    d["stoppedAt"] = now;
    d["connectivity"] = "DISCONNECTED";
    std::error_code ec;
    fs::remove_all(fs::path(config_.home) / "tasks" / t.id, ec);
    network_changed = true;
    return commit(store_, t, [&](store::Db& db) { return svc::ec2::delete_task_interface(db, t.account, t.region, eni); });
  };
  std::string last = get_string(d, "lastStatus");
  std::string desired = get_string(d, "desiredStatus");

  if (last == "PROVISIONING") {
    if (desired == "STOPPED") return deprovision();
    PIER_ASSIGN(auto e, store_.read([&](store::Db& db) { return svc::ec2::load_object(db, t.account, t.region, eni, "network-interface"); }));
    if (!e) {
      svc::ecs::request_stop(t.doc, "TaskFailedToStart", "ResourceInitializationError: the task's network interface is gone", now);
      PIER_TRY(commit(store_, t));
      return deprovision();
    }
    if (get_string(*e, "Status") == "pending") return {};  // the network controller has not wired it yet
    set_attachment("ATTACHED");
    d["lastStatus"] = last = "PENDING";
    d["pullStartedAt"] = now;
    PIER_TRY(commit(store_, t));
    desired = get_string(d, "desiredStatus");  // a StopTask may have come meanwhile
  }
  if (last == "PENDING") {
    if (desired == "STOPPED") return deprovision();
    PIER_TRY(start_containers(t, now));
    last = get_string(d, "lastStatus");
    desired = get_string(d, "desiredStatus");
    if (last == "PENDING") {
      // Nothing runs: it failed before any container ran, or its namespace
      // is not there yet (the next pass).
      if (desired == "STOPPED") return deprovision();
      return {};
    }
  }
  if (last == "ACTIVATING" && desired == "RUNNING") {
    // A pierd that stopped between the two writes of a start.
    d["lastStatus"] = last = "RUNNING";
    if (!d.contains("startedAt")) d["startedAt"] = now;
    PIER_TRY(commit(store_, t));
  }

  // From here on, containers exist: watch them.
  bool any_running = false, changed = false;
  for (auto& c : d["containers"].as_array()) {
    auto& co = c.as_object();
    std::string rid = get_string(co, "runtimeId");
    if (rid.empty() || get_string(co, "lastStatus") == "STOPPED") continue;
    auto st = runtime_.state(rid);
    using S = runtime::ContainerState::Status;
    if (st.status == S::kRunning || st.status == S::kCreated) {
      any_running = true;
      if (st.agent && set_managed_agent(co, st.agent->status, st.agent->started_ms / 1000.0, st.agent->reason))
        changed = true;
      continue;
    }
    changed = true;
    set_managed_agent(co, "STOPPED", 0, "Received Container Stopped event");
    co["lastStatus"] = "STOPPED";
    if (st.exit_code) co["exitCode"] = *st.exit_code;
    if (!st.error.empty()) co["reason"] = st.error;
    const auto* cd = container_def(d, get_string(co, "name"));
    if (cd && get_bool(*cd, "essential", true) && get_string(d, "desiredStatus") == "RUNNING")
      svc::ecs::request_stop(d, "EssentialContainerExited", "Essential container in task exited", now);
  }
  desired = get_string(d, "desiredStatus");
  if (desired == "RUNNING" && !any_running) {
    // Every container ended, none of them essential: the task is done.
    svc::ecs::request_stop(d, "EssentialContainerExited", "Essential container in task exited", now);
    desired = "STOPPED";
  }
  PIER_TRY(drain_logs(t, false));
  if (desired != "STOPPED") return changed ? commit(store_, t) : Status{};

  if (last == "RUNNING" || last == "ACTIVATING") {
    d["lastStatus"] = "DEACTIVATING";
    PIER_TRY(commit(store_, t));
    last = "DEACTIVATING";
  }
  if (last == "DEACTIVATING") d["lastStatus"] = last = "STOPPING";
  if (any_running) {
    double sent = d.contains("_TermSentAt") ? d["_TermSentAt"].to_number<double>() : 0;
    if (sent == 0) {
      for (auto& c : d["containers"].as_array()) {
        auto& co = c.as_object();
        if (get_string(co, "lastStatus") == "STOPPED") continue;
        (void)runtime_.kill(get_string(co, "runtimeId"), SIGTERM);
      }
      d["_TermSentAt"] = now;
    } else {
      for (auto& c : d["containers"].as_array()) {
        auto& co = c.as_object();
        if (get_string(co, "lastStatus") == "STOPPED") continue;
        const auto* cd = container_def(d, get_string(co, "name"));
        int64_t timeout = cd ? get_int(*cd, "stopTimeout").value_or(30) : 30;
        if (now - sent >= static_cast<double>(std::clamp<int64_t>(timeout, 0, 120)) && !get_bool(co, "_Killed")) {
          (void)runtime_.kill(get_string(co, "runtimeId"), SIGKILL);
          co["_Killed"] = true;
        }
      }
    }
    return commit(store_, t);
  }
  // Every container exited: the last of the logs, then the containers go.
  PIER_TRY(drain_logs(t, true));
  d["lastStatus"] = "DEPROVISIONING";
  d["executionStoppedAt"] = now;
  PIER_TRY(commit(store_, t));
  for (auto& c : d["containers"].as_array()) {
    std::string rid = get_string(c.as_object(), "runtimeId");
    if (rid.empty()) continue;
    if (auto s = runtime_.remove(rid); !s.ok()) return s;
  }
  return deprovision();
}

Status TaskController::write_task_files(const TaskRow& t, const std::string& dir) {
  PIER_ASSIGN(auto e, store_.read([&](store::Db& db) {
    return svc::ec2::load_object(db, t.account, t.region, get_string(t.doc, "_Eni"), "network-interface");
  }));
  if (!e) return Error::internal("the task's ENI is gone");
  std::string ip = get_string(*e, "PrivateIpAddress");
  std::string host = get_string(*e, "PrivateDnsName");
  std::string resolver = network_.eni_resolver(get_string(t.doc, "_Eni"));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error::internal(fmt::format("{}: {}", dir, ec.message()));
  auto put = [&](const char* name, const std::string& text) -> Status {
    std::ofstream out(fs::path(dir) / name, std::ios::trunc);
    out << text;
    if (!out) return Error::internal(fmt::format("cannot write {}/{}", dir, name));
    return {};
  };
  PIER_TRY(put("hostname", host + "\n"));
  PIER_TRY(put("hosts", fmt::format("127.0.0.1 localhost localhost.localdomain\n::1 localhost ip6-localhost ip6-loopback\n{} {}\n", ip, host)));
  std::string search = t.region == "us-east-1" ? "ec2.internal" : t.region + ".compute.internal";
  PIER_TRY(put("resolv.conf", resolver.empty() ? fmt::format("search {}\n", search)
                                               : fmt::format("search {}\nnameserver {}\n", search, resolver)));
  return {};
}

Status TaskController::start_containers(TaskRow& t, double now) {
  auto log = log::get("tasks");
  auto& d = t.doc;
  auto fail = [&](const std::string& reason, json::object* container) -> Status {
    if (container) (*container)["reason"] = reason;
    svc::ecs::request_stop(d, "TaskFailedToStart", reason, now);
    d["pullStoppedAt"] = now;
    return commit(store_, t);
  };
  std::string eni = get_string(d, "_Eni");
  auto netns = network_.eni_netns(eni);
  if (!netns) return {};  // not wired in this pierd yet: the next pass
  std::string dir = (fs::path(config_.home) / "tasks" / t.id).string();
  if (auto s = write_task_files(t, dir); !s.ok()) return fail("ResourceInitializationError: " + s.error().message, nullptr);

  struct Prepared {
    json::object* c;
    runtime::ContainerSpec spec;
  };
  std::vector<Prepared> prepared;
  int64_t task_cpu = std::stoll(get_string(d, "cpu", "256"));
  int64_t task_mem = std::stoll(get_string(d, "memory", "512"));
  for (auto& cv : d["containers"].as_array()) {
    auto& c = cv.as_object();
    std::string name = get_string(c, "name");
    const auto* cd = container_def(d, name);
    if (!cd) return fail("ResourceInitializationError: no definition for container " + name, &c);
    const json::object& co = c.contains("_Override") ? c["_Override"].as_object() : json::object{};
    std::string ref_text = get_string(*cd, "image");
    auto ref = runtime::ImageRef::parse(ref_text);
    if (!ref.ok()) return fail(image_error(ref_text), &c);
    auto image = images_.resolve(*ref);
    if (!image.ok()) return fail(image_error(ref->str()), &c);
    if (image->architecture != runtime::host_architecture())
      return fail(fmt::format("CannotPullContainerError: pull image manifest has been retried 1 time(s): image Manifest "
                              "does not contain descriptor matching platform 'linux/{}'", runtime::host_architecture()), &c);
    auto layers = images_.layer_dirs(*image);
    if (!layers.ok()) return fail("CannotPullContainerError: " + layers.error().message, &c);
    c["imageDigest"] = image->digest;

    auto logs = awslogs_of(*cd, t.id, t.region);
    if (logs.on) {
      auto ok = store_.write([&](store::Db& db) -> Result<bool> {
        PIER_ASSIGN(bool exists, svc::logs::group_exists(db, t.account, logs.region, logs.group));
        if (!exists && !logs.create_group) return false;
        PIER_TRY(svc::logs::append_events(db, t.account, logs.region, logs.group, logs.stream, {}, logs.create_group));
        return true;
      });
      if (!ok.ok() || !*ok)
        return fail(fmt::format("ResourceInitializationError: failed to validate logger args: create stream has been "
                                "retried 1 times: failed to create Cloudwatch log stream: ResourceNotFoundException: The "
                                "specified log group does not exist. : exit status 1"), &c);
      c["_LogGroup"] = logs.group;
      c["_LogStream"] = logs.stream;
      c["_LogRegion"] = logs.region;
    }

    runtime::ContainerSpec s;
    s.id = runtime_id(t.id, name);
    s.lower_dirs = *layers;
    const auto& ic = image->config;
    // Docker's rules: the definition's entryPoint replaces the image's (and
    // drops its Cmd); a command replaces the Cmd.
    auto entry = cd->contains("entryPoint") ? strings_of(cd->if_contains("entryPoint")) : strings_of(ic.if_contains("Entrypoint"));
    std::vector<std::string> cmd;
    if (co.contains("command")) cmd = strings_of(co.if_contains("command"));
    else if (cd->contains("command")) cmd = strings_of(cd->if_contains("command"));
    else if (!cd->contains("entryPoint")) cmd = strings_of(ic.if_contains("Cmd"));
    s.args = entry;
    s.args.insert(s.args.end(), cmd.begin(), cmd.end());
    if (s.args.empty()) return fail("CannotStartContainerError: no command specified", &c);
    std::map<std::string, std::string> env;
    for (const auto& kv : strings_of(ic.if_contains("Env"))) {
      auto eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    auto add_env = [&](const json::value* list) {
      if (!list || !list->is_array()) return;
      for (const auto& e : list->as_array())
        if (e.is_object()) env[get_string(e.as_object(), "name")] = get_string(e.as_object(), "value");
    };
    add_env(cd->if_contains("environment"));
    add_env(co.if_contains("environment"));
    env["AWS_DEFAULT_REGION"] = t.region;
    env["AWS_REGION"] = t.region;
    env["AWS_EXECUTION_ENV"] = "AWS_ECS_FARGATE";
    env["ECS_CONTAINER_METADATA_URI"] = fmt::format("http://{}/v3/{}", kLinkLocalAddress, s.id);
    env["ECS_CONTAINER_METADATA_URI_V4"] = fmt::format("http://{}/v4/{}", kLinkLocalAddress, s.id);
    if (d.contains("_TaskRoleArn"))
      env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/" + get_string(d, "_CredentialsId");
    std::string hostname;
    {
      std::ifstream in(fs::path(dir) / "hostname");
      std::getline(in, hostname);
    }
    env["HOSTNAME"] = hostname;
    for (const auto& [k, v] : env) s.env.push_back(k + "=" + v);
    s.cwd = get_string(*cd, "workingDirectory", get_string(ic, "WorkingDir"));
    if (s.cwd.empty()) s.cwd = "/";
    s.user = get_string(*cd, "user", get_string(ic, "User"));
    s.hostname = hostname;
    s.netns_path = "/run/netns/" + *netns;
    const auto* lp = cd->if_contains("linuxParameters");
    s.init = lp && lp->is_object() && get_bool(lp->as_object(), "initProcessEnabled");
    s.readonly_rootfs = get_bool(*cd, "readonlyRootFilesystem");
    int64_t mem = get_int(*cd, "memory").value_or(task_mem);
    s.memory_bytes = std::min(mem, task_mem) * 1024 * 1024;
    if (auto r = get_int(*cd, "memoryReservation")) s.memory_reservation_bytes = *r * 1024 * 1024;
    s.cpu_period_us = 100000;
    s.cpu_quota_us = task_cpu * 100000 / 1024;
    s.cpu_shares = std::max<int64_t>(2, get_int(*cd, "cpu").value_or(0));
    // Fargate's default nofile is 65535; root here cannot go above its own hard limit.
    std::map<std::string, std::pair<uint64_t, uint64_t>> limits{{"nofile", {65535, 65535}}};
    if (const auto* ul = cd->if_contains("ulimits"); ul && ul->is_array())
      for (const auto& u : ul->as_array())
        if (u.is_object())
          limits[get_string(u.as_object(), "name")] = {static_cast<uint64_t>(get_int(u.as_object(), "softLimit").value_or(0)),
                                                       static_cast<uint64_t>(get_int(u.as_object(), "hardLimit").value_or(0))};
    for (auto [n, v] : limits) {
      int res = rlimit_resource(n);
      if (res < 0) continue;
      rlimit host{};
      ::getrlimit(res, &host);
      if (host.rlim_max != RLIM_INFINITY && v.second > host.rlim_max) {
        log->warn("task {} container {}: ulimit {} {}:{} clamped to the host's hard limit {}", t.id, name, n, v.first,
                  v.second, static_cast<uint64_t>(host.rlim_max));
        v.second = host.rlim_max;
        v.first = std::min<uint64_t>(v.first, v.second);
      }
      s.rlimits.push_back(runtime::Rlimit{rlimit_name(n), v.first, v.second});
    }
    s.mounts.push_back({(fs::path(dir) / "hosts").string(), "/etc/hosts", false});
    s.mounts.push_back({(fs::path(dir) / "hostname").string(), "/etc/hostname", false});
    s.mounts.push_back({(fs::path(dir) / "resolv.conf").string(), "/etc/resolv.conf", false});
    if (get_bool(d, "enableExecuteCommand") && !config_.exec_agent.empty()) {
      // As the ECS agent binds its SSM agent: a directory of its own per container.
      std::string edir = get_string(c, "_ExecDir");
      if (edir.empty()) c["_ExecDir"] = edir = "/ecs-execute-command-" + ids::uuid4();
      s.mounts.push_back({config_.exec_agent, edir + "/pier-exec-agent", true});
      s.mounts.push_back({config_.ca_bundle, edir + "/certs/amazon-ssm-agent.crt", true});
      s.agent_args = {edir + "/pier-exec-agent"};
    }
    s.cgroup_parent = task_cgroup(t.id);
    prepared.push_back(Prepared{&c, std::move(s)});
  }
  d["pullStoppedAt"] = wall_now();

  // The runtime ids are recorded first: the metadata endpoint answers a
  // container that asks at once, and a start cut short by a crash leaves a
  // container this controller knows to be the task's.
  for (auto& p : prepared) (*p.c)["runtimeId"] = p.spec.id;
  PIER_TRY(commit(store_, t));
  bool started_any = false;
  for (auto& p : prepared) {
    auto& c = *p.c;
    // Started by a pierd that stopped before it could record so: adopt it.
    if (auto have = runtime_.state(p.spec.id); have.status != runtime::ContainerState::Status::kUnknown) {
      started_any = true;
      c["lastStatus"] = "RUNNING";
      if (!c.contains("_LogOffset")) c["_LogOffset"] = 0;
      continue;
    }
    auto st = runtime_.start(p.spec);
    if (!st.ok()) {
      log->warn("task {} container {}: {}", t.id, get_string(c, "name"), st.error().message);
      std::string reason = "CannotStartContainerError: " + st.error().message;
      if (started_any) {
        // Some already run: the stop path ends them; the rest never will.
        for (auto& q : prepared)
          if (get_string(*q.c, "lastStatus") != "RUNNING") {
            (*q.c)["lastStatus"] = "STOPPED";
            if (!q.c->contains("reason")) (*q.c)["reason"] = q.c == &c ? reason : "the task failed to start";
          }
        d["lastStatus"] = "DEACTIVATING";
        svc::ecs::request_stop(d, "TaskFailedToStart", reason, now);
        return commit(store_, t);
      }
      return fail(reason, &c);
    }
    started_any = true;
    c["lastStatus"] = "RUNNING";
    c["_LogOffset"] = 0;
  }
  d["lastStatus"] = "ACTIVATING";
  PIER_TRY(commit(store_, t));
  d["lastStatus"] = "RUNNING";
  d["startedAt"] = wall_now();
  return commit(store_, t);
}

Status TaskController::drain_logs(TaskRow& t, bool) {
  struct Batch {
    json::object* c;
    std::string group, stream, region;
    std::vector<svc::logs::Event> events;
    uint64_t offset;
  };
  std::vector<Batch> batches;
  for (auto& cv : t.doc["containers"].as_array()) {
    auto& c = cv.as_object();
    std::string rid = get_string(c, "runtimeId");
    if (rid.empty() || !c.contains("_LogGroup")) continue;
    uint64_t offset = static_cast<uint64_t>(get_int(c, "_LogOffset").value_or(0));
    auto events = read_log(runtime_.log_path(rid), offset);
    if (events.empty()) continue;
    batches.push_back(Batch{&c, get_string(c, "_LogGroup"), get_string(c, "_LogStream"), get_string(c, "_LogRegion"),
                            std::move(events), offset});
  }
  if (batches.empty()) return {};
  for (auto& b : batches) (*b.c)["_LogOffset"] = static_cast<int64_t>(b.offset);
  return commit(store_, t, [&](store::Db& db) -> Status {
    for (auto& b : batches) {
      // A group deleted under a running task: its events are dropped, as the
      // awslogs driver does once it cannot put them.
      auto s = svc::logs::append_events(db, t.account, b.region, b.group, b.stream, b.events, false);
      if (!s.ok()) log::get("tasks")->warn("task {}: logs to {}: {}", t.id, b.group, s.error().message);
    }
    return {};
  });
}

}  // namespace pier::controllers
