#include "http/server.h"

#include <boost/asio/as_tuple.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strings.h"

namespace pier::http {

namespace bhttp = beast::http;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

struct Server::Conn {
  explicit Conn(asio::any_io_executor ex) : executor(std::move(ex)) {}
  asio::any_io_executor executor;
  beast::tcp_stream* lowest = nullptr;  // the TCP layer of whatever stream serves it (on executor)
  std::atomic<bool> idle{true};
  std::atomic<bool> upgraded{false};

  // Runs on the connection's executor. A WebSocket is closed outright (its
  // session may be between operations, where a cancel would be lost).
  void cancel() {
    if (!lowest) return;
    if (upgraded) {
      boost::system::error_code ignored;
      lowest->socket().close(ignored);
    } else {
      lowest->cancel();
    }
  }
};

struct Server::Listener {
  Listener(asio::io_context& ioc, ListenOptions o) : options(std::move(o)), acceptor(ioc) {}
  ListenOptions options;
  tcp::acceptor acceptor;
};

namespace {

// The upgraded WebSocket over either stream.
template <class Next>
class WsOver final : public WsStream {
 public:
  explicit WsOver(Next&& next) : ws_(std::move(next)) {}
  beast::websocket::stream<Next>& ws() { return ws_; }

  asio::awaitable<std::tuple<boost::system::error_code, size_t>> read(beast::flat_buffer& buf) override {
    auto [ec, n] = co_await ws_.async_read(buf, kTuple);
    co_return std::make_tuple(ec, n);
  }
  asio::awaitable<boost::system::error_code> write(asio::const_buffer data, bool binary) override {
    ws_.binary(binary);
    auto [ec, n] = co_await ws_.async_write(data, kTuple);
    co_return ec;
  }
  asio::awaitable<boost::system::error_code> ping() override {
    auto [ec] = co_await ws_.async_ping({}, kTuple);
    co_return ec;
  }
  void close_socket() override {
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }
  bool got_binary() const override { return ws_.got_binary(); }
  void set_timeouts(const beast::websocket::stream_base::timeout& t, size_t read_message_max) override {
    ws_.set_option(t);
    ws_.read_message_max(read_message_max);
    // A message goes out as one unmasked frame, written from its own buffer
    // (Beast's default fragments it into frames of 4 KiB).
    ws_.auto_fragment(false);
  }
  void on_control(std::function<void(beast::websocket::frame_type)> f) override {
    if (!f) {
      ws_.control_callback();
      return;
    }
    ws_.control_callback([f = std::move(f)](beast::websocket::frame_type kind, beast::string_view) { f(kind); });
  }
  asio::any_io_executor get_executor() override { return ws_.get_executor(); }

 private:
  beast::websocket::stream<Next> ws_;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

}  // namespace

Server::Server(std::vector<asio::io_context*> contexts, Handler handler, Options options)
    : contexts_(std::move(contexts)), handler_(std::move(handler)), options_(options) {}

Server::~Server() = default;

Result<tcp::endpoint> Server::listen(const std::string& host, uint16_t port, ListenOptions options) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error::invalid("InvalidListenAddress", "not an IP address: '" + host + "'");
  tcp::endpoint ep(addr, port);
  auto l = std::make_shared<Listener>(*contexts_.at(0), std::move(options));
  l->acceptor.open(ep.protocol(), ec);
  if (!ec) l->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) l->acceptor.bind(ep, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error::internal("listen on " + host + ":" + std::to_string(port) + ": " +
                           ec.message());
  return add(std::move(l));
}

Result<tcp::endpoint> Server::adopt(int fd, ListenOptions options) {
  auto l = std::make_shared<Listener>(*contexts_.at(0), std::move(options));
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ::close(fd);
    return Error::internal("adopt: not a socket");
  }
  boost::system::error_code ec;
  l->acceptor.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    return Error::internal("adopt: " + ec.message());
  }
  return add(std::move(l));
}

Result<tcp::endpoint> Server::add(std::shared_ptr<Listener> l) {
  boost::system::error_code ec;
  auto ep = l->acceptor.local_endpoint(ec);
  if (ec) return Error::internal("listener: " + ec.message());
  std::lock_guard lock(mu_);
  if (l->options.name.empty()) l->options.name = "listener-" + std::to_string(++unnamed_);
  if (listeners_.count(l->options.name)) return Error::conflict("ListenerExists", "a listener " + l->options.name + " exists");
  listeners_[l->options.name] = l;
  if (started_) asio::co_spawn(l->acceptor.get_executor(), accept_loop(l), asio::detached);
  return ep;
}

bool Server::close_listener(const std::string& name) {
  std::shared_ptr<Listener> l;
  {
    std::lock_guard lock(mu_);
    auto it = listeners_.find(name);
    if (it == listeners_.end()) return false;
    l = it->second;
    listeners_.erase(it);
  }
  asio::post(l->acceptor.get_executor(), [l] {
    boost::system::error_code ec;
    l->acceptor.close(ec);
  });
  return true;
}

std::vector<std::string> Server::listeners() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, l] : listeners_) out.push_back(name);
  return out;
}

void Server::start() {
  std::lock_guard lock(mu_);
  started_ = true;
  for (auto& [name, l] : listeners_) asio::co_spawn(l->acceptor.get_executor(), accept_loop(l), asio::detached);
}

awaitable<void> Server::accept_loop(std::shared_ptr<Listener> l) {
  for (;;) {
    asio::io_context& target = *contexts_[next_++ % contexts_.size()];
    auto [ec, socket] = co_await l->acceptor.async_accept(target, kTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted || !l->acceptor.is_open()) co_return;
      log::get("http")->warn("accept on {}: {}", l->options.name, ec.message());
      // (out of descriptors, say: do not spin the context that also serves DNS and signals)
      asio::steady_timer pause(l->acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(kTuple);
      continue;
    }
    if (stopping_) co_return;
    socket.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Conn>(socket.get_executor());
    track(conn);
    auto ex = conn->executor;
    asio::co_spawn(ex, serve(conn, std::move(socket), l), asio::detached);
  }
}

void Server::track(const std::shared_ptr<Conn>& c) {
  std::lock_guard lock(mu_);
  conns_.insert(c);
}

void Server::untrack(const std::shared_ptr<Conn>& c) {
  std::lock_guard lock(mu_);
  conns_.erase(c);
}

size_t Server::active() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

Response make_response(unsigned version, bhttp::status status, std::string content_type,
                       std::string body) {
  Response res{status, version};
  res.set(bhttp::field::server, "pier");
  if (!content_type.empty()) res.set(bhttp::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

awaitable<void> Server::serve(std::shared_ptr<Conn> conn, tcp::socket socket, std::shared_ptr<Listener> l) {
  Peer peer;
  peer.listener = l->options.name;
  peer.tls = l->options.tls != nullptr;
  {
    boost::system::error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) {
      peer.address = ep.address().to_string();
      peer.port = ep.port();
    }
    auto local = socket.local_endpoint(ec);
    if (!ec) peer.local_address = local.address().to_string();
  }
  // However this frame goes (an exception, or an io_context destroyed with
  // it inside), nothing points into it any more.
  struct Done {
    std::shared_ptr<Conn> conn;
    ~Done() { conn->lowest = nullptr; }
  } done{conn};
  const Handler& handler = l->options.handler ? l->options.handler : handler_;
  try {
    if (l->options.on_accept) l->options.on_accept(peer);
    if (l->options.tls) {
      TlsStream stream(beast::tcp_stream(std::move(socket)), *l->options.tls);
      conn->lowest = &beast::get_lowest_layer(stream);
      conn->lowest->expires_after(options_.read_timeout);
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
      if (!ec) co_await serve_http(conn, stream, peer, handler);
      if (conn->lowest) {
        // close_notify, so that clients reading to the end see a clean end.
        conn->lowest->expires_after(std::chrono::seconds(2));
        co_await stream.async_shutdown(kTuple);  // (an error just means the peer went first)
        if (conn->lowest) conn->lowest->close();
      }
    } else {
      beast::tcp_stream stream(std::move(socket));
      conn->lowest = &stream;
      co_await serve_http(conn, stream, peer, handler);
      if (conn->lowest) conn->lowest->close();
    }
  } catch (const std::exception& e) {
    log::get("http")->error("connection from {} on {}: {}", peer.address, peer.listener, e.what());
  }
  conn->lowest = nullptr;
  untrack(conn);
}

template <class Stream>
awaitable<void> Server::serve_http(std::shared_ptr<Conn> conn, Stream& stream, const Peer& peer,
                                   const Handler& handler) {
  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
    parser.body_limit(options_.body_limit);

    conn->idle = true;
    if (stopping_) break;
    conn->lowest->expires_after(options_.idle_timeout);
    auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
    conn->idle = false;
    if (ec) {
      if (ec == bhttp::error::body_limit) {
        auto res = make_response(11, bhttp::status::payload_too_large, "text/plain",
                                 "request body too large\n");
        res.keep_alive(false);
        co_await bhttp::async_write(stream, res, kTuple);
      } else if (ec == bhttp::error::header_limit) {
        auto res = make_response(11, bhttp::status::request_header_fields_too_large, "text/plain",
                                 "request header too large\n");
        res.keep_alive(false);
        co_await bhttp::async_write(stream, res, kTuple);
      } else if (ec != bhttp::error::end_of_stream && ec != asio::error::operation_aborted &&
                 ec != beast::error::timeout && ec != asio::error::eof &&
                 ec != asio::error::connection_reset) {
        auto res =
            make_response(11, bhttp::status::bad_request, "text/plain", "malformed request\n");
        res.keep_alive(false);
        co_await bhttp::async_write(stream, res, kTuple);
      }
      break;
    }

    auto content_length = parser.content_length();
    if (content_length && *content_length > options_.body_limit) {
      auto res = make_response(parser.get().version(), bhttp::status::payload_too_large,
                               "text/plain", "request body too large\n");
      res.keep_alive(false);
      co_await bhttp::async_write(stream, res, kTuple);
      break;
    }
    // Expect: 100-continue — say go on only once the headers were acceptable.
    if (str::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, parser.get().version()};
      auto [wec, wn] = co_await bhttp::async_write(stream, cont, kTuple);
      if (wec) break;
    }
    conn->lowest->expires_after(options_.read_timeout);
    auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
    if (bec) {
      if (bec == bhttp::error::body_limit) {
        auto res = make_response(parser.get().version(), bhttp::status::payload_too_large,
                                 "text/plain", "request body too large\n");
        res.keep_alive(false);
        co_await bhttp::async_write(stream, res, kTuple);
      }
      break;
    }

    Request req = parser.release();
    if (upgrade_ && beast::websocket::is_upgrade(req)) {
      Upgrade up;
      try {
        up = upgrade_(req, peer);
      } catch (const std::exception& e) {
        log::get("http")->error("upgrade handler threw: {}", e.what());
        up.refuse = make_response(req.version(), bhttp::status::internal_server_error, "text/plain", "internal error\n");
      }
      if (up.refuse || !up.run) {
        Response res = up.refuse ? std::move(*up.refuse)
                                 : make_response(req.version(), bhttp::status::not_found,
                                                 "text/plain", "no such channel\n");
        res.keep_alive(false);
        co_await bhttp::async_write(stream, res, kTuple);
        break;
      }
      WsOver<Stream> ws(std::move(stream));
      conn->lowest = &beast::get_lowest_layer(ws.ws());
      conn->upgraded = true;
      conn->lowest->expires_never();
      auto [aec] = co_await ws.ws().async_accept(req, kTuple);
      if (!aec) {
        // Long-lived: counted as idle so that a shutdown closes it.
        conn->idle = true;
        try {
          co_await up.run(ws);
        } catch (const std::exception& e) {
          log::get("http")->error("websocket session threw: {}", e.what());
        }
      }
      boost::system::error_code ignored;
      conn->lowest->socket().shutdown(tcp::socket::shutdown_both, ignored);
      conn->lowest->close();
      conn->lowest = nullptr;
      co_return;
    }
    Response res;
    try {
      res = handler(req, peer);
    } catch (const std::exception& e) {
      // Handlers return errors as results; an exception here is a bug. Answer
      // 500 rather than lose the connection, and log it loudly.
      log::get("http")->error("handler threw: {}", e.what());
      res = make_response(req.version(), bhttp::status::internal_server_error, "text/plain",
                          "internal error\n");
    }
    bool keep = req.keep_alive() && res.keep_alive() && !stopping_;
    res.keep_alive(keep);
    conn->lowest->expires_after(options_.read_timeout);
    auto [wec, wn] = co_await bhttp::async_write(stream, res, kTuple);
    if (wec || !keep) break;
  }
  boost::system::error_code ignored;
  conn->lowest->socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void Server::shutdown() {
  stopping_ = true;
  std::lock_guard lock(mu_);
  for (auto& [name, l] : listeners_)
    asio::post(l->acceptor.get_executor(), [l = l] {
      boost::system::error_code ec;
      l->acceptor.close(ec);
    });
  for (auto& c : conns_) {
    if (c->idle || c->upgraded) {
      asio::post(c->executor, [c] { c->cancel(); });
    }
  }
}

void Server::close_all() {
  std::lock_guard lock(mu_);
  for (auto& c : conns_) {
    asio::post(c->executor, [c] { c->cancel(); });
  }
}

}  // namespace pier::http
