#include "services/sts/sts.h"

#include <fmt/format.h>

#include "aws/arn.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/strings.h"
#include "services/util.h"

namespace pier::svc::sts {

using aws::RequestContext;

StsService::StsService(store::Store& store, iam::IamService& iam, time::Clock clock)
    : store_(store), iam_(iam), clock_(std::move(clock)) {}

Result<Issued> StsService::issue(const std::string& role_arn, const std::string& session_name,
                                 int64_t duration) {
  PIER_ASSIGN(auto role, iam_.role_by_arn(role_arn));
  if (!role) return Error::invalid("NoSuchEntity", fmt::format("Role {} does not exist", role_arn));
  auto a = aws::Arn::parse(role_arn);
  std::string role_name = a->resource.substr(a->resource.rfind('/') + 1);
  Issued out;
  out.access_key = ids::access_key_id("ASIA");
  out.secret = ids::secret_key();
  out.session_token = str::base64_encode("pier-sts:" + crypto::random_bytes(48));
  out.expires = time::epoch(clock_()) + static_cast<double>(duration);
  out.assumed_role_id = get_string(*role, "RoleId") + ":" + session_name;
  out.assumed_role_arn =
      fmt::format("arn:aws:sts::{}:assumed-role/{}/{}", a->account, role_name, session_name);
  PIER_TRY(store_.write([&](store::Db& db) -> Status {
    // Expired credentials are of no use to anyone; drop them as new ones are made.
    PIER_ASSIGN(auto* gc, db.prepare("DELETE FROM sts_credentials WHERE expires < ?"));
    gc->args(time::epoch(clock_()) - 3600);
    PIER_TRY(gc->run());
    PIER_ASSIGN(auto* st, db.prepare(
        "INSERT INTO sts_credentials(access_key, secret, session_token, account, principal_arn, "
        "role_arn, role_id, session_name, expires) VALUES(?,?,?,?,?,?,?,?,?)"));
    st->args(out.access_key, out.secret, out.session_token, a->account, out.assumed_role_arn,
             role_arn, get_string(*role, "RoleId"), session_name, out.expires);
    return st->run();
  }));
  return out;
}

aws::ServiceDef StsService::definition() {
  aws::ServiceDef def;
  def.model_id = "sts";
  // GetCallerIdentity needs no permission, on AWS as here.
  def.actions.push_back({"GetCallerIdentity", [](RequestContext& ctx, json::object&) -> Result<json::object> {
    return json::object{{"UserId", ctx.principal.user_id},
                        {"Account", ctx.principal.account},
                        {"Arn", ctx.principal.arn}};
  }, "sts:GetCallerIdentity", nullptr, /*needs_no_permission=*/true});

  def.actions.push_back({"AssumeRole", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role_arn = get_string(in, "RoleArn");
    std::string session = get_string(in, "RoleSessionName");
    int64_t duration = get_int(in, "DurationSeconds").value_or(3600);
    auto denied = [&] {
      return Error::denied("AccessDenied",
                           fmt::format("User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                                       ctx.principal.arn, role_arn));
    };
    PIER_ASSIGN(auto role, iam_.role_by_arn(role_arn));
    if (!role) return denied();
    int64_t max = get_int(*role, "MaxSessionDuration").value_or(3600);
    if (duration > max)
      return Error::invalid("ValidationError",
                            fmt::format("The requested DurationSeconds exceeds the MaxSessionDuration set for this role."));
    // The role's trust policy must name the caller: its account (root), its
    // role, or its session.
    auto trust = pier::iam::parse_policy(get_string(*role, "AssumeRolePolicyDocument"));
    if (!trust.ok()) return denied();
    std::vector<std::string> ids = {ctx.principal.account,
                                    fmt::format("arn:aws:iam::{}:root", ctx.principal.account),
                                    ctx.principal.arn};
    if (!ctx.principal.role_arn.empty()) ids.push_back(ctx.principal.role_arn);
    pier::iam::Request req;
    req.action = "sts:AssumeRole";
    req.resource = role_arn;
    req.context["aws:PrincipalArn"] = {ctx.principal.role_arn.empty() ? ctx.principal.arn : ctx.principal.role_arn};
    req.context["aws:SourceIp"] = {ctx.source_ip};
    if (pier::iam::evaluate_resource_policy(*trust, req, "AWS", ids) != pier::iam::Decision::kAllow)
      return denied();
    PIER_ASSIGN(auto issued, issue(role_arn, session, duration));
    json::object creds{{"AccessKeyId", issued.access_key},
                       {"SecretAccessKey", issued.secret},
                       {"SessionToken", issued.session_token},
                       {"Expiration", issued.expires}};
    json::object user{{"AssumedRoleId", issued.assumed_role_id}, {"Arn", issued.assumed_role_arn}};
    return json::object{{"Credentials", creds}, {"AssumedRoleUser", user}, {"PackedPolicySize", 0}};
  }, "sts:AssumeRole", [](const RequestContext&, const json::object& in) {
    aws::Authz a;
    a.resource = get_string(in, "RoleArn");
    return a;
  }});
  return def;
}

}  // namespace pier::svc::sts
