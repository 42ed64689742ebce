#include "aws/endpoints.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/crypto.h"
#include "common/strings.h"

namespace pier::aws {

namespace {

// Regions DescribeRegions lists get octets of their own, in this order; any
// other region a client names gets one from a hash, 128 and up.
constexpr std::string_view kRegions[] = {"us-east-1",      "us-east-2",      "us-west-1",
                                         "us-west-2",      "eu-west-1",      "eu-central-1",
                                         "ap-northeast-1", "ap-southeast-1", "ap-southeast-2"};

// Services whose private DNS name covers every name below it (an account's
// registry, a bucket): *.dkr.ecr…, *.s3….
bool takes_subdomains(const EndpointService& s) { return s.name == "ecr.dkr" || s.name == "s3"; }
// Services whose hosts are numbered: ecs-a-1.us-east-1.amazonaws.com, ….
bool numbered(const EndpointService& s) { return s.name == "ecs-agent" || s.name == "ecs-telemetry"; }

std::vector<EndpointService> make_catalog() {
  struct Row {
    const char* name;
    const char* label;
    bool interface, gateway;
  };
  // Append only: a service's position is its address.
  static const Row rows[] = {
      {"ssm", "ssm", true, false},
      {"ssmmessages", "ssmmessages", true, false},
      {"ec2messages", "ec2messages", true, false},
      {"ecr.api", "api.ecr", true, false},
      {"ecr.dkr", "dkr.ecr", true, false},
      {"logs", "logs", true, false},
      {"s3", "s3", true, true},
      {"sts", "sts", true, false},
      {"secretsmanager", "secretsmanager", true, false},
      {"ecs", "ecs", true, false},
      {"ecs-agent", "ecs-a", true, false},
      {"ecs-telemetry", "ecs-t", true, false},
      {"kms", "kms", true, false},
      {"lambda", "lambda", true, false},
      {"cloudformation", "cloudformation", true, false},
      {"codebuild", "codebuild", true, false},
      {"ec2", "ec2", true, false},
      {"monitoring", "monitoring", true, false},
      {"events", "events", true, false},
      {"sqs", "sqs", true, false},
      {"sns", "sns", true, false},
      {"dynamodb", "dynamodb", false, true},
      {"elasticloadbalancing", "elasticloadbalancing", true, false},
      {"iam", "iam", false, false},  // global (iam.amazonaws.com); no endpoint service
  };
  std::vector<EndpointService> out;
  int i = 0;
  for (const auto& r : rows) out.push_back(EndpointService{r.name, r.label, r.interface, r.gateway, i++});
  return out;
}

bool looks_like_region(std::string_view s) {
  return s.size() >= 6 && s.find('-') != std::string_view::npos && std::isdigit(static_cast<unsigned char>(s.back()));
}

std::string lower_trimmed(std::string_view name) {
  std::string n = str::lower(name);
  if (!n.empty() && n.back() == '.') n.pop_back();
  return n;
}

}  // namespace

std::string EndpointService::service_name(std::string_view region) const {
  return fmt::format("com.amazonaws.{}.{}", region, name);
}

std::vector<std::string> EndpointService::private_dns_names(std::string_view region) const {
  if (takes_subdomains(*this)) {
    if (name == "s3") return {fmt::format("s3.{}.amazonaws.com", region), fmt::format("*.s3.{}.amazonaws.com", region)};
    return {fmt::format("*.{}.{}.amazonaws.com", dns_label, region)};
  }
  if (numbered(*this)) return {fmt::format("{}-*.{}.amazonaws.com", dns_label, region)};
  return {fmt::format("{}.{}.amazonaws.com", dns_label, region)};
}

std::string EndpointService::public_address(std::string_view region) const {
  return fmt::format("198.18.{}.{}", region_octet(region), 10 + index);
}

std::string EndpointService::endpoint_dns_name(std::string_view endpoint_id, std::string_view suffix,
                                               std::string_view region, std::string_view zone) const {
  if (zone.empty()) return fmt::format("{}-{}.{}.{}.vpce.amazonaws.com", endpoint_id, suffix, dns_label, region);
  return fmt::format("{}-{}-{}.{}.{}.vpce.amazonaws.com", endpoint_id, suffix, zone, dns_label, region);
}

const std::vector<EndpointService>& endpoint_services() {
  static const std::vector<EndpointService> catalog = make_catalog();
  return catalog;
}

const EndpointService* find_endpoint_service(std::string_view service_name, std::string_view region) {
  std::string prefix = fmt::format("com.amazonaws.{}.", region);
  if (!service_name.starts_with(prefix)) return nullptr;
  auto rest = service_name.substr(prefix.size());
  for (const auto& s : endpoint_services())
    if (s.name == rest) return &s;
  return nullptr;
}

std::vector<std::string> known_regions() { return {std::begin(kRegions), std::end(kRegions)}; }

int region_octet(std::string_view region) {
  for (size_t i = 0; i < std::size(kRegions); ++i)
    if (kRegions[i] == region) return static_cast<int>(i);
  auto h = crypto::sha256(region);
  return 128 + static_cast<unsigned char>(h[0]) % 128;
}

bool dns_name_matches(std::string_view pattern, std::string_view name) {
  if (pattern.starts_with("*.")) {
    auto base = pattern.substr(1);  // ".x.y"
    return name.size() > base.size() && name.ends_with(base);
  }
  return pattern == name;
}

std::optional<NameMatch> match_service_name(std::string_view raw) {
  std::string name = lower_trimmed(raw);
  constexpr std::string_view kSuffix = ".amazonaws.com";
  if (!name.ends_with(kSuffix)) return std::nullopt;
  std::string_view head(name.data(), name.size() - kSuffix.size());
  std::string region;
  std::string_view prefix;
  auto dot = head.rfind('.');
  std::string_view last = dot == std::string_view::npos ? head : head.substr(dot + 1);
  if (looks_like_region(last) && dot != std::string_view::npos) {
    region = std::string(last);
    prefix = head.substr(0, dot);
  } else if (head == "s3" || head.ends_with(".s3") || head == "sts" || head == "iam") {
    // The global names — s3.amazonaws.com (and buckets under it),
    // sts.amazonaws.com, iam.amazonaws.com — are us-east-1's.
    region = "us-east-1";
    prefix = head;
  } else {
    return std::nullopt;
  }
  for (const auto& s : endpoint_services()) {
    bool numbered_host = numbered(s) && prefix.starts_with(s.dns_label + "-") && prefix.size() > s.dns_label.size() + 1 &&
                         prefix.substr(s.dns_label.size() + 1).find_first_not_of("0123456789") == std::string_view::npos;
    if (prefix == s.dns_label || numbered_host || (s.name == "ecr.api" && prefix == "ecr") ||
        (takes_subdomains(s) && prefix.ends_with("." + s.dns_label)))
      return NameMatch{&s, region};
  }
  return std::nullopt;
}

std::optional<std::string> match_endpoint_dns_name(std::string_view raw) {
  std::string name = lower_trimmed(raw);
  if (!name.starts_with("vpce-") || !name.ends_with(".vpce.amazonaws.com")) return std::nullopt;
  auto first = name.substr(0, name.find('.'));  // vpce-<hex>-<suffix>[-<zone>]
  auto dash = first.find('-', 5);
  if (dash == std::string::npos) return std::nullopt;
  return first.substr(0, dash);
}

std::vector<std::string> certificate_names(std::string_view region) {
  std::vector<std::string> out;
  for (const auto& s : endpoint_services()) {
    for (auto& n : s.private_dns_names(region))
      out.push_back(numbered(s) ? fmt::format("*.{}.amazonaws.com", region) : n);
    out.push_back(fmt::format("*.{}.{}.vpce.amazonaws.com", s.dns_label, region));
  }
  if (region == "us-east-1") {
    out.push_back("s3.amazonaws.com");
    out.push_back("*.s3.amazonaws.com");
    out.push_back("sts.amazonaws.com");
    out.push_back("iam.amazonaws.com");
  }
  out.push_back(fmt::format("ecr.{}.amazonaws.com", region));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace pier::aws
