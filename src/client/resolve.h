// pier::client::resolve: host names to TCP endpoints without glibc's resolver.
// pier-exec-agent is linked statically and runs inside arbitrary container
// images, where getaddrinfo (NSS) is unusable; names go to c-ares instead,
// driven by the caller's io_context (nothing here ever blocks on the network).
//
// Order, as glibc's "hosts: files dns": a literal address is returned as is;
// then the hosts file; then DNS with resolv.conf's nameservers, search list,
// ndots and options. IPv4 addresses come first, then IPv6.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pier::client {

struct ResolverOptions {
  // "ip:port,ip:port" ([v6]:port for IPv6): these nameservers instead of
  // resolv.conf's (tests); empty: resolv.conf's.
  std::string servers;
  // Its nameserver, search, domain and options lines are honoured; a missing
  // file means c-ares's defaults (127.0.0.1, no search list).
  std::string resolv_conf = "/etc/resolv.conf";
  // Names found there win over DNS; empty: no hosts file.
  std::string hosts_file = "/etc/hosts";
  // The whole lookup, all search domains and retries included.
  std::chrono::milliseconds timeout{5000};
};

// Endpoints for host (a name, an IPv4 or IPv6 literal, "[v6]" too) and port.
// Errors name the host: kNotFound when the name does not exist or has no
// address, kUnavailable when no nameserver answered in time (or they failed),
// kInvalid for an empty or malformed name.
boost::asio::awaitable<Result<std::vector<boost::asio::ip::tcp::endpoint>>> resolve(
    std::string host, uint16_t port, ResolverOptions opts = {});

// The address if host is a literal IPv4 or IPv6 address ("[::1]" too).
std::optional<boost::asio::ip::address> parse_literal(std::string_view host);

// The addresses a hosts(5) file gives name (case-insensitive, canonical names
// and aliases alike), in file order; empty when it has none or cannot be read.
std::vector<boost::asio::ip::address> hosts_lookup(const std::string& hosts_file,
                                                   std::string_view name);

}  // namespace pier::client
