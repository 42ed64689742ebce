#include "aws/arn.h"

#include <fmt/format.h>

namespace pier::aws {

std::string Arn::str() const {
  return fmt::format("arn:{}:{}:{}:{}:{}", partition, service, region, account, resource);
}

std::optional<Arn> Arn::parse(std::string_view s) {
  if (!s.starts_with("arn:")) return std::nullopt;
  Arn a;
  std::string_view rest = s.substr(4);
  std::string* parts[] = {&a.partition, &a.service, &a.region, &a.account};
  for (auto* p : parts) {
    auto c = rest.find(':');
    if (c == std::string_view::npos) return std::nullopt;
    *p = std::string(rest.substr(0, c));
    rest.remove_prefix(c + 1);
  }
  a.resource = std::string(rest);
  if (a.partition.empty() || a.service.empty() || a.resource.empty()) return std::nullopt;
  return a;
}

std::string make_arn(std::string_view service, std::string_view region, std::string_view account,
                     std::string_view resource) {
  return fmt::format("arn:aws:{}:{}:{}:{}", service, region, account, resource);
}

}  // namespace pier::aws
