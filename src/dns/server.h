// pier::dns::Server: answers DNS queries on one address, over UDP and over TCP
// (RFC 7766: two-byte length framing, several queries per connection, answered
// in order), from a Lookup. No recursion, no forwarding, no zone transfers.
//
// pierd makes the sockets inside a VPC's network namespace and hands them over
// (adopt); tests let the server make its own (bind). Everything runs on one
// strand of the given io_context, which may have any number of threads, so the
// Lookup is never called concurrently for one server; a slow Lookup holds up
// that server's other queries, nothing else.
//
// Malformed queries whose header is readable get FORMERR (NOTIMP for an opcode
// other than QUERY); packets without a readable header, and responses, are
// dropped. Classes other than IN and ANY get REFUSED, AXFR and IXFR get
// REFUSED, without asking the Lookup. A Lookup that throws gives SERVFAIL.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"
#include "dns/message.h"

namespace pier::dns {

class Server {
 public:
  // The question (name lower-case, see Question) and the client's IP address
  // as text ("10.0.1.5"). Called on the io_context, on the server's strand.
  using Lookup = std::function<Answer(const Question& q, const std::string& client_address)>;

  struct Options {
    std::chrono::milliseconds tcp_idle_timeout{10000};  // between queries, and for a read or write
    size_t max_tcp_connections = 64;                    // more are accepted and closed at once
  };

  // Serves from sockets already bound (and, for TCP, listening): udp_fd a
  // SOCK_DGRAM socket, tcp_listen_fd a listening SOCK_STREAM socket, IPv4 or
  // IPv6. Takes ownership of both descriptors, on failure too (they are closed).
  static Result<std::unique_ptr<Server>> adopt(boost::asio::io_context& ioc, int udp_fd, int tcp_listen_fd,
                                               Lookup lookup, Options options);
  static Result<std::unique_ptr<Server>> adopt(boost::asio::io_context& ioc, int udp_fd, int tcp_listen_fd,
                                               Lookup lookup) {
    return adopt(ioc, udp_fd, tcp_listen_fd, std::move(lookup), Options{});
  }

  // Makes its own sockets on address:port (tests). Port 0 picks a free port,
  // the same one for UDP and TCP (clients such as c-ares use one port for both).
  static Result<std::unique_ptr<Server>> bind(boost::asio::io_context& ioc, const std::string& address,
                                              uint16_t port, Lookup lookup, Options options);
  static Result<std::unique_ptr<Server>> bind(boost::asio::io_context& ioc, const std::string& address,
                                              uint16_t port, Lookup lookup) {
    return bind(ioc, address, port, std::move(lookup), Options{});
  }

  ~Server();  // close()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops serving: from any thread, any number of times. When it returns the
  // Lookup will not be called again and has been released (a call in progress
  // on another thread is waited for; close() from inside the Lookup is fine).
  // The sockets and TCP connections are closed on the strand: at once when
  // called there, else as soon as the io_context runs that.
  void close();

  // The bound ports (fixed at creation; safe from any thread).
  uint16_t udp_port() const { return udp_port_; }
  uint16_t tcp_port() const { return tcp_port_; }
  // Open TCP connections (approximate when read off the strand).
  size_t tcp_connections() const;

  struct State;  // the implementation's (public only so server.cc's helpers can name it)

 private:
  explicit Server(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
  uint16_t udp_port_ = 0;
  uint16_t tcp_port_ = 0;
};

}  // namespace pier::dns
