// VPC endpoints for the services of the catalog in aws/endpoints.h.
//
// An Interface endpoint holds one requester-managed ENI per subnet (at most
// one subnet per zone) and, with private DNS on, takes the service's public
// names over inside its VPC. It is "pending" until the network controller has
// wired its ENIs and pierd listens on them, then "available";
// DeleteVpcEndpoints makes it "deleting" until the controller has taken its
// kernel side down, then it is gone with its ENIs (finish_vpc_endpoint).
//
// A Gateway endpoint (s3, dynamodb) is a route to the service's prefix list
// in each route table it names; it is available at once and goes at once.
//
// DescribeVpcEndpointServices and DescribePrefixLists read the catalog.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "aws/endpoints.h"
#include "common/crypto.h"
#include "common/strings.h"
#include "services/ec2/ec2.h"
#include "services/ec2/helpers.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using aws::EndpointService;
using aws::RequestContext;
using store::Db;

namespace {

// What AWS attaches when no policy is given: everything, for everyone.
constexpr std::string_view kFullAccessPolicy =
    R"({"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]})";

constexpr std::string_view kAlnum = "abcdefghijklmnopqrstuvwxyz0123456789";

// A Route 53 zone id that looks like one ("Z" and upper-case alphanumerics), fixed for its seed.
std::string hosted_zone_id(std::string_view seed, size_t n) {
  std::string h = crypto::sha256(seed), out = "Z";
  for (size_t i = 0; i < n; ++i) {
    char c = kAlnum[static_cast<unsigned char>(h[i % h.size()]) % kAlnum.size()];
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// The random part of an endpoint's own DNS names: "vpce-…-9nofmi2p".
std::string dns_suffix() {
  std::string bytes = crypto::random_bytes(8), out;
  for (unsigned char b : bytes) out += kAlnum[b % kAlnum.size()];
  return out;
}

std::string dns_domain(const std::string& name) { return name.starts_with("*.") ? name.substr(2) : name; }

// "Route table IDs are only supported for Gateway type VPC Endpoint."
Error wrong_type(std::string_view what, std::string_view type) {
  return invalid("InvalidParameter", fmt::format("{} only supported for {} type VPC Endpoint.", what, type));
}

std::vector<std::string> unique(std::vector<std::string> v) {
  std::vector<std::string> out;
  for (auto& x : v)
    if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(std::move(x));
  return out;
}

// pier's subnets are IPv4 only.
Status check_ip_options(const json::object& in) {
  if (std::string t = get_string(in, "IpAddressType"); !t.empty() && t != "ipv4")
    return invalid("InvalidParameter",
                   fmt::format("IpAddressType {} requires IPv6 subnets; pier's subnets are IPv4 only.", t));
  if (const auto* o = in.if_contains("DnsOptions"); o && o->is_object()) {
    std::string t = get_string(o->as_object(), "DnsRecordIpType");
    if (!t.empty() && t != "ipv4" && t != "service-defined")
      return invalid("InvalidParameter",
                     fmt::format("DnsRecordIpType {} requires IPv6 subnets; pier's subnets are IPv4 only.", t));
    if (get_bool(o->as_object(), "PrivateDnsOnlyForInboundResolverEndpoint"))
      return invalid("InvalidParameter",
                     "pier has no inbound Resolver endpoints (PrivateDnsOnlyForInboundResolverEndpoint).");
  }
  return {};
}

Result<std::string> checked_policy(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object())
    return invalid("InvalidPolicyDocument", "The Policy Document is not valid. It must be a JSON object.");
  return text;
}

// SubnetConfigurations: the address each named subnet's ENI takes.
Result<std::map<std::string, std::string>> subnet_addresses(const json::object& in,
                                                            const std::vector<std::string>& subnets) {
  std::map<std::string, std::string> out;
  if (const auto* list = get_array(in, "SubnetConfigurations"))
    for (const auto& c : *list) {
      if (!c.is_object()) continue;
      const auto& o = c.as_object();
      std::string id = get_string(o, "SubnetId");
      if (std::find(subnets.begin(), subnets.end(), id) == subnets.end())
        return invalid("InvalidParameter",
                       fmt::format("The subnet configuration for {} names a subnet the request does not add.", id));
      if (!get_string(o, "Ipv6").empty())
        return invalid("InvalidParameter", "pier's subnets are IPv4 only: a subnet configuration takes Ipv4 alone.");
      if (std::string ip = get_string(o, "Ipv4"); !ip.empty()) out[id] = ip;
    }
  return out;
}

const EndpointService* service_of(const Object& ep, const std::string& region) {
  return aws::find_endpoint_service(get_string(ep.doc, "ServiceName"), region);
}

bool is_interface(const Object& ep) { return get_string(ep.doc, "VpcEndpointType") == "Interface"; }

// SubnetIds, NetworkInterfaceIds and DnsEntries, from the endpoint's ENIs
// (kept in "_Interfaces": SubnetId, NetworkInterfaceId, AvailabilityZone):
// the regional name, one per zone, then the private DNS names when on.
void derive(Object& ep, const EndpointService& svc, const std::string& region) {
  json::array subnets, enis, dns;
  if (is_interface(ep)) {
    std::string suffix = get_string(ep.doc, "_DnsSuffix");
    std::string zone = hosted_zone_id("vpce." + region, 13);
    dns.push_back(json::object{{"DnsName", svc.endpoint_dns_name(ep.id, suffix, region)}, {"HostedZoneId", zone}});
    for (const auto& i : ep.doc["_Interfaces"].as_array()) {
      const auto& o = i.as_object();
      subnets.push_back(o.at("SubnetId"));
      enis.push_back(o.at("NetworkInterfaceId"));
      dns.push_back(json::object{
          {"DnsName", svc.endpoint_dns_name(ep.id, suffix, region, get_string(o, "AvailabilityZone"))},
          {"HostedZoneId", zone}});
    }
    if (get_bool(ep.doc, "PrivateDnsEnabled")) {
      std::string private_zone = hosted_zone_id(ep.id, 20);
      for (const auto& n : svc.private_dns_names(region))
        dns.push_back(json::object{{"DnsName", n}, {"HostedZoneId", private_zone}});
    }
  }
  ep.doc["SubnetIds"] = std::move(subnets);
  ep.doc["NetworkInterfaceIds"] = std::move(enis);
  ep.doc["DnsEntries"] = std::move(dns);
}

// Only the route tables that still exist: a table deleted under a gateway
// endpoint leaves it.
Status prune_tables(Db& db, const Scope& s, json::object& v) {
  json::array tables;
  if (const auto* list = get_array(v, "RouteTableIds"))
    for (const auto& t : *list) {
      PIER_ASSIGN(auto o, load(db, s, std::string(t.as_string())));
      if (o && o->type == "route-table") tables.push_back(t);
    }
  v["RouteTableIds"] = std::move(tables);
  return {};
}

Result<json::object> endpoint_view(Db& db, const Scope& s, const Object& ep) {
  json::object v = with_tags(db, s, ep);
  PIER_TRY(prune_tables(db, s, v));
  return v;
}

Result<Object> endpoint_find(Db& db, const Scope& s, const std::string& id) {
  return find(db, s, id, "vpc-endpoint", "InvalidVpcEndpointId.NotFound", "vpcEndpoint");
}

// The security groups named, each of the VPC: [{GroupId, GroupName}].
Result<json::array> groups_in(Db& db, const Scope& s, const std::string& vpc_id, const std::vector<std::string>& ids) {
  json::array out;
  for (const auto& id : unique(ids)) {
    PIER_ASSIGN(auto g, find(db, s, id, "security-group", "InvalidGroup.NotFound", "security group"));
    if (g.vpc_id != vpc_id)
      return invalid("InvalidParameter", fmt::format("The security group {} does not belong to the VPC {}.", id, vpc_id));
    out.push_back(json::object{{"GroupId", g.id}, {"GroupName", g.doc.at("GroupName")}});
  }
  return out;
}

Result<json::array> default_group(Db& db, const Scope& s, const std::string& vpc_id) {
  PIER_ASSIGN(auto groups, load_all(db, s, "security-group", vpc_id));
  for (const auto& g : groups)
    if (get_string(g.doc, "GroupName") == "default")
      return json::array{json::object{{"GroupId", g.id}, {"GroupName", "default"}}};
  return json::array();
}

std::vector<std::string> group_ids(const Object& ep) {
  std::vector<std::string> out;
  for (const auto& g : ep.doc.at("Groups").as_array()) out.push_back(get_string(g.as_object(), "GroupId"));
  return out;
}

// One requester-managed ENI in each new subnet, at most one subnet per zone.
Status add_subnets(Db& db, const Scope& s, Object& ep, const std::vector<std::string>& ids,
                   const std::map<std::string, std::string>& ips) {
  auto groups = group_ids(ep);
  for (const auto& id : ids) {
    PIER_ASSIGN(auto sn, find(db, s, id, "subnet", "InvalidSubnetID.NotFound", "subnet"));
    if (sn.vpc_id != ep.vpc_id)
      return invalid("InvalidParameter", fmt::format("The subnet ID '{}' does not belong to the VPC {}.", id, ep.vpc_id));
    std::string az = get_string(sn.doc, "AvailabilityZone");
    for (const auto& i : ep.doc["_Interfaces"].as_array())
      if (get_string(i.as_object(), "AvailabilityZone") == az)
        return invalid("DuplicateSubnetsInSameZone",
                       fmt::format("Found another VPC endpoint subnet in the availability zone of {}. VPC endpoint "
                                   "subnets should be in different availability zones supported by the VPC endpoint "
                                   "service.", get_string(i.as_object(), "SubnetId")));
    auto ip = ips.find(id);
    PIER_ASSIGN(auto eni, make_interface(db, s, id, groups, ip == ips.end() ? "" : ip->second,
                                         "VPC Endpoint Interface " + ep.id, "vpc_endpoint"));
    eni.doc["RequesterManaged"] = true;
    PIER_TRY(save(db, s, eni));
    ep.doc["_Interfaces"].as_array().push_back(
        json::object{{"SubnetId", id}, {"NetworkInterfaceId", eni.id}, {"AvailabilityZone", az}});
  }
  return {};
}

// Private DNS needs the VPC's DNS attributes, and the names free in the VPC.
Status check_private_dns(Db& db, const Scope& s, const std::string& vpc_id, const EndpointService& svc,
                         const std::string& self) {
  PIER_ASSIGN(auto vpc, find(db, s, vpc_id, "vpc", "InvalidVpcID.NotFound", "vpc"));
  if (!get_bool(vpc.doc, "_EnableDnsSupport") || !get_bool(vpc.doc, "_EnableDnsHostnames"))
    return invalid("InvalidParameter", fmt::format("Enabling private DNS requires both enableDnsSupport and "
                                                   "enableDnsHostnames VPC attributes set to true for {}", vpc_id));
  PIER_ASSIGN(auto others, load_all(db, s, "vpc-endpoint", vpc_id));
  for (const auto& o : others)  // one still deleting holds its names too, as on AWS
    if (o.id != self && get_bool(o.doc, "PrivateDnsEnabled") &&
        get_string(o.doc, "ServiceName") == svc.service_name(s.region))
      return invalid("InvalidParameter",
                     fmt::format("private-dns-enabled cannot be set because there is already a conflicting DNS domain "
                                 "for {} in the VPC {}", dns_domain(svc.private_dns_names(s.region).front()), vpc_id));
  return {};
}

// A gateway endpoint's route: the service's prefix list through the endpoint.
Status add_route(Db& db, const Scope& s, const Object& ep, const std::string& table_id, const std::string& pl) {
  PIER_ASSIGN(auto t, find(db, s, table_id, "route-table", "InvalidRouteTableID.NotFound", "routeTable"));
  if (t.vpc_id != ep.vpc_id)
    return invalid("InvalidParameter",
                   fmt::format("The route table {} does not belong to the VPC {}.", table_id, ep.vpc_id));
  auto& routes = t.doc["Routes"].as_array();
  for (const auto& r : routes)
    if (get_string(r.as_object(), "DestinationPrefixListId") == pl)
      return invalid("RouteAlreadyExists",
                     fmt::format("The route identified by {} already exists in route table {}.", pl, table_id));
  routes.push_back(json::object{{"DestinationPrefixListId", pl}, {"GatewayId", ep.id}, {"Origin", "CreateRoute"},
                                {"State", "active"}});
  return save(db, s, t);
}

Status remove_routes(Db& db, const Scope& s, const std::string& table_id, const std::string& endpoint_id) {
  PIER_ASSIGN(auto t, load(db, s, table_id));
  if (!t || t->type != "route-table") return {};  // gone, and its routes with it
  auto& routes = t->doc["Routes"].as_array();
  auto before = routes.size();
  routes.erase(std::remove_if(routes.begin(), routes.end(),
                              [&](const json::value& r) { return get_string(r.as_object(), "GatewayId") == endpoint_id; }),
               routes.end());
  return routes.size() == before ? Status{} : save(db, s, *t);
}

std::vector<const EndpointService*> catalog_by_name(const std::string& region) {
  std::vector<const EndpointService*> out;
  for (const auto& svc : aws::endpoint_services()) out.push_back(&svc);
  std::sort(out.begin(), out.end(), [&](const auto* a, const auto* b) {
    return a->service_name(region) < b->service_name(region);
  });
  return out;
}

json::object service_detail(const EndpointService& svc, const std::string& type, const std::string& region) {
  std::string name = svc.service_name(region);
  bool iface = type == "Interface";
  json::object d{
      {"ServiceName", name},
      {"ServiceId", "vpce-svc-" + str::hex(crypto::sha256(name + "/" + type)).substr(0, 17)},
      {"ServiceType", json::array{json::object{{"ServiceType", type}}}},
      {"AvailabilityZones", json::array()},
      {"Owner", "amazon"},
      {"BaseEndpointDnsNames", json::array{iface ? fmt::format("{}.{}.vpce.amazonaws.com", svc.dns_label, region)
                                                 : fmt::format("{}.{}.amazonaws.com", svc.dns_label, region)}},
      {"VpcEndpointPolicySupported", true},
      {"AcceptanceRequired", false},
      {"ManagesVpcEndpoints", false},
      {"Tags", json::array()},
      {"SupportedIpAddressTypes", json::array{"ipv4"}}};
  for (const auto& z : zone_names(region)) d["AvailabilityZones"].as_array().push_back(json::value(z));
  if (iface) {
    auto names = svc.private_dns_names(region);
    d["PrivateDnsName"] = names.front();
    json::array list;
    for (const auto& n : names) list.push_back(json::object{{"PrivateDnsName", n}});
    d["PrivateDnsNames"] = std::move(list);
    d["PrivateDnsNameVerificationState"] = "verified";
  }
  return d;
}

std::vector<json::object> prefix_lists(const std::string& region) {
  std::vector<json::object> out;
  for (const auto* svc : catalog_by_name(region))
    if (svc->gateway) {
      std::string name = svc->service_name(region);
      out.push_back(json::object{{"PrefixListId", prefix_list_id(name)},
                                 {"PrefixListName", name},
                                 {"Cidrs", json::array{json::value(svc->public_address(region) + "/32")}}});
    }
  return out;
}

}  // namespace

std::string prefix_list_id(const std::string& service_name) {
  return "pl-" + str::hex(crypto::sha256(service_name)).substr(0, 8);
}

std::vector<std::string> prefix_list_cidrs(const std::string& id, const std::string& region) {
  for (const auto& svc : aws::endpoint_services())
    if (svc.gateway && prefix_list_id(svc.service_name(region)) == id) return {svc.public_address(region) + "/32"};
  return {};
}

void add_endpoint_actions(const AddAction& add, store::Store& store) {
  add("CreateVpcEndpoint", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string type = get_string(in, "VpcEndpointType", "Interface");
    if ((type != "Interface" && type != "Gateway") || in.contains("ServiceNetworkArn") ||
        in.contains("ResourceConfigurationArn"))
      return invalid("InvalidVpcEndpointType", fmt::format("pier makes Interface and Gateway endpoints to AWS services "
                                                           "only, not {} endpoints.", type));
    std::string name = get_string(in, "ServiceName");
    if (name.empty()) return invalid("MissingParameter", "The request must contain the parameter ServiceName");
    const EndpointService* svc = aws::find_endpoint_service(name, s.region);
    if (!svc) return invalid("InvalidServiceName", fmt::format("The Vpc Endpoint Service '{}' does not exist", name));
    bool iface = type == "Interface";
    if (iface ? !svc->interface : !svc->gateway)
      return invalid("InvalidServiceName",
                     fmt::format("The Vpc Endpoint Service '{}' does not support the endpoint type '{}'.", name, type));
    PIER_TRY(check_ip_options(in));
    std::string policy(kFullAccessPolicy);
    if (in.contains("PolicyDocument")) {
      PIER_ASSIGN(policy, checked_policy(get_string(in, "PolicyDocument")));
    }
    auto tags = spec_tags(in, "vpc-endpoint");
    PIER_TRY(check_tags(tags));
    auto subnets = get_strings(in, "SubnetIds"), groups = get_strings(in, "SecurityGroupIds");
    auto tables = unique(get_strings(in, "RouteTableIds"));
    if (iface && !tables.empty()) return wrong_type("Route table IDs are", "Gateway");
    if (!iface && (!subnets.empty() || in.contains("SubnetConfigurations")))
      return wrong_type("Subnet IDs are", "Interface");
    if (!iface && !groups.empty()) return wrong_type("Security groups are", "Interface");
    if (!iface && get_bool(in, "PrivateDnsEnabled")) return wrong_type("Private DNS is", "Interface");
    // AWS's default for its own services: private DNS on.
    bool private_dns = iface && get_bool(in, "PrivateDnsEnabled", true);
    PIER_ASSIGN(auto ips, subnet_addresses(in, subnets));
    // ClientToken: the same token and request give the endpoint made the first time.
    std::string token = get_string(in, "ClientToken");
    json::object request = in;
    request.erase("DryRun");
    request.erase("ClientToken");
    std::string fingerprint = json::serialize(request);
    return store.write([&](Db& db) -> Result<json::object> {
      if (!token.empty()) {
        PIER_ASSIGN(auto all, load_all(db, s, "vpc-endpoint"));
        for (const auto& o : all) {
          if (get_string(o.doc, "_ClientToken") != token) continue;
          if (get_string(o.doc, "_Request") != fingerprint)
            return invalid("IdempotentParameterMismatch",
                           fmt::format("The client token '{}' was used with a request of other parameters.", token));
          PIER_ASSIGN(auto v, endpoint_view(db, s, o));
          return json::object{{"VpcEndpoint", std::move(v)}, {"ClientToken", token}};
        }
      }
      PIER_ASSIGN(auto vpc, find(db, s, get_string(in, "VpcId"), "vpc", "InvalidVpcID.NotFound", "vpc"));
      Object ep;
      ep.id = new_id("vpce");
      ep.type = "vpc-endpoint";
      ep.vpc_id = vpc.id;
      ep.doc = json::object{{"VpcEndpointId", ep.id},
                            {"VpcEndpointType", type},
                            {"VpcId", vpc.id},
                            {"ServiceName", name},
                            {"State", iface ? "pending" : "available"},
                            {"PolicyDocument", policy},
                            {"RouteTableIds", json::array()},
                            {"Groups", json::array()},
                            {"PrivateDnsEnabled", private_dns},
                            {"RequesterManaged", false},
                            {"CreationTimestamp", ctx.now},
                            {"OwnerId", s.account},
                            {"_Interfaces", json::array()}};
      if (!token.empty()) {
        ep.doc["_ClientToken"] = token;
        ep.doc["_Request"] = fingerprint;
      }
      if (iface) {
        ep.doc["IpAddressType"] = "ipv4";
        ep.doc["DnsOptions"] = json::object{{"DnsRecordIpType", "ipv4"}};
        ep.doc["_DnsSuffix"] = dns_suffix();
        if (groups.empty()) {
          PIER_ASSIGN(ep.doc["Groups"], default_group(db, s, vpc.id));
        } else {
          PIER_ASSIGN(ep.doc["Groups"], groups_in(db, s, vpc.id, groups));
        }
        if (private_dns) PIER_TRY(check_private_dns(db, s, vpc.id, *svc, ep.id));
        PIER_TRY(add_subnets(db, s, ep, subnets, ips));
      } else {
        std::string pl = prefix_list_id(name);
        for (const auto& t : tables) {
          PIER_TRY(add_route(db, s, ep, t, pl));
          ep.doc["RouteTableIds"].as_array().push_back(json::value(t));
        }
      }
      derive(ep, *svc, s.region);
      PIER_TRY(save(db, s, ep));
      PIER_TRY(put_tags(db, s, ep.id, tags));
      PIER_ASSIGN(auto v, endpoint_view(db, s, ep));
      json::object out{{"VpcEndpoint", std::move(v)}};
      if (!token.empty()) out["ClientToken"] = token;
      return out;
    });
  });

  add("ModifyVpcEndpoint", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_TRY(check_ip_options(in));
    std::optional<std::string> policy;
    if (get_bool(in, "ResetPolicy")) {
      if (in.contains("PolicyDocument"))
        return invalid("InvalidParameterCombination", "ResetPolicy and PolicyDocument cannot both be given.");
      policy = std::string(kFullAccessPolicy);
    } else if (in.contains("PolicyDocument")) {
      PIER_ASSIGN(policy, checked_policy(get_string(in, "PolicyDocument")));
    }
    auto add_subnet_ids = unique(get_strings(in, "AddSubnetIds"));
    auto remove_subnet_ids = unique(get_strings(in, "RemoveSubnetIds"));
    auto add_group_ids = unique(get_strings(in, "AddSecurityGroupIds"));
    auto remove_group_ids = unique(get_strings(in, "RemoveSecurityGroupIds"));
    auto add_tables = unique(get_strings(in, "AddRouteTableIds"));
    auto remove_tables = unique(get_strings(in, "RemoveRouteTableIds"));
    PIER_ASSIGN(auto ips, subnet_addresses(in, add_subnet_ids));
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto ep, endpoint_find(db, s, get_string(in, "VpcEndpointId")));
      const EndpointService* svc = service_of(ep, s.region);
      if (!svc) return Error::internal(fmt::format("VPC endpoint {}: its service is not in the catalog", ep.id));
      std::string state = get_string(ep.doc, "State");
      if (state == "deleting" || state == "deleted")
        return invalid("IncorrectState", fmt::format("The VPC endpoint {} is {} and cannot be modified.", ep.id, state));
      bool iface = is_interface(ep);
      if (iface && (!add_tables.empty() || !remove_tables.empty())) return wrong_type("Route table IDs are", "Gateway");
      if (!iface && (!add_subnet_ids.empty() || !remove_subnet_ids.empty() || in.contains("SubnetConfigurations")))
        return wrong_type("Subnet IDs are", "Interface");
      if (!iface && (!add_group_ids.empty() || !remove_group_ids.empty()))
        return wrong_type("Security groups are", "Interface");
      if (!iface && get_bool(in, "PrivateDnsEnabled")) return wrong_type("Private DNS is", "Interface");
      if (policy) ep.doc["PolicyDocument"] = *policy;

      if (iface) {
        // Groups first: ENIs added below take the groups as they are after the call.
        bool groups_changed = !add_group_ids.empty() || !remove_group_ids.empty();
        {
          auto& groups = ep.doc["Groups"].as_array();
          for (const auto& id : remove_group_ids) {
            auto it = std::find_if(groups.begin(), groups.end(),
                                   [&](const json::value& g) { return get_string(g.as_object(), "GroupId") == id; });
            if (it == groups.end())
              return invalid("InvalidParameter", fmt::format("The security group {} is not associated with the VPC "
                                                             "endpoint {}.", id, ep.id));
            groups.erase(it);
          }
        }
        PIER_ASSIGN(auto added, groups_in(db, s, ep.vpc_id, add_group_ids));
        {
          auto& groups = ep.doc["Groups"].as_array();
          for (auto& g : added) {
            std::string id = get_string(g.as_object(), "GroupId");
            if (std::none_of(groups.begin(), groups.end(),
                             [&](const json::value& h) { return get_string(h.as_object(), "GroupId") == id; }))
              groups.push_back(std::move(g));
          }
          if (groups.empty())
            return invalid("InvalidParameter",
                           fmt::format("The VPC endpoint {} must keep at least one security group.", ep.id));
        }
        // Subnets: removed ones take their ENIs with them.
        for (const auto& id : remove_subnet_ids) {
          auto& list = ep.doc["_Interfaces"].as_array();
          auto it = std::find_if(list.begin(), list.end(),
                                 [&](const json::value& i) { return get_string(i.as_object(), "SubnetId") == id; });
          if (it == list.end())
            return invalid("InvalidParameter",
                           fmt::format("The subnet {} is not a subnet of the VPC endpoint {}.", id, ep.id));
          std::string eni = get_string(it->as_object(), "NetworkInterfaceId");
          list.erase(it);
          PIER_ASSIGN(auto e, load(db, s, eni));
          if (e) PIER_TRY(delete_interface(db, s, eni, /*by_owner=*/true));
        }
        if (groups_changed) {
          for (const auto& i : ep.doc["_Interfaces"].as_array()) {
            PIER_ASSIGN(auto e, load(db, s, get_string(i.as_object(), "NetworkInterfaceId")));
            if (!e) continue;
            e->doc["Groups"] = ep.doc["Groups"];
            PIER_TRY(save(db, s, *e));
          }
        }
        PIER_TRY(add_subnets(db, s, ep, add_subnet_ids, ips));
        // New ENIs: pending again until the controller has wired them.
        if (!add_subnet_ids.empty()) ep.doc["State"] = "pending";
        if (in.contains("PrivateDnsEnabled")) {
          bool on = get_bool(in, "PrivateDnsEnabled");
          if (on && !get_bool(ep.doc, "PrivateDnsEnabled")) PIER_TRY(check_private_dns(db, s, ep.vpc_id, *svc, ep.id));
          ep.doc["PrivateDnsEnabled"] = on;
        }
      } else {
        std::string pl = prefix_list_id(get_string(ep.doc, "ServiceName"));
        for (const auto& t : remove_tables) {
          auto& list = ep.doc["RouteTableIds"].as_array();
          auto it = std::find_if(list.begin(), list.end(), [&](const json::value& v) { return v.as_string() == t; });
          if (it == list.end())
            return invalid("InvalidParameter",
                           fmt::format("The route table {} is not associated with the VPC endpoint {}.", t, ep.id));
          list.erase(it);
          PIER_TRY(remove_routes(db, s, t, ep.id));
        }
        for (const auto& t : add_tables) {
          auto& list = ep.doc["RouteTableIds"].as_array();
          if (std::any_of(list.begin(), list.end(), [&](const json::value& v) { return v.as_string() == t; })) continue;
          PIER_TRY(add_route(db, s, ep, t, pl));
          ep.doc["RouteTableIds"].as_array().push_back(json::value(t));
        }
      }
      derive(ep, *svc, s.region);
      return save(db, s, ep);
    }));
    return json::object{{"Return", true}};
  });

  add("DeleteVpcEndpoints", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    auto ids = unique(get_strings(in, "VpcEndpointIds"));
    json::array unsuccessful;
    PIER_TRY(store.write([&](Db& db) -> Status {
      unsuccessful.clear();
      for (const auto& id : ids) {
        PIER_ASSIGN(auto ep, load(db, s, id));
        if (!ep || ep->type != "vpc-endpoint") {
          // Per id, as AWS reports a bulk call's failures.
          auto e = not_found("InvalidVpcEndpoint.NotFound", "vpcEndpoint", id);
          unsuccessful.push_back(json::object{
              {"Error", json::object{{"Code", e.code}, {"Message", e.message}}}, {"ResourceId", id}});
          continue;
        }
        if (!is_interface(*ep)) {
          // A gateway endpoint is its routes: they go, and it with them.
          for (const auto& t : ep->doc["RouteTableIds"].as_array())
            PIER_TRY(remove_routes(db, s, std::string(t.as_string()), id));
          PIER_TRY(erase(db, s, id));
          continue;
        }
        if (get_string(ep->doc, "State") == "deleting") continue;
        ep->doc["State"] = "deleting";
        PIER_TRY(save(db, s, *ep));
      }
      return {};
    }));
    return json::object{{"Unsuccessful", unsuccessful}};
  });

  FilterFields fields{{"vpc-id", field("VpcId")},
                      {"service-name", field("ServiceName")},
                      {"vpc-endpoint-id", field("VpcEndpointId")},
                      {"vpc-endpoint-state", field("State")},
                      {"vpc-endpoint-type", field("VpcEndpointType")},
                      {"ip-address-type", field("IpAddressType")}};
  add("DescribeVpcEndpoints", [&store, fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "vpc-endpoint", get_strings(in, "VpcEndpointIds"),
                                      "InvalidVpcEndpointId.NotFound", "vpcEndpoint", in, fields));
      for (auto& v : list) PIER_TRY(prune_tables(db, s, v.as_object()));
      return json::object{{"VpcEndpoints", list}};
    });
  });

  FilterFields service_fields{{"service-name", field("ServiceName")},
                              {"service-type", list_field("ServiceType", "ServiceType")},
                              {"owner", field("Owner")}};
  add("DescribeVpcEndpointServices", [service_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_TRY(check_filters(in, service_fields));
    auto names = get_strings(in, "ServiceNames");
    for (const auto& n : names)
      if (!aws::find_endpoint_service(n, ctx.region))
        return invalid("InvalidServiceName", fmt::format("The Vpc Endpoint Service '{}' does not exist", n));
    json::array details;
    std::set<std::string> listed;
    for (const auto* svc : catalog_by_name(ctx.region)) {
      std::string name = svc->service_name(ctx.region);
      if (!names.empty() && std::find(names.begin(), names.end(), name) == names.end()) continue;
      // A service offered both ways (s3) is listed once for each type, as on AWS.
      for (const auto& [offered, type] : {std::pair{svc->gateway, "Gateway"}, std::pair{svc->interface, "Interface"}}) {
        if (!offered) continue;
        json::object d = service_detail(*svc, type, ctx.region);
        if (!matches(in, service_fields, d)) continue;
        listed.insert(name);
        details.push_back(std::move(d));
      }
    }
    json::array service_names;
    for (const auto& n : listed) service_names.push_back(json::value(n));
    return json::object{{"ServiceNames", service_names}, {"ServiceDetails", details}};
  });

  FilterFields prefix_fields{{"prefix-list-id", field("PrefixListId")}, {"prefix-list-name", field("PrefixListName")}};
  add("DescribePrefixLists", [prefix_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_TRY(check_filters(in, prefix_fields));
    auto all = prefix_lists(ctx.region);
    auto ids = get_strings(in, "PrefixListIds");
    for (const auto& id : ids)
      if (std::none_of(all.begin(), all.end(), [&](const json::object& p) { return get_string(p, "PrefixListId") == id; }))
        return not_found("InvalidPrefixListId.NotFound", "prefix list", id);
    json::array out;
    for (auto& p : all) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), get_string(p, "PrefixListId")) == ids.end()) continue;
      if (matches(in, prefix_fields, p)) out.push_back(std::move(p));
    }
    return json::object{{"PrefixLists", out}};
  });
}

Status finish_vpc_endpoint(Db& db, const std::string& account, const std::string& region, const std::string& id,
                           bool removed) {
  Scope s{account, region};
  // Read again: the endpoint may have gone or changed since the pass began.
  PIER_ASSIGN(auto ep, load(db, s, id));
  if (!ep || ep->type != "vpc-endpoint") return {};
  std::string state = get_string(ep->doc, "State");
  if (!removed && state == "pending") {
    ep->doc["State"] = "available";
    return save(db, s, *ep);
  }
  if (removed && state == "deleting") {
    for (const auto& i : ep->doc["_Interfaces"].as_array()) {
      std::string eni = get_string(i.as_object(), "NetworkInterfaceId");
      PIER_ASSIGN(auto e, load(db, s, eni));
      if (e) PIER_TRY(delete_interface(db, s, eni, /*by_owner=*/true));
    }
    return erase(db, s, id);  // not listed once gone
  }
  return {};
}

}  // namespace pier::svc::ec2
