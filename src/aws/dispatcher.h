// The action dispatcher: every AWS API request runs
//   signature → identity → operation → decode+validate → IAM → handler → encode
// here, for every service alike. Services register a table of actions; they
// never see HTTP, and nothing here knows a service.
#pragma once

#include <boost/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "aws/model.h"
#include "aws/sigv4.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time.h"
#include "http/server.h"
#include "iam/policy.h"

namespace pier::aws {

namespace json = boost::json;

// Who is calling.
struct Principal {
  enum class Kind { kRoot, kAssumedRole };
  Kind kind = Kind::kRoot;
  std::string account;
  std::string arn;      // arn:aws:iam::ACCOUNT:root, arn:aws:sts::ACCOUNT:assumed-role/R/S
  std::string user_id;  // ACCOUNT for root, ROLEID:SESSION for a role session
  std::string access_key;
  std::string role_arn;
  std::string role_name;
  std::string session_name;
  double expires = 0;
};

// Where identities come from (services/iam and services/sts implement it).
class IdentityProvider {
 public:
  virtual ~IdentityProvider() = default;
  struct Found {
    Principal principal;
    std::string secret;
    std::string session_token;  // required to match when not empty
  };
  // nullopt: no such access key.
  virtual Result<std::optional<Found>> find(std::string_view access_key) = 0;
  // The identity-based policies that apply to the principal.
  virtual Result<std::vector<iam::Policy>> policies(const Principal& p) = 0;
};

struct RequestContext {
  std::string request_id;
  std::string region;
  std::string service;  // model id
  std::string action;
  Principal principal;
  std::string source_ip;
  double now = 0;  // epoch seconds
  const http::Request* http = nullptr;
  const ServiceModel* model = nullptr;
};

// What IAM is asked for an action: the resource ARN and condition keys.
struct Authz {
  std::string resource = "*";
  std::map<std::string, std::vector<std::string>> context;
};

using Handler = std::function<Result<json::object>(RequestContext& ctx, json::object& input)>;
using ResourceFn = std::function<Authz(const RequestContext& ctx, const json::object& input)>;

struct Action {
  std::string name;        // AWS's action name, exactly
  Handler handler;         // null: listed but not implemented yet
  std::string iam_action;  // empty: "<signing name>:<name>"
  ResourceFn resource;     // null: "*"
  bool needs_no_permission = false;  // as sts:GetCallerIdentity on AWS
};

struct ServiceDef {
  std::string model_id;  // file under the model dir: "ecs"
  std::vector<Action> actions;
};

// An unsigned endpoint (AWS's own unsigned paths: data-channel WebSockets,
// container credentials). Matched by method and path prefix, before SigV4.
struct UnsignedRoute {
  std::string method;
  std::string path_prefix;
  std::function<http::Response(http::Request& req, const http::Peer& peer)> handler;
};

// A signed endpoint outside any service model (the ssmmessages REST calls):
// matched by signing name, method and path prefix; SigV4 and IAM (the one
// action, on "*") are checked before the handler runs.
struct SignedRoute {
  std::string signing_name;
  std::string method;
  std::string path_prefix;
  std::string iam_action;
  std::function<Result<http::Response>(RequestContext& ctx, http::Request& req)> handler;
};

class Dispatcher {
 public:
  Dispatcher(std::string model_dir, IdentityProvider* identities, time::Clock clock);

  Status add_service(ServiceDef def);
  void add_unsigned(UnsignedRoute route);
  void add_signed(SignedRoute route) { signed_.push_back(std::move(route)); }

  // SigV4 and identity alone, for WebSocket upgrades (which never reach handle()).
  Result<RequestContext> authenticate(const http::Request& req, const http::Peer& peer);
  // IAM for one action on one resource (root is allowed everything).
  Status authorize_action(RequestContext& ctx, std::string_view iam_action, std::string resource,
                          std::map<std::string, std::vector<std::string>> context = {});

  http::Response handle(http::Request& req, const http::Peer& peer);

  // The services served, for the startup banner.
  std::vector<std::string> services() const;
  const ServiceModel* model(std::string_view id) const;

 private:
  struct Served {
    std::unique_ptr<ServiceModel> model;
    std::unordered_map<std::string, Action> actions;
  };
  http::Response dispatch(http::Request& req, const http::Peer& peer, RequestContext& ctx,
                          const Served*& served, std::string& error_code);
  Status authorize(RequestContext& ctx, const Action& action, const json::object& input);
  Status verify_caller(const sigv4::WireRequest& wire, const sigv4::Claim& claim,
                       const sigv4::Options& opt, RequestContext& ctx);

  std::string model_dir_;
  IdentityProvider* identities_;
  time::Clock clock_;
  std::vector<std::unique_ptr<Served>> served_;
  std::unordered_map<std::string, Served*> by_signing_name_;
  std::unordered_map<std::string, Served*> by_target_prefix_;
  std::vector<UnsignedRoute> unsigned_;
  std::vector<SignedRoute> signed_;
  std::shared_ptr<spdlog::logger> access_log_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace pier::aws
