#include "client/aws_call.h"

#include <fmt/format.h>

#include <cstdlib>

#include "aws/sigv4.h"

namespace pier::client {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;

Headers sign_headers(const Endpoint& ep, std::string_view service, const std::string& method,
                     const std::string& target, const Headers& extra, std::string_view body,
                     const Credentials& creds) {
  aws::sigv4::WireRequest w;
  w.method = method;
  auto q = target.find('?');
  w.path = target.substr(0, q);
  if (q != std::string::npos) w.query = target.substr(q + 1);
  w.headers = {{"Host", ep.url.authority()}};
  for (const auto& h : extra) w.headers.push_back(h);
  w.body = body;
  aws::sigv4::sign(w, creds.key, creds.secret, ep.region, service, std::chrono::system_clock::now(),
                   creds.token);
  return w.headers;
}

asio::awaitable<Result<HttpResponse>> signed_request(const Endpoint& ep, std::string_view service,
                                                     const std::string& method, const std::string& target,
                                                     const Headers& extra, std::string body,
                                                     const Credentials& creds) {
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
  for (auto& [k, v] : sign_headers(ep, service, method, target, extra, body, creds)) req.set(k, v);
  req.body() = std::move(body);
  co_return co_await http_request(ep.url, std::move(req), ep.connect);
}

asio::awaitable<Result<json::object>> call_json(const Endpoint& ep, std::string_view service,
                                                std::string_view amz_target, const json::object& body,
                                                const Credentials& creds) {
  Headers headers;  // (built apart: GCC 12 mishandles braced literals in co_await)
  headers.emplace_back(std::string("Content-Type"), std::string("application/x-amz-json-1.1"));
  headers.emplace_back(std::string("X-Amz-Target"), std::string(amz_target));
  std::string method = "POST", target = "/";
  auto r = co_await signed_request(ep, service, method, target, headers, json::serialize(body), creds);
  if (!r.ok()) co_return r.error();
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  std::string op(amz_target.substr(amz_target.find('.') + 1));
  if (ec || !v.is_object())
    co_return Error::internal(fmt::format("{}: unexpected answer ({}): {}", op, r->status, r->body.substr(0, 200)));
  auto& o = v.as_object();
  if (r->status == 200) co_return std::move(o);
  auto field = [&](std::string_view k) {
    for (const auto& [key, val] : o)
      if (boost::beast::iequals(key, k) && val.is_string()) return std::string(val.as_string());
    return std::string();
  };
  std::string code = field("__type");
  code = code.substr(code.find('#') + 1);
  ErrorKind kind = r->status == 403   ? ErrorKind::kDenied
                   : r->status == 404 ? ErrorKind::kNotFound
                   : r->status >= 500 ? ErrorKind::kUnavailable
                                      : ErrorKind::kInvalid;
  co_return Error{kind, code, field("message")};
}

std::string region_from_environment() {
  for (const char* n : {"AWS_REGION", "AWS_DEFAULT_REGION"})
    if (const char* v = std::getenv(n); v && *v) return v;
  return "us-east-1";
}

}  // namespace pier::client
