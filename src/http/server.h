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
//
// A server has any number of listeners, each plain or TLS, each with a name
// the handler sees in Peer::listener: pierd's own endpoint, and the sockets
// it answers on inside VPCs and the simulated internet (made in other network
// namespaces and handed over with adopt()).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <tuple>

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
  std::string listener;       // the name of the listener the connection came in on
  std::string local_address;  // the address it was made to
  bool tls = false;
};

using Handler = std::function<Response(Request& req, const Peer& peer)>;

// WebSocket upgrades (the Session Manager's control and data channels). The
// handler looks at the upgrade request: it refuses with an HTTP response, or
// accepts with a coroutine that owns the WebSocket until it returns.
// The WebSocket as upgrade handlers see it, over TCP or TLS alike. Every
// call runs on executor().
class WsStream {
 public:
  virtual ~WsStream() = default;
  virtual asio::awaitable<std::tuple<boost::system::error_code, size_t>> read(beast::flat_buffer& buf) = 0;
  virtual asio::awaitable<boost::system::error_code> write(asio::const_buffer data, bool binary) = 0;
  virtual asio::awaitable<boost::system::error_code> ping() = 0;
  // Closes the socket at once: pending reads and writes fail.
  virtual void close_socket() = 0;
  virtual bool got_binary() const = 0;
  virtual void set_timeouts(const beast::websocket::stream_base::timeout& t, size_t read_message_max) = 0;
  // Called, during a read, for each ping, pong and close frame the peer
  // sends (empty: none).
  virtual void on_control(std::function<void(beast::websocket::frame_type)> f) = 0;
  virtual asio::any_io_executor get_executor() = 0;
};
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

struct ListenOptions {
  std::string name;                          // Peer::listener; unique among the server's listeners
  std::shared_ptr<asio::ssl::context> tls;   // TLS when set
  std::function<void(const Peer&)> on_accept;  // each connection, as it comes (on its thread)
  Handler handler;                             // this listener's requests, instead of the server's handler
};

class Server {
 public:
  // contexts[0] accepts; every context serves connections.
  Server(std::vector<asio::io_context*> contexts, Handler handler, Options options = {});
  ~Server();

  // Binds and listens; returns the bound endpoint (the real port when port is 0).
  Result<tcp::endpoint> listen(const std::string& host, uint16_t port, ListenOptions options = {});
  // Takes over a socket that is already listening (made in another network
  // namespace); the server owns the descriptor from here on, also on failure.
  Result<tcp::endpoint> adopt(int listening_fd, ListenOptions options);
  // Stops one listener; its open connections go on. False when unknown.
  bool close_listener(const std::string& name);
  std::vector<std::string> listeners() const;
  // Starts accepting on every listener; listeners added later start at once.
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
  struct Listener;
  Result<tcp::endpoint> add(std::shared_ptr<Listener> l);
  asio::awaitable<void> accept_loop(std::shared_ptr<Listener> l);
  asio::awaitable<void> serve(std::shared_ptr<Conn> conn, tcp::socket socket, std::shared_ptr<Listener> l);
  template <class Stream>
  asio::awaitable<void> serve_http(std::shared_ptr<Conn> conn, Stream& stream, const Peer& peer,
                                   const Handler& handler);
  void track(const std::shared_ptr<Conn>& c);
  void untrack(const std::shared_ptr<Conn>& c);

  std::vector<asio::io_context*> contexts_;
  size_t next_ = 0;
  Handler handler_;
  UpgradeHandler upgrade_;
  Options options_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards listeners_, started_, conns_
  std::map<std::string, std::shared_ptr<Listener>> listeners_;
  bool started_ = false;
  int unnamed_ = 0;
  std::set<std::shared_ptr<Conn>> conns_;
};

// A response with the given status, content type and body.
Response make_response(unsigned version, beast::http::status status, std::string content_type,
                       std::string body);

}  // namespace pier::http
