#include "client/credentials.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/strings.h"

namespace pier::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr const char* kEcsHost = "169.254.170.2";
constexpr auto kHttpDeadline = 5s;
constexpr auto kRefreshBefore = 5min;

std::string env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

Error no_credentials(std::string detail) {
  return Error::unauthenticated("NoCredentials", "Unable to locate credentials" +
                                                     (detail.empty() ? "" : ": " + detail));
}

struct Url {
  std::string host;  // without brackets
  uint16_t port = 80;
  std::string target;  // path and query, at least "/"
};

Result<Url> parse_http_url(std::string_view u) {
  auto bad = [&](std::string_view why) {
    return Error::invalid("InvalidContainerCredentialsUri",
                          fmt::format("container credentials URI {}: {}", u, why));
  };
  if (str::starts_with_icase(u, "https://")) return bad("https is not supported; use http");
  if (!str::starts_with_icase(u, "http://")) return bad("not an http:// URL");
  std::string_view rest = u.substr(7);
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  Url out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return bad("user information is not allowed");
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [");
    out.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after ]");
      port = after.substr(1);
    }
  } else {
    auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return bad("no host");
  if (!port.empty()) {
    unsigned v = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || (v = v * 10 + static_cast<unsigned>(c - '0')) > 65535) return bad("bad port");
    }
    if (v == 0) return bad("bad port");
    out.port = static_cast<uint16_t>(v);
  }
  return out;
}

// Plain-http credentials only from the machine itself or the ECS/EKS agents,
// as the SDKs insist: anyone else on the path could read the answer.
bool allowed_http_address(const asio::ip::address& a) {
  if (a.is_loopback()) return true;
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return allowed_http_address(asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()));
  for (const char* ok : {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})
    if (a == asio::ip::make_address(ok)) return true;
  return false;
}

// The answer's JSON, with anything secret-looking replaced, for error texts.
std::string redacted_excerpt(std::string_view body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  std::string text;
  if (!ec && v.is_object()) {
    auto o = v.as_object();
    for (auto& kv : o) {
      std::string k = str::lower(kv.key());
      if (k.find("secret") != std::string::npos || k.find("token") != std::string::npos) kv.value() = "<redacted>";
    }
    text = json::serialize(o);
  } else if (!ec) {
    text = json::serialize(v);
  } else {
    text = std::string(body);
  }
  constexpr size_t kMax = 256;
  if (text.size() > kMax) text = text.substr(0, kMax) + "…";
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

const json::string* string_field(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? &v->as_string() : nullptr;
}

}  // namespace

std::optional<std::map<std::string, std::string>> read_profile(const std::string& path,
                                                               const std::string& profile) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::optional<std::map<std::string, std::string>> out;
  bool inside = false;
  std::string line;
  while (std::getline(in, line)) {
    auto l = str::trim(line);
    if (l.empty() || l.front() == '#' || l.front() == ';') continue;
    if (l.front() == '[') {
      auto close = l.find(']');
      if (close == std::string_view::npos) {
        inside = false;
        continue;
      }
      auto name = str::trim(l.substr(1, close - 1));
      // The config file spells it "[profile NAME]"; accept that here too.
      if (name.starts_with("profile ") && name != "profile") name = str::trim(name.substr(8));
      inside = name == profile;
      if (inside && !out) out.emplace();
      continue;
    }
    if (!inside) continue;
    auto eq = l.find('=');
    if (eq == std::string_view::npos) continue;
    auto k = str::lower(str::trim(l.substr(0, eq)));
    auto v = std::string(str::trim(l.substr(eq + 1)));
    if (!k.empty()) (*out)[k] = v;
  }
  return out;
}

Result<Credentials> parse_container_credentials(std::string_view body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object())
    return Error::internal(fmt::format("container credentials: the answer is not a JSON object: {}",
                                       redacted_excerpt(body)));
  const auto& o = v.as_object();
  const auto* key = string_field(o, "AccessKeyId");
  const auto* secret = string_field(o, "SecretAccessKey");
  if (!key || key->empty() || !secret || secret->empty()) {
    return Error::internal(fmt::format("container credentials: the answer lacks {}: {}",
                                       !key || key->empty() ? "AccessKeyId" : "SecretAccessKey",
                                       redacted_excerpt(body)));
  }
  Credentials c;
  c.key = std::string(*key);
  c.secret = std::string(*secret);
  if (const auto* t = string_field(o, "Token")) c.token = std::string(*t);
  if (const auto* e = string_field(o, "Expiration"); e && !e->empty()) {
    auto t = time::parse_iso8601(std::string_view(*e));
    if (!t)
      return Error::internal(fmt::format("container credentials: bad Expiration \"{}\"", std::string_view(*e)));
    c.expires = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(*t)));
  }
  return c;
}

CredentialsProvider CredentialsProvider::from_environment(ResolverOptions dns) {
  CredentialsProvider p;
  p.dns_ = std::move(dns);
  if (auto key = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY"); !key.empty() && !secret.empty()) {
    p.kind_ = Kind::kEnvironment;
    p.static_ = {key, secret, env("AWS_SESSION_TOKEN"), std::nullopt};
    return p;
  }
  if (auto rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); !rel.empty()) {
    p.kind_ = Kind::kContainer;
    p.url_ = fmt::format("http://{}{}{}", kEcsHost, rel.front() == '/' ? "" : "/", rel);
  } else if (auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI"); !full.empty()) {
    p.kind_ = Kind::kContainer;
    p.url_ = full;
    p.auth_token_file_ = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    p.auth_token_ = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  }
  if (p.kind_ == Kind::kContainer) return p;
  p.file_ = env("AWS_SHARED_CREDENTIALS_FILE");
  if (p.file_.empty()) {
    auto home = env("HOME");
    if (!home.empty()) p.file_ = home + "/.aws/credentials";
  }
  p.profile_ = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  p.kind_ = p.file_.empty() ? Kind::kNone : Kind::kSharedFile;
  return p;
}

std::string CredentialsProvider::source() const {
  switch (kind_) {
    case Kind::kEnvironment:
      return "environment";
    case Kind::kContainer:
      return "container endpoint " + url_;
    case Kind::kSharedFile:
      return fmt::format("shared file profile {} ({})", profile_, file_);
    case Kind::kNone:
      break;
  }
  return "none";
}

void CredentialsProvider::invalidate() { cached_.reset(); }

asio::awaitable<Result<Credentials>> CredentialsProvider::get() {
  auto now = clock_();
  if (cached_ && (!cached_->expires || now + kRefreshBefore < *cached_->expires)) co_return *cached_;
  auto fresh = co_await fetch();
  if (fresh.ok()) {
    cached_ = *fresh;
    co_return fresh;
  }
  if (cached_ && cached_->expires && now < *cached_->expires) {
    log::get("client")->warn("refreshing credentials from {} failed ({}); the current ones stay valid until {}",
                             source(), fresh.error().message, time::iso8601(time::epoch(*cached_->expires)));
    co_return *cached_;
  }
  co_return fresh;
}

asio::awaitable<Result<Credentials>> CredentialsProvider::fetch() {
  switch (kind_) {
    case Kind::kEnvironment:
      co_return static_;
    case Kind::kContainer:
      co_return co_await fetch_container();
    case Kind::kSharedFile:
      co_return read_shared_file();
    case Kind::kNone:
      break;
  }
  co_return no_credentials("no AWS_ACCESS_KEY_ID, container endpoint or HOME");
}

Result<Credentials> CredentialsProvider::read_shared_file() {
  ++fetches_;
  auto p = read_profile(file_, profile_);
  if (!p) {
    std::ifstream probe(file_);
    return no_credentials(probe ? fmt::format("no profile {} in {}", profile_, file_)
                                : fmt::format("cannot read {}", file_));
  }
  Credentials c;
  c.key = (*p)["aws_access_key_id"];
  c.secret = (*p)["aws_secret_access_key"];
  c.token = (*p)["aws_session_token"];
  if (c.key.empty() || c.secret.empty())
    return no_credentials(fmt::format("profile {} in {} has no aws_access_key_id/aws_secret_access_key",
                                      profile_, file_));
  return c;
}

// GCC 12 takes asio's coroutine-frame operator new/delete pair for a
// mismatch once they are inlined (GCC PR 109224); the pair is asio's own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<Result<Credentials>> CredentialsProvider::fetch_container() {
  ++fetches_;
  auto url = parse_http_url(url_);
  if (!url.ok()) co_return url.error();
  std::string auth;
  if (!auth_token_file_.empty()) {
    std::ifstream in(auth_token_file_);
    if (!in)
      co_return no_credentials(fmt::format("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}", auth_token_file_));
    std::stringstream ss;
    ss << in.rdbuf();
    auth = std::string(str::trim(ss.str()));
  } else {
    auth = auth_token_;
  }
  if (auth.find_first_of("\r\n") != std::string::npos)
    co_return Error::invalid("InvalidContainerAuthorizationToken",
                             "the container authorization token contains a line break");

  ResolverOptions dns = dns_;
  dns.timeout = std::min<std::chrono::milliseconds>(dns.timeout, kHttpDeadline);
  auto eps = co_await resolve(url->host, url->port, dns);
  if (!eps.ok()) co_return eps.error();
  for (const auto& ep : *eps)
    if (!allowed_http_address(ep.address()))
      co_return Error::invalid("InvalidContainerCredentialsUri",
                               fmt::format("container credentials URI {}: {} is neither a loopback address nor an "
                                           "ECS/EKS agent address, which plain http requires",
                                           url_, ep.address().to_string()));

  auto ex = co_await asio::this_coro::executor;
  beast::tcp_stream s(ex);
  s.expires_after(kHttpDeadline);  // one deadline for connect, request and answer
  auto unreachable = [&](std::string_view what, const boost::system::error_code& ec) {
    return Error{ErrorKind::kUnavailable, "CredentialsEndpointUnavailable",
                 fmt::format("container credentials {}: {}: {}", url_, what,
                             ec == beast::error::timeout ? "timed out" : ec.message())};
  };
  auto [cec, ep] = co_await s.async_connect(*eps, kTuple);
  if (cec) co_return unreachable("connect", cec);
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, url->target, 11};
  bool v6 = ep.address().is_v6() && url->host.find(':') != std::string::npos;
  std::string host = v6 ? "[" + url->host + "]" : url->host;
  req.set(bhttp::field::host, url->port == 80 ? host : fmt::format("{}:{}", host, url->port));
  req.set(bhttp::field::accept, "application/json");
  req.set(bhttp::field::user_agent, "pier-exec-agent");
  if (!auth.empty()) req.set(bhttp::field::authorization, auth);
  auto [wec, wn] = co_await bhttp::async_write(s, req, kTuple);
  if (wec) co_return unreachable("request", wec);
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(1 << 20);
  auto [rec, rn] = co_await bhttp::async_read(s, buf, parser, kTuple);
  if (rec) co_return unreachable("answer", rec);
  boost::system::error_code ignored;
  s.socket().shutdown(tcp::socket::shutdown_both, ignored);
  const auto& res = parser.get();
  if (res.result_int() != 200) {
    auto msg = fmt::format("container credentials {}: HTTP {}: {}", url_, res.result_int(),
                           redacted_excerpt(res.body()));
    if (res.result_int() >= 400 && res.result_int() < 500)
      co_return Error::unauthenticated("CredentialsEndpointRefused", msg);
    co_return Error{ErrorKind::kUnavailable, "CredentialsEndpointUnavailable", msg};
  }
  auto c = parse_container_credentials(res.body());
  if (!c.ok()) {
    auto e = std::move(c).error();
    e.message = fmt::format("{} (HTTP 200 from {})", e.message, url_);
    co_return e;
  }
  co_return c;
}
#pragma GCC diagnostic pop

}  // namespace pier::client
