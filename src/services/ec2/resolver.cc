#include "services/ec2/resolver.h"

#include <fmt/format.h>

#include "aws/endpoints.h"
#include "common/strings.h"
#include "services/ec2/cidr.h"
#include "services/ec2/objects.h"
#include "services/util.h"

namespace pier::svc::ec2 {

namespace {

// Private DNS takes over once the endpoint is available (its ENIs answer),
// as on AWS; until then the name stays the public one.
bool live(const json::object& endpoint) { return get_string(endpoint, "State") == "available"; }

// The private addresses of an endpoint's ENIs (only those in `zone` when given).
Result<std::vector<std::string>> endpoint_addresses(store::Db& db, const Scope& s, const json::object& endpoint,
                                                    const std::string& zone = {}) {
  std::vector<std::string> out;
  if (const auto* ids = get_array(endpoint, "NetworkInterfaceIds"))
    for (const auto& id : *ids) {
      if (!id.is_string()) continue;
      PIER_ASSIGN(auto eni, load(db, s, std::string(id.as_string())));
      if (!eni) continue;
      if (!zone.empty() && get_string(eni->doc, "AvailabilityZone") != zone) continue;
      out.push_back(get_string(eni->doc, "PrivateIpAddress"));
    }
  return out;
}

// ip-10-0-1-5.ec2.internal / ip-10-0-1-5.eu-west-1.compute.internal → 10.0.1.5
std::string hostname_address(const std::string& name, const std::string& region) {
  std::string suffix = region == "us-east-1" ? ".ec2.internal" : fmt::format(".{}.compute.internal", region);
  if (!name.starts_with("ip-") || !name.ends_with(suffix)) return {};
  std::string label = name.substr(3, name.size() - 3 - suffix.size());
  if (label.find('.') != std::string::npos) return {};
  auto parts = str::split(label, '-');
  if (parts.size() != 4) return {};
  std::string ip;
  for (auto p : parts) {
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string_view::npos ||
        (p.size() > 1 && p[0] == '0') || std::stoi(std::string(p)) > 255)
      return {};
    ip += (ip.empty() ? "" : ".") + std::string(p);
  }
  return ip;
}

}  // namespace

std::string resolver_address(const json::object& vpc) {
  auto c = Cidr::parse(get_string(vpc, "CidrBlock"));
  return c && get_bool(vpc, "_EnableDnsSupport") ? c->address(2) : std::string();
}

Result<DnsAnswer> resolve_in_vpc(store::Db& db, const std::string& account, const std::string& region,
                                 const std::string& vpc_id, const std::string& raw_name) {
  Scope s{account, region};
  std::string name = str::lower(raw_name);
  if (!name.empty() && name.back() == '.') name.pop_back();
  DnsAnswer out;
  PIER_ASSIGN(auto vpc, load(db, s, vpc_id));
  if (!vpc) return out;

  if (auto id = aws::match_endpoint_dns_name(name)) {
    PIER_ASSIGN(auto ep, load(db, s, *id));
    if (!ep || ep->type != "vpc-endpoint" || !live(ep->doc)) return out;
    // The zonal name carries the zone after the suffix: vpce-ID-SUFFIX-us-east-1a.….
    std::string first = name.substr(0, name.find('.'));
    std::string zone;
    auto suffix = get_string(ep->doc, "_DnsSuffix");
    std::string regional = *id + "-" + suffix;
    if (first.size() > regional.size() + 1 && first.starts_with(regional + "-")) zone = first.substr(regional.size() + 1);
    else if (first != regional) return out;
    PIER_ASSIGN(out.addresses, endpoint_addresses(db, s, ep->doc, zone));
    out.exists = !out.addresses.empty();
    return out;
  }

  if (auto m = aws::match_service_name(name)) {
    out.exists = true;
    if (m->region == region) {
      PIER_ASSIGN(auto eps, load_all(db, s, "vpc-endpoint", vpc_id));
      for (const auto& ep : eps) {
        if (get_string(ep.doc, "VpcEndpointType") != "Interface" || !get_bool(ep.doc, "PrivateDnsEnabled") ||
            !live(ep.doc) || get_string(ep.doc, "ServiceName") != m->service->service_name(region))
          continue;
        PIER_ASSIGN(out.addresses, endpoint_addresses(db, s, ep.doc));
        return out;
      }
    }
    out.addresses.push_back(m->service->public_address(m->region));
    return out;
  }

  if (get_bool(vpc->doc, "_EnableDnsHostnames")) {
    std::string ip = hostname_address(name, region);
    auto cidr = Cidr::parse(get_string(vpc->doc, "CidrBlock"));
    auto host = Cidr::parse(ip + "/32");
    if (!ip.empty() && cidr && host && cidr->contains(*host)) {
      out.exists = true;
      out.addresses.push_back(ip);
    }
  }
  return out;
}

}  // namespace pier::svc::ec2
