// Where AWS's services are, by name: the catalog behind VPC endpoints, the
// VPC resolver, pier's simulated internet and the certificates pierd shows.
//
// Every service has public names in a region (ssmmessages.us-east-1.amazonaws.com,
// *.dkr.ecr.us-east-1.amazonaws.com, …) and one public address in the
// simulated internet, 198.18.R.S (R: the region, S: the service), where pierd
// answers on 443. A VPC endpoint for the service ("com.amazonaws.REGION.NAME")
// makes those names resolve, inside its VPC, to the endpoint's ENIs when
// private DNS is on.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pier::aws {

struct EndpointService {
  std::string name;         // the endpoint service's last part: "ssmmessages", "ecr.dkr", "s3"
  std::string dns_label;    // its label in names: "ssmmessages", "dkr.ecr", "api.ecr", "s3"
  bool interface = true;    // offered as an Interface endpoint
  bool gateway = false;     // offered as a Gateway endpoint (s3, dynamodb)
  int index = 0;            // S in 198.18.R.S is 10 + index

  // "com.amazonaws.us-east-1.ssmmessages"
  std::string service_name(std::string_view region) const;
  // The names private DNS takes over: "ssmmessages.us-east-1.amazonaws.com",
  // "*.dkr.ecr.us-east-1.amazonaws.com" (a leading "*." matches one or more labels).
  std::vector<std::string> private_dns_names(std::string_view region) const;
  // The public address in the simulated internet.
  std::string public_address(std::string_view region) const;
  // The endpoint-specific names: "vpce-…-abcd1234.ssmmessages.us-east-1.vpce.amazonaws.com",
  // and the zonal one when zone is given.
  std::string endpoint_dns_name(std::string_view endpoint_id, std::string_view suffix, std::string_view region,
                                std::string_view zone = {}) const;
};

const std::vector<EndpointService>& endpoint_services();
// By "com.amazonaws.REGION.NAME" in that region.
const EndpointService* find_endpoint_service(std::string_view service_name, std::string_view region);

// The regions DescribeRegions lists (each has an octet of its own).
std::vector<std::string> known_regions();
// The third octet of the region's public addresses.
int region_octet(std::string_view region);
// The range every public address is in (one /24 per region).
inline constexpr const char* kPublicRange = "198.18.0.0/16";

// A name matched against the catalog: the service and region whose public
// (and private DNS) names it falls under, e.g. "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
// → ecr.dkr in eu-west-1. Names are compared lower-case, without a final dot.
struct NameMatch {
  const EndpointService* service = nullptr;
  std::string region;
};
std::optional<NameMatch> match_service_name(std::string_view name);

// "vpce-0123…-abcd1234.ssmmessages.us-east-1.vpce.amazonaws.com" (or a zonal
// one): the endpoint id it names.
std::optional<std::string> match_endpoint_dns_name(std::string_view name);

// Does `name` fall under `pattern` ("*.x.y" matches a.x.y and a.b.x.y; other
// patterns match exactly)?
bool dns_name_matches(std::string_view pattern, std::string_view name);

// The names a certificate for the region's endpoints must carry.
std::vector<std::string> certificate_names(std::string_view region);

}  // namespace pier::aws
