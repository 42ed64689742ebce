#include "aws/dispatcher.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "aws/errors.h"
#include "aws/protocol.h"
#include "aws/sigv4.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/strings.h"

namespace pier::aws {

namespace bhttp = boost::beast::http;

namespace {
// The request as SigV4 sees it: the raw path and query, the headers in order.
sigv4::WireRequest wire_of(const http::Request& req, const Url& url) {
  sigv4::WireRequest wire;
  wire.method = std::string(req.method_string());
  wire.path = url.path;
  wire.query = url.raw_query;
  for (const auto& f : req) wire.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  wire.body = req.body();
  return wire;
}

// The path alone: a query string may hold a presigned signature or token.
std::string_view url_path(std::string_view target) { return target.substr(0, target.find('?')); }

std::string redact_token(std::string text) {
  for (std::string_view key : {"x-amz-security-token:", "X-Amz-Security-Token="}) {
    for (size_t pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + 1)) {
      size_t start = pos + key.size();
      size_t end = text.find_first_of("&\n", start);
      if (end == std::string::npos) end = text.size();
      text.replace(start, end - start, "****");
    }
  }
  return text;
}
}  // namespace

Dispatcher::Dispatcher(std::string model_dir, IdentityProvider* identities, time::Clock clock)
    : model_dir_(std::move(model_dir)),
      identities_(identities),
      clock_(std::move(clock)),
      access_log_(log::get("access")),
      log_(log::get("aws")) {}

Status Dispatcher::add_service(ServiceDef def) {
  std::string path = (std::filesystem::path(model_dir_) / (def.model_id + ".json")).string();
  PIER_ASSIGN(auto model, ServiceModel::load_file(def.model_id, path));
  auto s = std::make_unique<Served>();
  for (auto& a : def.actions) {
    if (!model->find_operation(a.name))
      return Error::internal(fmt::format("{}: action {} is not in the model", def.model_id, a.name));
    if (a.iam_action.empty()) a.iam_action = model->signing_name + ":" + a.name;
    s->actions.emplace(a.name, std::move(a));
  }
  std::set<std::string, std::less<>> served;
  for (const auto& [name, a] : s->actions) served.insert(name);
  model->retain(served);
  s->model = std::move(model);
  by_signing_name_[s->model->signing_name] = s.get();
  if (!s->model->target_prefix.empty()) by_target_prefix_[s->model->target_prefix] = s.get();
  served_.push_back(std::move(s));
  return {};
}

void Dispatcher::add_unsigned(UnsignedRoute route) { unsigned_.push_back(std::move(route)); }

std::vector<std::string> Dispatcher::services() const {
  std::vector<std::string> out;
  for (const auto& s : served_) out.push_back(s->model->id);
  return out;
}

const ServiceModel* Dispatcher::model(std::string_view id) const {
  for (const auto& s : served_)
    if (s->model->id == id) return s->model.get();
  return nullptr;
}

http::Response Dispatcher::handle(http::Request& req, const http::Peer& peer) {
  auto start = std::chrono::steady_clock::now();
  RequestContext ctx;
  ctx.request_id = ids::uuid4();
  ctx.source_ip = peer.address;
  ctx.http = &req;
  const Served* served = nullptr;
  std::string error_code;
  http::Response res = dispatch(req, peer, ctx, served, error_code);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - start)
                .count();
  // One access line per request. Never the Authorization header, tokens or bodies.
  access_log_->info("{} {} service={} action={} status={} code={} latency_us={} id={} src={}",
                           req.method_string(), std::string_view(url_path(req.target())).substr(0, 200),
                           ctx.service.empty() ? "-" : ctx.service,
                           ctx.action.empty() ? "-" : ctx.action, res.result_int(),
                           error_code.empty() ? "-" : error_code, us, ctx.request_id,
                           peer.address);
  return res;
}

http::Response Dispatcher::dispatch(http::Request& req, const http::Peer& peer,
                                    RequestContext& ctx, const Served*& served,
                                    std::string& error_code) {
  Url url = split_target(req.target());
  for (const auto& r : unsigned_) {
    if (r.method == req.method_string() && url.path.starts_with(r.path_prefix)) {
      ctx.service = "unsigned";
      ctx.action = r.path_prefix;
      return r.handler(req, peer);
    }
  }

  std::multimap<std::string, std::string> form;
  if (req.method() == bhttp::verb::post &&
      req[bhttp::field::content_type].find("x-www-form-urlencoded") != std::string_view::npos)
    form = parse_form(req.body());

  // Until the service is known, errors take the shape the request suggests.
  Protocol proto = guess_protocol(req);
  if (auto t = req.find("x-amz-target"); t != req.end()) {
    std::string_view target = t->value();
    auto it = by_target_prefix_.find(std::string(target.substr(0, target.rfind('.'))));
    if (it != by_target_prefix_.end()) served = it->second;
  }
  auto fail = [&](const Error& e) {
    Protocol p = served ? served->model->protocol : proto;
    Error spelled = for_protocol(p, e);
    error_code = spelled.code;
    return encode_error(p, served ? served->model.get() : nullptr, spelled, ctx.request_id,
                        req.version());
  };

  sigv4::WireRequest wire = wire_of(req, url);
  auto claim = sigv4::parse(wire);
  if (!claim.ok()) return fail(claim.error());

  for (const auto& r : signed_) {
    if (r.signing_name != claim->service || r.method != req.method_string() ||
        !url.path.starts_with(r.path_prefix))
      continue;
    ctx.service = r.signing_name;
    ctx.action = r.iam_action;
    ctx.region = claim->region.empty() ? "us-east-1" : claim->region;
    auto fail_raw = [&](const Error& e) {
      Error spelled = for_protocol(Protocol::kRestJson, e);
      error_code = spelled.code;
      return encode_error(Protocol::kRestJson, nullptr, spelled, ctx.request_id, req.version());
    };
    sigv4::Options opt;
    if (auto v = verify_caller(wire, *claim, opt, ctx); !v.ok()) return fail_raw(v.error());
    if (auto a = authorize_action(ctx, r.iam_action, "*"); !a.ok()) return fail_raw(a.error());
    auto res = r.handler(ctx, req);
    if (!res.ok()) return fail_raw(res.error());
    return std::move(res).value();
  }

  auto sit = by_signing_name_.find(claim->service);
  if (sit == by_signing_name_.end())
    return fail(Error::invalid("UnknownOperation",
                               fmt::format("pier does not serve the service '{}'", claim->service)));
  served = sit->second;
  const ServiceModel& model = *served->model;
  ctx.service = model.id;
  ctx.region = claim->region.empty() ? "us-east-1" : claim->region;

  sigv4::Options opt;
  opt.s3 = model.protocol == Protocol::kRestXml && model.signing_name == "s3";
  opt.window = opt.s3 ? std::chrono::seconds(900) : std::chrono::seconds(300);
  if (auto v = verify_caller(wire, *claim, opt, ctx); !v.ok()) return fail(v.error());

  auto op = resolve_operation(model, req, url, form);
  if (!op.ok()) return fail(op.error());
  ctx.action = (*op)->name;
  auto ait = served->actions.find((*op)->name);
  if (ait == served->actions.end() || !ait->second.handler)
    return fail(Error::invalid("UnknownOperation",
                               fmt::format("pier does not implement {}:{} yet", model.signing_name,
                                           (*op)->name)));
  const Action& action = ait->second;

  auto input = decode_input(model, **op, req, url, form);
  if (!input.ok()) return fail(input.error());

  if (auto a = authorize(ctx, action, *input); !a.ok()) return fail(a.error());

  ctx.model = &model;
  Result<json::object> out = Error::internal("no result");
  try {
    out = action.handler(ctx, *input);
  } catch (const std::exception& e) {
    log_->error("{} {} threw: {} (id={})", model.id, action.name, e.what(), ctx.request_id);
    out = Error::internal("We encountered an internal error. Please try again.");
  }
  if (!out.ok()) {
    if (out.error().kind == ErrorKind::kInternal)
      log_->error("{} {}: {} (id={})", model.id, action.name, out.error().message,
                             ctx.request_id);
    return fail(out.error());
  }
  return encode_output(model, **op, *out, ctx.request_id, req.version());
}

Result<RequestContext> Dispatcher::authenticate(const http::Request& req, const http::Peer& peer) {
  RequestContext ctx;
  ctx.request_id = ids::uuid4();
  ctx.source_ip = peer.address;
  ctx.http = &req;
  Url url = split_target(req.target());
  sigv4::WireRequest wire = wire_of(req, url);
  PIER_ASSIGN(sigv4::Claim claim, sigv4::parse(wire));
  ctx.service = claim.service;
  ctx.region = claim.region.empty() ? "us-east-1" : claim.region;
  PIER_TRY(verify_caller(wire, claim, sigv4::Options{}, ctx));
  return ctx;
}

Status Dispatcher::verify_caller(const sigv4::WireRequest& wire, const sigv4::Claim& claim_ref,
                                 const sigv4::Options& opt, RequestContext& ctx) {
  const sigv4::Claim* claim = &claim_ref;
  auto found = identities_->find(claim->access_key);
  if (!found.ok()) return (found.error());
  if (!found->has_value())
    return (Error::unauthenticated("InvalidClientTokenId",
                                       "The security token included in the request is invalid."));
  auto& who = **found;
  auto now = clock_();
  // Milliseconds, as AWS stamps what it records. More digits would not
  // survive the store: Boost.JSON 1.81 parses about one double in eight a bit
  // off, which can move a microsecond the clients show (measured: 12% of
  // epoch-second values with 9 decimals).
  ctx.now = std::round(time::epoch(now) * 1000) / 1000;
  std::string canonical;
  if (auto v = sigv4::verify(wire, *claim, who.secret, now, opt, &canonical); !v.ok()) {
    // The canonical request is what a client author needs to see; its one
    // secret, a session token, is masked.
    if (v.error().code == "SignatureDoesNotMatch")
      log_->debug("signature mismatch (id={}); canonical request:\n{}", ctx.request_id,
                             redact_token(canonical));
    return (v.error());
  }
  if (!who.session_token.empty()) {
    if (claim->security_token != who.session_token)
      return (Error::unauthenticated("InvalidClientTokenId",
                                         "The security token included in the request is invalid."));
    if (who.principal.expires > 0 && ctx.now > who.principal.expires)
      return (Error::unauthenticated("ExpiredToken",
                                         "The security token included in the request is expired"));
  }
  ctx.principal = who.principal;
  return {};
}

Status Dispatcher::authorize(RequestContext& ctx, const Action& action, const json::object& input) {
  // The account's root user is allowed everything, as on AWS.
  if (ctx.principal.kind == Principal::Kind::kRoot || action.needs_no_permission) return {};
  Authz az = action.resource ? action.resource(ctx, input) : Authz{};
  return authorize_action(ctx, action.iam_action, std::move(az.resource), std::move(az.context));
}

Status Dispatcher::authorize_action(RequestContext& ctx, std::string_view iam_action,
                                    std::string resource,
                                    std::map<std::string, std::vector<std::string>> context) {
  if (ctx.principal.kind == Principal::Kind::kRoot) return {};
  iam::Request r;
  r.action = std::string(iam_action);
  r.resource = std::move(resource);
  r.context = std::move(context);
  r.context["aws:PrincipalArn"] = {ctx.principal.role_arn.empty() ? ctx.principal.arn
                                                                   : ctx.principal.role_arn};
  r.context["aws:PrincipalAccount"] = {ctx.principal.account};
  r.context["aws:userid"] = {ctx.principal.user_id};
  r.context["aws:SourceIp"] = {ctx.source_ip};
  r.context["aws:RequestedRegion"] = {ctx.region};
  r.context["aws:CurrentTime"] = {time::iso8601(ctx.now)};
  r.context["aws:EpochTime"] = {std::to_string(static_cast<int64_t>(ctx.now))};
  r.context["aws:SecureTransport"] = {"false"};
  PIER_ASSIGN(auto policies, identities_->policies(ctx.principal));
  auto d = iam::evaluate(policies, r);
  if (d == iam::Decision::kAllow) return {};
  return Error::denied(
      "AccessDenied",
      fmt::format("User: {} is not authorized to perform: {} on resource: {} because {}",
                  ctx.principal.arn, r.action, r.resource,
                  d == iam::Decision::kExplicitDeny
                      ? "with an explicit deny in an identity-based policy"
                      : fmt::format("no identity-based policy allows the {} action", r.action)));
}

}  // namespace pier::aws
