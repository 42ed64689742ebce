// IPv4 CIDR blocks as EC2 checks them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pier::svc::ec2 {

struct Cidr {
  uint32_t base = 0;  // host order, host bits zero
  int prefix = 0;

  // "a.b.c.d/n" with the host bits zero (AWS refuses "10.0.0.1/16").
  static std::optional<Cidr> parse(std::string_view s);
  std::string str() const;
  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t(0) << (32 - prefix); }
  uint64_t size() const { return uint64_t(1) << (32 - prefix); }
  uint32_t last() const { return base | ~mask(); }
  bool contains(const Cidr& o) const { return o.prefix >= prefix && (o.base & mask()) == base; }
  bool overlaps(const Cidr& o) const { return contains(o) || o.contains(*this); }
  // The n-th address of the block as a dotted quad.
  std::string address(uint32_t n) const;
};

std::string dotted(uint32_t addr);

}  // namespace pier::svc::ec2
