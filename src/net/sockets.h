// Sockets in other network namespaces: pierd answers inside VPCs (the
// resolver, the endpoints, 169.254.170.2) and in the simulated internet from
// its own process. A socket belongs to the namespace it was made in, for
// good; so a short-lived thread enters the namespace, makes and binds the
// socket, and hands back the descriptor. Nothing else of pierd ever runs in
// another namespace.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace pier::net {

enum class SocketKind { kTcpListen, kUdp };

// A bound socket (listening, for TCP) on address:port in netns (empty:
// pierd's own), close-on-exec and non-blocking. The caller owns the fd.
Result<int> bound_socket(const std::string& netns, SocketKind kind, const std::string& address, uint16_t port);

}  // namespace pier::net
