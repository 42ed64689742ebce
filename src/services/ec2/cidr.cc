#include "services/ec2/cidr.h"

#include <fmt/format.h>

#include <charconv>

namespace pier::svc::ec2 {

std::optional<Cidr> Cidr::parse(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  uint32_t addr = 0;
  std::string_view a = s.substr(0, slash);
  for (int i = 0; i < 4; ++i) {
    auto dot = i < 3 ? a.find('.') : a.size();
    if (dot == std::string_view::npos || dot == 0 || dot > 3) return std::nullopt;
    if (dot > 1 && a[0] == '0') return std::nullopt;  // "010" is not an octet AWS accepts
    unsigned v = 0;
    auto [p, ec] = std::from_chars(a.data(), a.data() + dot, v);
    if (ec != std::errc() || p != a.data() + dot || v > 255) return std::nullopt;
    addr = addr << 8 | v;
    a.remove_prefix(std::min(a.size(), dot + (i < 3 ? 1 : 0)));
  }
  if (!a.empty()) return std::nullopt;
  std::string_view n = s.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), prefix);
  if (ec != std::errc() || p != n.data() + n.size() || prefix < 0 || prefix > 32) return std::nullopt;
  Cidr c{addr, prefix};
  if ((addr & c.mask()) != addr) return std::nullopt;
  return c;
}

std::string dotted(uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

std::string Cidr::str() const { return fmt::format("{}/{}", dotted(base), prefix); }
std::string Cidr::address(uint32_t n) const { return dotted(base + n); }

}  // namespace pier::svc::ec2
