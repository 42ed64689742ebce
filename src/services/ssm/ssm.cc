#include "services/ssm/ssm.h"

#include <fmt/format.h>

#include "common/strings.h"
#include "services/ecs/ecs.h"
#include "services/util.h"

namespace pier::svc::ssm {

namespace json = boost::json;
namespace bhttp = boost::beast::http;
using aws::RequestContext;

SsmService::SsmService(exec::Broker& broker) : broker_(broker) {}

Result<json::object> SsmService::document(const std::string& name, const json::object& params) {
  // Parameters arrive as lists of strings; commands are joined with spaces.
  auto param = [&](std::string_view key) {
    std::string out;
    if (auto* v = params.if_contains(key); v && v->is_array())
      for (const auto& e : v->as_array())
        if (e.is_string()) out += (out.empty() ? "" : " ") + std::string(e.as_string());
    return out;
  };
  json::object inputs{{"s3BucketName", ""},       {"s3KeyPrefix", ""},
                      {"s3EncryptionEnabled", false}, {"cloudWatchLogGroupName", ""},
                      {"cloudWatchStreamingEnabled", false}, {"cloudWatchEncryptionEnabled", false},
                      {"kmsKeyId", ""},           {"runAsEnabled", false},
                      {"runAsDefaultUser", ""},
                      {"shellProfile", json::object{{"windows", ""}, {"linux", ""}}}};
  auto doc = [&](std::string type, std::string commands, bool separate) {
    return json::object{
        {"schemaVersion", "1.0"},
        {"description", name.empty() ? "Session Manager default shell" : name},
        {"sessionType", std::move(type)},
        {"inputs", inputs},
        {"parameters", json::object()},
        {"properties",
         json::object{{"linux", json::object{{"commands", std::move(commands)},
                                            {"runAsElevated", true},
                                            {"separateOutputStream", separate}}}}}};
  };
  if (name.empty() || name == "SSM-SessionManagerRunShell") return doc("Standard_Stream", "", false);
  if (name == "AWS-StartInteractiveCommand" || name == "AmazonECS-ExecuteInteractiveCommand") {
    std::string c = param("command");
    if (c.empty()) return Error::invalid("InvalidParameters", "The command parameter is required.");
    return doc("InteractiveCommands", c, false);
  }
  if (name == "AWS-StartNonInteractiveCommand") {
    std::string c = param("command");
    if (c.empty()) return Error::invalid("InvalidParameters", "The command parameter is required.");
    return doc("NonInteractiveCommands", c, true);
  }
  return Error::invalid("InvalidDocument", fmt::format("Document {} does not exist.", name));
}

aws::ServiceDef SsmService::definition() {
  aws::ServiceDef def;
  def.model_id = "ssm";
  auto target_resource = [](const RequestContext& ctx, const json::object& in) {
    aws::Authz a;
    std::string target = get_string(in, "Target");
    a.resource = fmt::format("arn:aws:ssm:{}:{}:managed-instance/{}", ctx.region, ctx.principal.account, target);
    // An ECS Exec target is the task: ecs:CLUSTER_TASKID_RUNTIMEID.
    if (auto t = ecs::parse_exec_target(target); !t.task.empty())
      a.resource = fmt::format("arn:aws:ecs:{}:{}:task/{}/{}", ctx.region, ctx.principal.account, t.cluster, t.task);
    return a;
  };
  def.actions.push_back({"StartSession", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    json::object params;
    if (auto* p = in.if_contains("Parameters"); p && p->is_object()) params = p->as_object();
    std::string name = get_string(in, "DocumentName");
    PIER_ASSIGN(json::object content, document(name, params));
    PIER_ASSIGN(auto st, broker_.start_session(get_string(in, "Target"),
                                               name.empty() ? "SSM-SessionManagerRunShell" : name,
                                               content, ctx.principal.arn));
    return json::object{{"SessionId", st.session_id}, {"TokenValue", st.token}, {"StreamUrl", st.stream_url}};
  }, "", target_resource});
  def.actions.push_back({"ResumeSession", [this](RequestContext&, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(auto st, broker_.resume_session(get_string(in, "SessionId")));
    json::object out{{"SessionId", st.session_id}, {"TokenValue", st.token}};
    if (!st.stream_url.empty()) out["StreamUrl"] = st.stream_url;
    return out;
  }});
  def.actions.push_back({"TerminateSession", [this](RequestContext&, json::object& in) -> Result<json::object> {
    std::string id = get_string(in, "SessionId");
    PIER_TRY(broker_.terminate_session(id));
    return json::object{{"SessionId", id}};
  }});
  def.actions.push_back({"DescribeSessions", [this](RequestContext&, json::object& in) -> Result<json::object> {
    bool active = get_string(in, "State") == "Active";
    json::array list;
    for (const auto& s : broker_.sessions(active)) {
      json::object o{{"SessionId", s.session_id}, {"Target", s.target}, {"Status", s.status},
                     {"StartDate", s.start}, {"DocumentName", s.document}, {"Owner", s.owner}};
      if (s.end != 0) o["EndDate"] = s.end;
      list.push_back(std::move(o));
    }
    return json::object{{"Sessions", list}};
  }});
  return def;
}

std::vector<aws::SignedRoute> SsmService::channel_routes() {
  auto created = [](unsigned version, std::string_view root, const std::string& token) {
    // The agent wants 201 and an XML body whose root it ignores (§6.3).
    std::string body = fmt::format(
        "<{0}><MessageSchemaVersion>1.0</MessageSchemaVersion><TokenValue>{1}</TokenValue></{0}>",
        root, str::xml_escape(token));
    return http::make_response(version, bhttp::status::created, "application/xml", std::move(body));
  };
  std::vector<aws::SignedRoute> routes;
  routes.push_back({"ssmmessages", "POST", "/v1/control-channel/", "ssmmessages:CreateControlChannel",
                    [this, created](RequestContext& ctx, http::Request& req) -> Result<http::Response> {
                      std::string_view t = req.target();
                      t = t.substr(0, t.find('?'));
                      auto target = str::uri_decode(t.substr(std::string_view("/v1/control-channel/").size()));
                      if (!target || target->empty())
                        return Error::invalid("ValidationException", "no target in the path");
                      // An ECS Exec target is one task's: only that task's role
                      // session (assumed-role/ROLE/TASKID) may hold its channel.
                      if (auto task = ecs::exec_target_task(*target); !task.empty()) {
                        const std::string& who = ctx.principal.arn;
                        if (who.find(":assumed-role/") == std::string::npos || !who.ends_with("/" + task))
                          return Error::denied("AccessDeniedException",
                                               fmt::format("User: {} is not authorized to open the control channel of {}",
                                                           who, *target));
                      }
                      return created(req.version(), "CreateControlChannelOutput",
                                     broker_.control_channel_token(*target));
                    }});
  routes.push_back({"ssmmessages", "POST", "/v1/data-channel/", "ssmmessages:CreateDataChannel",
                    [this, created](RequestContext&, http::Request& req) -> Result<http::Response> {
                      std::string_view t = req.target();
                      t = t.substr(0, t.find('?'));
                      auto sid = str::uri_decode(t.substr(std::string_view("/v1/data-channel/").size()));
                      if (!sid || sid->empty())
                        return Error::invalid("ValidationException", "no session in the path");
                      PIER_ASSIGN(std::string token, broker_.data_channel_token(*sid));
                      return created(req.version(), "CreateDataChannelOutput", token);
                    }});
  return routes;
}

}  // namespace pier::svc::ssm
