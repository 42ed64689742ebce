// 169.254.170.2 inside a task's network namespace, as the ECS agent serves it
// on Fargate:
//   GET /v2/credentials/<id>   the task role's credentials (the id is the
//                              task's own, unguessable; AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)
//   GET /v4/<container>        container metadata (ECS_CONTAINER_METADATA_URI_V4)
//   GET /v4/<container>/task   task metadata; /v3/… the same
//   GET /_pier/eni             which ENI this path belongs to
// A request is answered only for the task whose ENI it arrived on: the
// listener is that ENI's own (no VPC route leads here), so a task can never
// read another task's credentials, even knowing their path.
#include <fmt/format.h>

#include "aws/arn.h"
#include "common/time.h"
#include "pierd/builtins.h"
#include "pierd/builtins_impl.h"
#include "pierd/listeners.h"
#include "services/ec2/ec2.h"
#include "services/ecs/tasks.h"
#include "services/util.h"

namespace pier::pierd {

namespace json = boost::json;
namespace bhttp = boost::beast::http;
using svc::get_string;

namespace {

http::Response reply(const http::Request& req, bhttp::status status, const json::object& body) {
  return http::make_response(req.version(), status, "application/json", json::serialize(body));
}

http::Response error(const http::Request& req, bhttp::status status, std::string code, std::string message) {
  return reply(req, status, json::object{{"code", std::move(code)}, {"message", std::move(message)},
                                         {"HTTPErrorCode", static_cast<int>(status)}});
}

std::string iso(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_number()) return "";
  return time::iso8601(v->to_number<double>());
}

json::object container_metadata(const json::object& task, const json::object& c, const json::object& eni) {
  const json::object* cd = nullptr;
  if (const auto* td = task.if_contains("_TaskDefinition"); td && td->is_object())
    for (const auto& x : td->as_object().at("containerDefinitions").as_array())
      if (get_string(x.as_object(), "name") == get_string(c, "name")) cd = &x.as_object();
  std::string ip = get_string(eni, "PrivateIpAddress");
  json::object m{
      {"DockerId", get_string(c, "runtimeId")},
      {"Name", get_string(c, "name")},
      {"DockerName", get_string(c, "name")},
      {"Image", get_string(c, "image")},
      {"ImageID", get_string(c, "imageDigest")},
      {"Labels", json::object{{"com.amazonaws.ecs.cluster", get_string(task, "clusterArn")},
                              {"com.amazonaws.ecs.container-name", get_string(c, "name")},
                              {"com.amazonaws.ecs.task-arn", get_string(task, "taskArn")},
                              {"com.amazonaws.ecs.task-definition-family",
                               get_string(task.at("_TaskDefinition").as_object(), "family")}}},
      {"DesiredStatus", get_string(task, "desiredStatus")},
      {"KnownStatus", get_string(c, "lastStatus")},
      {"Limits", json::object{{"CPU", cd ? svc::get_int(*cd, "cpu").value_or(0) : 0}}},
      {"Type", "NORMAL"},
      {"ContainerARN", get_string(c, "containerArn")},
      {"Networks", json::array{json::object{{"NetworkMode", "awsvpc"},
                                            {"IPv4Addresses", json::array{json::value(ip)}},
                                            {"AttachmentIndex", 0},
                                            {"MACAddress", get_string(eni, "MacAddress")},
                                            {"PrivateDNSName", get_string(eni, "PrivateDnsName")}}}}};
  if (auto t = iso(task, "startedAt"); !t.empty()) m["StartedAt"] = t;
  if (auto t = iso(task, "createdAt"); !t.empty()) m["CreatedAt"] = t;
  if (const auto* x = c.if_contains("exitCode")) m["ExitCode"] = *x;
  if (cd)
    if (const auto* lc = cd->if_contains("logConfiguration"); lc && lc->is_object()) {
      m["LogDriver"] = get_string(lc->as_object(), "logDriver");
      if (const auto* o = lc->as_object().if_contains("options")) m["LogOptions"] = *o;
    }
  return m;
}

json::object task_metadata(const json::object& task, const json::object& eni) {
  const auto& td = task.at("_TaskDefinition").as_object();
  json::array containers;
  for (const auto& c : task.at("containers").as_array()) containers.push_back(container_metadata(task, c.as_object(), eni));
  json::object m{{"Cluster", get_string(task, "clusterArn")},
                 {"TaskARN", get_string(task, "taskArn")},
                 {"Family", get_string(td, "family")},
                 {"Revision", std::to_string(svc::get_int(td, "revision").value_or(0))},
                 {"DesiredStatus", get_string(task, "desiredStatus")},
                 {"KnownStatus", get_string(task, "lastStatus")},
                 {"Limits", json::object{{"CPU", std::stod(get_string(task, "cpu", "256")) / 1024.0},
                                         {"Memory", std::stoll(get_string(task, "memory", "512"))}}},
                 {"AvailabilityZone", get_string(task, "availabilityZone")},
                 {"LaunchType", "FARGATE"},
                 {"Containers", std::move(containers)},
                 {"ClockDrift", json::object{{"ClockErrorBound", 0.5}, {"ClockSynchronizationStatus", "SYNCHRONIZED"}}},
                 {"EphemeralStorageMetrics", json::object{{"Utilized", 0}, {"Reserved", 20496}}}};
  if (auto t = iso(task, "pullStartedAt"); !t.empty()) m["PullStartedAt"] = t;
  if (auto t = iso(task, "pullStoppedAt"); !t.empty()) m["PullStoppedAt"] = t;
  return m;
}

}  // namespace

http::Response Services::link_local(const http::Request& req, const std::string& eni_id) {
  std::string target(req.target());
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  if (req.method() != bhttp::verb::get) return error(req, bhttp::status::method_not_allowed, "MethodNotAllowed", "GET only");
  if (target == "/_pier/eni") return pierd::link_local(req, eni_id);

  struct Found {
    std::string account, region;
    json::object task, eni;
  };
  auto found = b_->store.read([&](store::Db& db) -> Result<std::optional<Found>> {
    PIER_ASSIGN(auto* st, db.prepare("SELECT account, region, doc FROM ecs_tasks WHERE last_status <> 'STOPPED' "
                                     "AND json_extract(doc, '$._Eni') = ? ORDER BY created DESC LIMIT 1"));
    st->args(eni_id);
    PIER_ASSIGN(bool row, st->step());
    if (!row) return std::optional<Found>();
    Found f{st->text(0), st->text(1), {}, {}};
    PIER_ASSIGN(f.task, svc::parse_object(st->text(2)));
    st->reset();
    PIER_ASSIGN(auto e, svc::ec2::load_object(db, f.account, f.region, eni_id, "network-interface"));
    if (e) f.eni = std::move(*e);
    return std::optional<Found>(std::move(f));
  });
  if (!found.ok()) return error(req, bhttp::status::internal_server_error, "InternalError", found.error().message);
  if (!*found) return error(req, bhttp::status::not_found, "NotFound", "no task on this network interface");
  auto& f = **found;

  static constexpr std::string_view kCreds = "/v2/credentials/";
  if (target.starts_with(kCreds)) {
    std::string id = target.substr(kCreds.size());
    std::string role = get_string(f.task, "_TaskRoleArn");
    if (id.empty()) return error(req, bhttp::status::bad_request, "NoIdInRequest", "CredentialsV2Request: No ID in the request");
    if (role.empty() || id != get_string(f.task, "_CredentialsId"))
      return error(req, bhttp::status::bad_request, "InvalidIdInRequest",
                   "CredentialsV2Request: Credentials not found");
    std::string task_id = svc::ecs::task_id_of(get_string(f.task, "taskArn"));
    auto issued = b_->sts.issue(role, task_id, 6 * 3600);
    if (!issued.ok())
      return error(req, bhttp::status::internal_server_error, "InternalError", issued.error().message);
    return reply(req, bhttp::status::ok,
                 json::object{{"RoleArn", role},
                              {"AccessKeyId", issued->access_key},
                              {"SecretAccessKey", issued->secret},
                              {"Token", issued->session_token},
                              {"Expiration", time::iso8601(issued->expires)}});
  }
  for (std::string_view prefix : {"/v4/", "/v3/"}) {
    if (!target.starts_with(prefix)) continue;
    std::string rest = target.substr(prefix.size());
    std::string rid = rest.substr(0, rest.find('/'));
    std::string sub = rest.size() > rid.size() ? rest.substr(rid.size()) : "";
    const json::object* container = nullptr;
    for (const auto& c : f.task.at("containers").as_array())
      if (get_string(c.as_object(), "runtimeId") == rid) container = &c.as_object();
    if (!container) return error(req, bhttp::status::not_found, "NotFound", "no such container in this task");
    if (sub.empty() || sub == "/") return reply(req, bhttp::status::ok, container_metadata(f.task, *container, f.eni));
    if (sub == "/task") return reply(req, bhttp::status::ok, task_metadata(f.task, f.eni));
    if (sub == "/stats" || sub == "/task/stats") return reply(req, bhttp::status::ok, json::object{});
    break;
  }
  return error(req, bhttp::status::not_found, "NotFound", fmt::format("nothing at {}", target));
}

}  // namespace pier::pierd
