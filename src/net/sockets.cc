#include "net/sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace pier::net {

namespace {

Result<int> make_socket(SocketKind kind, const std::string& address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1)
    return Error::invalid("InvalidAddress", "not an IPv4 address: " + address);
  int type = (kind == SocketKind::kUdp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK;
  int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return Error::internal(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // The address may be on its way (an ENI being wired): bind anyway. And it
  // may be one that is local only to some routing tables (a gateway
  // endpoint's service address in a VPC router): answering from it needs
  // IP_TRANSPARENT, as the kernel checks a reply's source otherwise.
  ::setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      (kind == SocketKind::kTcpListen && ::listen(fd, SOMAXCONN) != 0)) {
    int e = errno;
    ::close(fd);
    return Error::internal("bind " + address + ":" + std::to_string(port) + ": " + std::strerror(e));
  }
  return fd;
}

}  // namespace

Result<int> bound_socket(const std::string& netns, SocketKind kind, const std::string& address, uint16_t port) {
  if (netns.empty()) return make_socket(kind, address, port);
  if (netns.find('/') != std::string::npos) return Error::invalid("InvalidNamespace", "bad namespace name: " + netns);
  Result<int> out = Error::internal("not run");
  // setns() changes the calling thread only; this thread ends right after.
  std::thread t([&] {
    int ns = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      out = Error::not_found("NoNamespace", "no namespace " + netns + ": " + std::strerror(errno));
      return;
    }
    if (::setns(ns, CLONE_NEWNET) != 0) {
      out = Error::internal("setns " + netns + ": " + std::strerror(errno));
      ::close(ns);
      return;
    }
    ::close(ns);
    out = make_socket(kind, address, port);
  });
  t.join();
  return out;
}

}  // namespace pier::net
