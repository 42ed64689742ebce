#include "client/transport.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fmt/format.h>

#include <charconv>
#include <variant>

#include "common/strings.h"

namespace pier::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

Result<Url> Url::parse(std::string_view s) {
  Url u;
  uint16_t default_port = 0;
  for (auto [scheme, tls, port] : {std::tuple{"http://", false, 80}, std::tuple{"https://", true, 443},
                                   std::tuple{"ws://", false, 80}, std::tuple{"wss://", true, 443}}) {
    if (s.starts_with(scheme)) {
      s.remove_prefix(std::string_view(scheme).size());
      u.tls = tls;
      default_port = static_cast<uint16_t>(port);
      break;
    }
  }
  if (default_port == 0) return Error::invalid("InvalidEndpoint", fmt::format("not an http(s) or ws(s) URL: {}", s));
  auto slash = s.find_first_of("/?");
  std::string_view authority = s.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  if (u.target.front() == '?') u.target.insert(0, "/");
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view port;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return Error::invalid("InvalidEndpoint", "unclosed [ in the URL's host");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return Error::invalid("InvalidEndpoint", "no host in the URL");
  u.port = default_port;
  if (!port.empty()) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
      return Error::invalid("InvalidEndpoint", fmt::format("bad port in the URL: {}", port));
    u.port = static_cast<uint16_t>(p);
  }
  return u;
}

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

namespace {

using PlainWs = websocket::stream<beast::tcp_stream>;
using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

Result<std::shared_ptr<ssl::context>> tls_context(const ConnectOptions& opts) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (opts.ca_file.empty()) ctx->set_default_verify_paths(ec);
  else ctx->load_verify_file(opts.ca_file, ec);
  if (ec) return Error::invalid("InvalidCABundle", fmt::format("CA bundle {}: {}", opts.ca_file, ec.message()));
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

// Resolves and connects `s`, under the options' deadline.
asio::awaitable<Status> connect_tcp(beast::tcp_stream& s, const Url& url, const ConnectOptions& opts) {
  auto eps = co_await resolve(url.host, url.port, opts.dns);
  if (!eps.ok()) co_return eps.error();
  s.expires_after(opts.timeout);
  auto [ec, ep] = co_await s.async_connect(*eps, kTuple);
  if (ec) co_return Error{ErrorKind::kUnavailable, "ConnectionError",
                          fmt::format("connect to {}:{}: {}", url.host, url.port, ec.message())};
  s.socket().set_option(tcp::no_delay(true), ec);  // acks and keystrokes must not wait for Nagle
  co_return Status{};
}

template <class Next>
asio::awaitable<Status> tls_handshake(beast::ssl_stream<Next>& s, const Url& url) {
  if (!SSL_set_tlsext_host_name(s.native_handle(), url.host.c_str()))
    co_return Error::internal("TLS: cannot set the server name");
  s.set_verify_callback(ssl::host_name_verification(url.host));
  auto [ec] = co_await s.async_handshake(ssl::stream_base::client, kTuple);
  if (ec) co_return Error{ErrorKind::kUnavailable, "TlsError",
                          fmt::format("TLS with {}: {}", url.host, ec.message())};
  co_return Status{};
}

template <class Stream>
asio::awaitable<Result<HttpResponse>> exchange(Stream& s, bhttp::request<bhttp::string_body>& req) {
  auto [wec, wn] = co_await bhttp::async_write(s, req, kTuple);
  if (wec) co_return Error{ErrorKind::kUnavailable, "ConnectionError", "write: " + wec.message()};
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  auto [rec, rn] = co_await bhttp::async_read(s, buf, res, kTuple);
  if (rec) co_return Error{ErrorKind::kUnavailable, "ConnectionError", "read: " + rec.message()};
  std::string error_type(res["x-amzn-ErrorType"]);
  co_return HttpResponse{res.result_int(), std::move(res.body()), std::move(error_type)};
}

}  // namespace

asio::awaitable<Result<HttpResponse>> http_request(const Url& url, bhttp::request<bhttp::string_body> req,
                                                   const ConnectOptions& opts) {
  auto ex = co_await asio::this_coro::executor;
  if (req.find(bhttp::field::host) == req.end()) req.set(bhttp::field::host, url.authority());
  req.prepare_payload();
  if (!url.tls) {
    beast::tcp_stream s(ex);
    if (auto c = co_await connect_tcp(s, url, opts); !c.ok()) co_return c.error();
    co_return co_await exchange(s, req);
  }
  auto ctx = tls_context(opts);
  if (!ctx.ok()) co_return ctx.error();
  beast::ssl_stream<beast::tcp_stream> s(ex, **ctx);
  if (auto c = co_await connect_tcp(beast::get_lowest_layer(s), url, opts); !c.ok()) co_return c.error();
  if (auto h = co_await tls_handshake(s, url); !h.ok()) co_return h.error();
  co_return co_await exchange(s, req);
}

struct WebSocket::Impl {
  std::shared_ptr<ssl::context> ctx;  // outlives the stream that refers to it
  std::variant<std::unique_ptr<PlainWs>, std::unique_ptr<TlsWs>> ws;
  asio::any_io_executor ex;
};

WebSocket::WebSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebSocket::~WebSocket() = default;

namespace {

template <class Ws>
asio::awaitable<Status> upgrade(Ws& ws, const Url& url, const Headers& headers, const ConnectOptions& opts) {
  ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& r) {
    for (const auto& [k, v] : headers)
      if (!beast::iequals(k, "Host")) r.set(k, v);
  }));
  auto t = websocket::stream_base::timeout::suggested(beast::role_type::client);
  if (opts.ws_idle_timeout.count() > 0) {
    t.idle_timeout = opts.ws_idle_timeout;
    t.keep_alive_pings = true;
  }
  ws.set_option(t);
  ws.read_message_max(64 * 1024 * 1024);
  // A message goes as one frame, masked (a client must) through a 64 KiB
  // buffer, not fragmented into frames of 4 KiB (Beast's default).
  ws.auto_fragment(false);
  ws.write_buffer_bytes(64 * 1024);
  websocket::response_type res;
  auto [ec] = co_await ws.async_handshake(res, url.authority(), url.target, kTuple);
  if (ec) {
    // A declined upgrade says why in its status and body (pierd's 403 names
    // the action the credentials lack); keep that, not only Beast's words.
    std::string why = ec.message();
    if (res.result_int() != 0 && res.result() != beast::http::status::switching_protocols) {
      auto body = str::trim(std::string_view(res.body()).substr(0, 300));
      why = fmt::format("{} {}{}{}", res.result_int(), std::string(res.reason()), body.empty() ? "" : ": ", body);
    }
    co_return Error{ErrorKind::kUnavailable, "ConnectionError",
                    fmt::format("WebSocket upgrade of {}: {}", url.target.substr(0, url.target.find('?')), why)};
  }
  beast::get_lowest_layer(ws).expires_never();
  co_return Status{};
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<WebSocket>>> WebSocket::connect(const Url& url, const Headers& headers,
                                                                       const ConnectOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->ex = co_await asio::this_coro::executor;
  if (!url.tls) {
    auto ws = std::make_unique<PlainWs>(impl->ex);
    if (auto c = co_await connect_tcp(beast::get_lowest_layer(*ws), url, opts); !c.ok()) co_return c.error();
    if (auto u = co_await upgrade(*ws, url, headers, opts); !u.ok()) co_return u.error();
    impl->ws = std::move(ws);
  } else {
    auto ctx = tls_context(opts);
    if (!ctx.ok()) co_return ctx.error();
    impl->ctx = std::move(ctx).value();
    auto ws = std::make_unique<TlsWs>(impl->ex, *impl->ctx);
    if (auto c = co_await connect_tcp(beast::get_lowest_layer(*ws), url, opts); !c.ok()) co_return c.error();
    if (auto h = co_await tls_handshake(ws->next_layer(), url); !h.ok()) co_return h.error();
    if (auto u = co_await upgrade(*ws, url, headers, opts); !u.ok()) co_return u.error();
    impl->ws = std::move(ws);
  }
  co_return std::unique_ptr<WebSocket>(new WebSocket(std::move(impl)));
}

asio::awaitable<boost::system::error_code> WebSocket::read(beast::flat_buffer& buf) {
  boost::system::error_code ec;
  if (auto* p = std::get_if<0>(&impl_->ws)) std::tie(ec, std::ignore) = co_await (*p)->async_read(buf, kTuple);
  else std::tie(ec, std::ignore) = co_await std::get<1>(impl_->ws)->async_read(buf, kTuple);
  co_return ec;
}

asio::awaitable<boost::system::error_code> WebSocket::write(std::string_view data, bool text) {
  boost::system::error_code ec;
  if (auto* p = std::get_if<0>(&impl_->ws)) {
    (*p)->text(text);
    std::tie(ec, std::ignore) = co_await (*p)->async_write(asio::buffer(data), kTuple);
  } else {
    auto& w = std::get<1>(impl_->ws);
    w->text(text);
    std::tie(ec, std::ignore) = co_await w->async_write(asio::buffer(data), kTuple);
  }
  co_return ec;
}

void WebSocket::close() {
  boost::system::error_code ignored;
  std::visit([&](auto& w) { beast::get_lowest_layer(*w).socket().close(ignored); }, impl_->ws);
}

asio::any_io_executor WebSocket::executor() const { return impl_->ex; }

}  // namespace pier::client
