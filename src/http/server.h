// The HTTP/1.1 server every AWS API arrives through (Boost.Beast).
//
// One coroutine per connection. Connections are spread round-robin over
// several io_contexts, each run by one thread, so that a connection never
// moves between threads (no strand hand-offs, no shared scheduler lock). Keep-alive, chunked request bodies (Beast
// decodes them), `Expect: 100-continue`, header and body size limits, idle
// timeouts, and a graceful shutdown: stop accepting, finish the request in
// flight, close idle connections, then a hard stop at the deadline.
// The handler is called synchronously on the connection's strand and must be
// thread-safe.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/error.h"

namespace pier::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

using Request = beast::http::request<beast::http::string_body>;
using Response = beast::http::response<beast::http::string_body>;

struct Peer {
  std::string address;
  uint16_t port = 0;
};

using Handler = std::function<Response(Request& req, const Peer& peer)>;

// WebSocket upgrades (the Session Manager's control and data channels). The
// handler looks at the upgrade request: it refuses with an HTTP response, or
// accepts with a coroutine that owns the WebSocket until it returns.
using WsStream = beast::websocket::stream<beast::tcp_stream>;
struct Upgrade {
  std::optional<Response> refuse;
  std::function<asio::awaitable<void>(WsStream& ws)> run;
};
using UpgradeHandler = std::function<Upgrade(Request& req, const Peer& peer)>;

struct Options {
  size_t header_limit = 64 * 1024;
  size_t body_limit = 32 * 1024 * 1024;
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds read_timeout{30};
};

class Server {
 public:
  // contexts[0] accepts; every context serves connections.
  Server(std::vector<asio::io_context*> contexts, Handler handler, Options options = {});
  ~Server();

  // Binds and listens; returns the bound endpoint (the real port when port is 0).
  Result<tcp::endpoint> listen(const std::string& host, uint16_t port);
  void start();
  // Call before start(). Without one, upgrade requests go to the plain handler.
  void set_upgrade_handler(UpgradeHandler handler) { upgrade_ = std::move(handler); }
  // Stops accepting and closes idle connections; connections in a request
  // finish it and then close. Returns at once; see active().
  void shutdown();
  // Closes every connection now.
  void close_all();
  size_t active() const;

 private:
  struct Conn;
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<Conn> conn);
  void track(const std::shared_ptr<Conn>& c);
  void untrack(const std::shared_ptr<Conn>& c);

  std::vector<asio::io_context*> contexts_;
  size_t next_ = 0;
  Handler handler_;
  UpgradeHandler upgrade_;
  Options options_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::set<std::shared_ptr<Conn>> conns_;
};

// A response with the given status, content type and body.
Response make_response(unsigned version, beast::http::status status, std::string content_type,
                       std::string body);

}  // namespace pier::http
