#include "dns/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "common/log.h"

namespace pier::dns {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using asio::awaitable;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Conn {
  explicit Conn(tcp::socket s) : sock(std::move(s)), timer(sock.get_executor()) {}
  tcp::socket sock;
  asio::steady_timer timer;
  uint64_t timer_gen = 0;  // a wait that completes for an older arming is stale
};

bool gone(const boost::system::error_code& ec) {
  return ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

void log_exception(const char* where, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    log::get("dns")->error("{}: {}", where, x.what());
  } catch (...) {
    log::get("dns")->error("{}: unknown exception", where);
  }
}

}  // namespace

struct Server::State {
  State(asio::io_context& ioc, Lookup fn, Options o)
      : strand(asio::make_strand(ioc)),
        udp_sock(strand),
        acceptor(strand),
        options(o),
        lookup(std::make_shared<Lookup>(std::move(fn))) {}

  asio::strand<asio::io_context::executor_type> strand;
  udp::socket udp_sock;
  tcp::acceptor acceptor;
  Options options;

  // Taken around every Lookup call, and by close() to drop the Lookup: so
  // once close() returns the Lookup is not running on another thread and not
  // called again. Recursive: close() from inside the Lookup.
  std::recursive_mutex lookup_mu;
  std::shared_ptr<Lookup> lookup;

  // The strand's alone.
  bool closed = false;
  std::set<std::shared_ptr<Conn>> conns;
  std::atomic<size_t> conn_count{0};

  std::optional<Answer> call_lookup(const Question& q, const std::string& client) {
    std::lock_guard lock(lookup_mu);
    std::shared_ptr<Lookup> fn = lookup;  // survives a close() from inside the call
    if (!fn || !*fn) return std::nullopt;
    try {
      return (*fn)(q, client);
    } catch (const std::exception& e) {
      log::get("dns")->warn("lookup of {} for {} failed: {}", q.name, client, e.what());
    } catch (...) {
      log::get("dns")->warn("lookup of {} for {} failed", q.name, client);
    }
    Answer a;
    a.rcode = kServFail;
    a.authoritative = false;
    return a;
  }

  // The reply to one message, or nothing (dropped, or the server closed).
  std::optional<std::string> reply(std::string_view wire, const std::string& client, bool over_tcp) {
    ParseError why;
    auto q = parse_query(wire, &why);
    if (!q.ok()) {
      log::get("dns")->debug("{} from {}: {}", over_tcp ? "TCP" : "UDP", client, q.error().message);
      if (!why.answerable()) return std::nullopt;
      return build_error(why);
    }
    Answer a;
    if (q->q.klass != kClassIn && q->q.klass != kClassAny) {
      a.rcode = kRefused;
    } else if (q->q.type == kTypeAxfr || q->q.type == kTypeIxfr) {
      a.rcode = kRefused;  // no zone transfers
    } else if (q->q.type == kTypeOpt) {
      a.rcode = kFormErr;  // a meta type, only valid as a record
    } else {
      auto found = call_lookup(q->q, client);
      if (!found) return std::nullopt;
      a = std::move(*found);
    }
    return build_response(*q, a, over_tcp ? kMaxTcpSize : udp_limit(*q));
  }

  void shutdown() {
    if (closed) return;
    closed = true;
    boost::system::error_code ignored;
    udp_sock.close(ignored);
    acceptor.close(ignored);
    for (const auto& c : conns) {  // close() runs no handlers: conns stays as is
      c->timer.cancel();
      c->sock.close(ignored);
    }
  }

  // The connection's deadline: the idle time between queries, or for one read
  // or write. Closing the socket ends the read or write in progress.
  void arm(const std::shared_ptr<Conn>& c) {
    c->timer.expires_after(options.tcp_idle_timeout);
    c->timer.async_wait([c, gen = ++c->timer_gen](boost::system::error_code ec) {
      if (ec || gen != c->timer_gen) return;
      boost::system::error_code ignored;
      c->sock.close(ignored);
    });
  }
};

namespace {

using State = Server::State;

awaitable<void> serve_udp(std::shared_ptr<State> s) {
  std::vector<char> buf(65536);
  asio::steady_timer pause(s->strand);
  for (;;) {
    udp::endpoint from;
    auto [ec, n] = co_await s->udp_sock.async_receive_from(asio::buffer(buf), from, kTuple);
    if (s->closed || gone(ec)) co_return;
    if (ec) {
      // Nothing to do about it; a short pause keeps a persistent error from spinning.
      log::get("dns")->debug("UDP receive: {}", ec.message());
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(kTuple);
      continue;
    }
    auto out = s->reply(std::string_view(buf.data(), n), from.address().to_string(), false);
    if (!out || s->closed) continue;
    auto [wec, sent] = co_await s->udp_sock.async_send_to(asio::buffer(*out), from, kTuple);
    if (wec && !gone(wec)) log::get("dns")->debug("UDP send to {}: {}", from.address().to_string(), wec.message());
  }
}

awaitable<void> serve_tcp(std::shared_ptr<State> s, std::shared_ptr<Conn> c) {
  struct Untrack {
    State& s;
    std::shared_ptr<Conn> c;
    ~Untrack() {
      boost::system::error_code ignored;
      c->timer.cancel();
      c->sock.close(ignored);
      s.conns.erase(c);
      s.conn_count = s.conns.size();
    }
  } untrack{*s, c};

  std::string peer;
  {
    boost::system::error_code ec;
    auto ep = c->sock.remote_endpoint(ec);
    if (ec) co_return;
    peer = ep.address().to_string();
  }
  std::string msg;
  for (;;) {
    s->arm(c);
    std::array<unsigned char, 2> len{};
    auto [ec, n] = co_await asio::async_read(c->sock, asio::buffer(len), kTuple);
    if (ec || s->closed) co_return;
    msg.assign(static_cast<size_t>(len[0]) << 8 | len[1], '\0');
    if (!msg.empty()) {
      auto [bec, bn] = co_await asio::async_read(c->sock, asio::buffer(msg), kTuple);
      if (bec || s->closed) co_return;
    }
    auto out = s->reply(msg, peer, true);
    if (s->closed) co_return;
    if (!out) continue;
    s->arm(c);
    std::array<unsigned char, 2> prefix{static_cast<unsigned char>(out->size() >> 8),
                                        static_cast<unsigned char>(out->size() & 0xff)};
    std::array<asio::const_buffer, 2> bufs{asio::buffer(prefix), asio::buffer(*out)};
    auto [wec, wn] = co_await asio::async_write(c->sock, bufs, kTuple);
    if (wec) co_return;
  }
}

awaitable<void> accept_tcp(std::shared_ptr<State> s) {
  asio::steady_timer pause(s->strand);
  for (;;) {
    auto [ec, sock] = co_await s->acceptor.async_accept(kTuple);
    if (s->closed || gone(ec)) co_return;
    if (ec) {
      // EMFILE and the like: wait a little rather than spin.
      log::get("dns")->warn("TCP accept: {}", ec.message());
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(kTuple);
      continue;
    }
    if (s->conns.size() >= s->options.max_tcp_connections) {
      boost::system::error_code ignored;
      sock.close(ignored);
      continue;
    }
    // Pipelined answers must not wait for the client's delayed ACK (Nagle).
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    auto c = std::make_shared<Conn>(std::move(sock));
    s->conns.insert(c);
    s->conn_count = s->conns.size();
    asio::co_spawn(s->strand, serve_tcp(s, c), [](std::exception_ptr e) { log_exception("DNS TCP connection", e); });
  }
}

// Checks fd is a bound socket of the given type (listening, for TCP); its family.
Result<int> socket_family(int fd, int type, const char* what) {
  if (fd < 0) return Error::invalid("InvalidSocket", std::string("no ") + what + " socket");
  int got = 0;
  socklen_t len = sizeof(got);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &got, &len) != 0)
    return Error::invalid("InvalidSocket", std::string(what) + " descriptor is not a socket");
  if (got != type) return Error::invalid("InvalidSocket", std::string(what) + " descriptor is the wrong kind of socket");
  if (type == SOCK_STREAM) {
    int listening = 0;
    len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
      return Error::invalid("InvalidSocket", std::string(what) + " socket is not listening");
  }
  sockaddr_storage ss{};
  len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return Error::invalid("InvalidSocket", std::string(what) + " socket has no address");
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
    return Error::invalid("InvalidSocket", std::string(what) + " socket is not IPv4 or IPv6");
  uint16_t port = ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&ss)->sin_port
                                          : reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port;
  if (port == 0) return Error::invalid("InvalidSocket", std::string(what) + " socket is not bound");
  return static_cast<int>(ss.ss_family);
}

}  // namespace

Server::Server(std::shared_ptr<State> state) : state_(std::move(state)) {
  boost::system::error_code ec;
  udp_port_ = state_->udp_sock.local_endpoint(ec).port();
  tcp_port_ = state_->acceptor.local_endpoint(ec).port();
  asio::co_spawn(state_->strand, serve_udp(state_), [](std::exception_ptr e) { log_exception("DNS UDP", e); });
  asio::co_spawn(state_->strand, accept_tcp(state_), [](std::exception_ptr e) { log_exception("DNS TCP accept", e); });
}

Server::~Server() { close(); }

Result<std::unique_ptr<Server>> Server::adopt(asio::io_context& ioc, int udp_fd, int tcp_listen_fd, Lookup lookup,
                                              Options options) {
  auto close_both = [&] {
    if (udp_fd >= 0) ::close(udp_fd);
    if (tcp_listen_fd >= 0 && tcp_listen_fd != udp_fd) ::close(tcp_listen_fd);
  };
  auto ufam = socket_family(udp_fd, SOCK_DGRAM, "UDP");
  auto tfam = ufam.ok() ? socket_family(tcp_listen_fd, SOCK_STREAM, "TCP") : Result<int>(ufam.error());
  if (!tfam.ok()) {
    close_both();
    return tfam.error();
  }
  for (int fd : {udp_fd, tcp_listen_fd}) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);

  auto st = std::make_shared<State>(ioc, std::move(lookup), options);
  boost::system::error_code ec;
  st->udp_sock.assign(*ufam == AF_INET ? udp::v4() : udp::v6(), udp_fd, ec);
  if (ec) {
    close_both();
    return Error::internal("adopting the UDP socket: " + ec.message());
  }
  st->acceptor.assign(*tfam == AF_INET ? tcp::v4() : tcp::v6(), tcp_listen_fd, ec);
  if (ec) {
    ::close(tcp_listen_fd);  // the UDP one is the State's now
    return Error::internal("adopting the TCP socket: " + ec.message());
  }
  return std::unique_ptr<Server>(new Server(std::move(st)));
}

Result<std::unique_ptr<Server>> Server::bind(asio::io_context& ioc, const std::string& address, uint16_t port,
                                             Lookup lookup, Options options) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return Error::invalid("InvalidAddress", "not an IP address: '" + address + "'");
  auto st = std::make_shared<State>(ioc, std::move(lookup), options);
  auto where = [&] { return address + ":" + std::to_string(port); };
  // With port 0, TCP takes the port UDP was given; should that be taken, again.
  for (int attempt = 0;; ++attempt) {
    boost::system::error_code ignored;
    st->udp_sock.close(ignored);
    st->acceptor.close(ignored);
    udp::endpoint uep(addr, port);
    st->udp_sock.open(uep.protocol(), ec);
    if (!ec) st->udp_sock.bind(uep, ec);
    if (ec) return Error::internal("DNS server: UDP bind on " + where() + ": " + ec.message());
    tcp::endpoint tep(addr, st->udp_sock.local_endpoint().port());
    st->acceptor.open(tep.protocol(), ec);
    if (!ec) st->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) st->acceptor.bind(tep, ec);
    if (ec == asio::error::address_in_use && port == 0 && attempt < 20) continue;
    if (!ec) st->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Error::internal("DNS server: TCP listen on " + where() + ": " + ec.message());
    break;
  }
  return std::unique_ptr<Server>(new Server(std::move(st)));
}

void Server::close() {
  if (!state_) return;
  {
    std::lock_guard lock(state_->lookup_mu);  // waits for a Lookup running on another thread
    state_->lookup.reset();
  }
  asio::dispatch(state_->strand, [s = state_] { s->shutdown(); });
}

size_t Server::tcp_connections() const { return state_->conn_count.load(); }

}  // namespace pier::dns
