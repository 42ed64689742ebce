// ARNs: arn:partition:service:region:account:resource
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pier::aws {

struct Arn {
  std::string partition = "aws";
  std::string service;
  std::string region;
  std::string account;
  std::string resource;

  std::string str() const;
  static std::optional<Arn> parse(std::string_view s);
};

std::string make_arn(std::string_view service, std::string_view region, std::string_view account,
                     std::string_view resource);

}  // namespace pier::aws
