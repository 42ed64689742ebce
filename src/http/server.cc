#include "http/server.h"

#include <boost/asio/as_tuple.hpp>

#include "common/log.h"
#include "common/strings.h"

namespace pier::http {

namespace bhttp = beast::http;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

struct Server::Conn {
  explicit Conn(tcp::socket s) : executor(s.get_executor()), stream(std::move(s)) {}
  asio::any_io_executor executor;  // kept apart: the stream is moved into ws on upgrade
  beast::tcp_stream stream;
  std::optional<WsStream> ws;  // engaged after an upgrade; owns the socket then
  std::atomic<bool> idle{true};
  std::atomic<bool> upgraded{false};

  // Runs on the connection's executor. A WebSocket is closed outright (its
  // session may be between operations, where a cancel would be lost).
  void cancel() {
    if (upgraded) {
      boost::system::error_code ignored;
      beast::get_lowest_layer(*ws).socket().close(ignored);
    } else {
      stream.cancel();
    }
  }
};

Server::Server(std::vector<asio::io_context*> contexts, Handler handler, Options options)
    : contexts_(std::move(contexts)),
      handler_(std::move(handler)),
      options_(options),
      acceptor_(*contexts_.at(0)) {}

Server::~Server() = default;

Result<tcp::endpoint> Server::listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error::invalid("InvalidListenAddress", "not an IP address: '" + host + "'");
  tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error::internal("listen on " + host + ":" + std::to_string(port) + ": " +
                           ec.message());
  return acceptor_.local_endpoint();
}

void Server::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

awaitable<void> Server::accept_loop() {
  for (;;) {
    asio::io_context& target = *contexts_[next_++ % contexts_.size()];
    auto [ec, socket] = co_await acceptor_.async_accept(target, kTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      log::get("http")->warn("accept: {}", ec.message());
      continue;
    }
    if (stopping_) co_return;
    socket.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Conn>(std::move(socket));
    track(conn);
    auto ex = conn->executor;
    asio::co_spawn(ex, serve(conn), asio::detached);
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

awaitable<void> Server::serve(std::shared_ptr<Conn> conn) {
  beast::flat_buffer buffer;
  Peer peer;
  {
    boost::system::error_code ec;
    auto ep = conn->stream.socket().remote_endpoint(ec);
    if (!ec) {
      peer.address = ep.address().to_string();
      peer.port = ep.port();
    }
  }
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
    parser.body_limit(options_.body_limit);

    conn->idle = true;
    if (stopping_) break;
    conn->stream.expires_after(options_.idle_timeout);
    auto [ec, n] = co_await bhttp::async_read_header(conn->stream, buffer, parser, kTuple);
    conn->idle = false;
    if (ec) {
      if (ec == bhttp::error::body_limit) {
        auto res = make_response(11, bhttp::status::payload_too_large, "text/plain",
                                 "request body too large\n");
        res.keep_alive(false);
        co_await bhttp::async_write(conn->stream, res, kTuple);
      } else if (ec == bhttp::error::header_limit) {
        auto res = make_response(11, bhttp::status::request_header_fields_too_large, "text/plain",
                                 "request header too large\n");
        res.keep_alive(false);
        co_await bhttp::async_write(conn->stream, res, kTuple);
      } else if (ec != bhttp::error::end_of_stream && ec != asio::error::operation_aborted &&
                 ec != beast::error::timeout && ec != asio::error::eof &&
                 ec != asio::error::connection_reset) {
        auto res =
            make_response(11, bhttp::status::bad_request, "text/plain", "malformed request\n");
        res.keep_alive(false);
        co_await bhttp::async_write(conn->stream, res, kTuple);
      }
      break;
    }

    auto content_length = parser.content_length();
    if (content_length && *content_length > options_.body_limit) {
      auto res = make_response(parser.get().version(), bhttp::status::payload_too_large,
                               "text/plain", "request body too large\n");
      res.keep_alive(false);
      co_await bhttp::async_write(conn->stream, res, kTuple);
      break;
    }
    // Expect: 100-continue — say go on only once the headers were acceptable.
    if (str::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, parser.get().version()};
      auto [wec, wn] = co_await bhttp::async_write(conn->stream, cont, kTuple);
      if (wec) break;
    }
    conn->stream.expires_after(options_.read_timeout);
    auto [bec, bn] = co_await bhttp::async_read(conn->stream, buffer, parser, kTuple);
    if (bec) {
      if (bec == bhttp::error::body_limit) {
        auto res = make_response(parser.get().version(), bhttp::status::payload_too_large,
                                 "text/plain", "request body too large\n");
        res.keep_alive(false);
        co_await bhttp::async_write(conn->stream, res, kTuple);
      }
      break;
    }

    Request req = parser.release();
    if (upgrade_ && beast::websocket::is_upgrade(req)) {
      Upgrade up = upgrade_(req, peer);
      if (up.refuse || !up.run) {
        Response res = up.refuse ? std::move(*up.refuse)
                                 : make_response(req.version(), bhttp::status::not_found,
                                                 "text/plain", "no such channel\n");
        res.keep_alive(false);
        co_await bhttp::async_write(conn->stream, res, kTuple);
        break;
      }
      conn->ws.emplace(std::move(conn->stream));
      conn->upgraded = true;
      beast::get_lowest_layer(*conn->ws).expires_never();
      auto [aec] = co_await conn->ws->async_accept(req, kTuple);
      if (!aec) {
        // Long-lived: counted as idle so that a shutdown closes it.
        conn->idle = true;
        try {
          co_await up.run(*conn->ws);
        } catch (const std::exception& e) {
          log::get("http")->error("websocket session threw: {}", e.what());
        }
      }
      boost::system::error_code ignored;
      beast::get_lowest_layer(*conn->ws).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(*conn->ws).close();
      untrack(conn);
      co_return;
    }
    Response res;
    try {
      res = handler_(req, peer);
    } catch (const std::exception& e) {
      // Handlers return errors as results; an exception here is a bug. Answer
      // 500 rather than lose the connection, and log it loudly.
      log::get("http")->error("handler threw: {}", e.what());
      res = make_response(req.version(), bhttp::status::internal_server_error, "text/plain",
                          "internal error\n");
    }
    bool keep = req.keep_alive() && res.keep_alive() && !stopping_;
    res.keep_alive(keep);
    conn->stream.expires_after(options_.read_timeout);
    auto [wec, wn] = co_await bhttp::async_write(conn->stream, res, kTuple);
    if (wec || !keep) break;
  }
  boost::system::error_code ignored;
  conn->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  conn->stream.close();
  untrack(conn);
}

void Server::shutdown() {
  stopping_ = true;
  asio::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
  std::lock_guard lock(mu_);
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
