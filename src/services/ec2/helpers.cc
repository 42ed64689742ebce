#include "services/ec2/helpers.h"

#include <fmt/format.h>

#include <map>
#include <tuple>

#include "common/ids.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using store::Db;

Scope scope(const aws::RequestContext& ctx) { return {ctx.principal.account, ctx.region}; }
std::string new_id(std::string_view prefix) { return fmt::format("{}-{}", prefix, ids::hex_id(17)); }
Error invalid(std::string code, std::string msg) { return Error::invalid(std::move(code), std::move(msg)); }
Error not_found(std::string_view code, std::string_view what, const std::string& id) {
  if (what == "security group")  // AWS's wording for groups has no "ID"
    return Error::invalid(std::string(code), fmt::format("The security group '{}' does not exist", id));
  return Error::invalid(std::string(code), fmt::format("The {} ID '{}' does not exist", what, id));
}

// The zone ids AWS gives us-east-1 (use1-az1…) in the same spirit elsewhere.
// (us-east-1 → use1, ap-northeast-1 → apne1, eu-central-1 → euc1).
std::string zone_id(const std::string& region, char letter) {
  static const std::map<std::string, std::string> kDirections = {
      {"east", "e"}, {"west", "w"}, {"north", "n"}, {"south", "s"}, {"central", "c"},
      {"northeast", "ne"}, {"northwest", "nw"}, {"southeast", "se"}, {"southwest", "sw"}};
  auto first = region.find('-'), last = region.rfind('-');
  std::string abbrev = region;
  if (first != std::string::npos && first != last) {
    std::string dir = region.substr(first + 1, last - first - 1);
    auto it = kDirections.find(dir);
    abbrev = region.substr(0, first) + (it != kDirections.end() ? it->second : dir) + region.substr(last + 1);
  }
  return fmt::format("{}-az{}", abbrev, letter - 'a' + 1);
}

// TagSpecifications of a Create call: the tags for resource type `type`.
json::array spec_tags(const json::object& in, std::string_view type) {
  json::array out;
  if (const auto* specs = get_array(in, "TagSpecifications"))
    for (const auto& s : *specs)
      if (s.is_object() && get_string(s.as_object(), "ResourceType") == type)
        if (const auto* t = get_array(s.as_object(), "Tags"))
          for (const auto& tag : *t) out.push_back(tag);
  return out;
}

Status check_tags(const json::array& tags) {
  for (const auto& t : tags) {
    std::string key = t.is_object() ? get_string(t.as_object(), "Key") : "";
    if (key.empty() || key.size() > 128)
      return invalid("InvalidParameterValue", "Tag keys must be between 1 and 128 characters long.");
    if (key.starts_with("aws:"))
      return invalid("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use");
    if (get_string(t.as_object(), "Value").size() > 256)
      return invalid("InvalidParameterValue", "Tag values must be at most 256 characters long.");
  }
  return {};
}

json::object with_tags(Db& db, const Scope& s, const Object& o) {
  json::object v = view(o.doc);
  auto tags = tags_of(db, s, o.id);
  v["Tags"] = tags.ok() ? std::move(tags).value() : json::array();
  return v;
}

// Describe*: the objects of a type, by ids (each must exist) and filters.
Result<json::array> describe(Db& db, const Scope& s, const std::string& type, const std::vector<std::string>& ids,
                             std::string_view notfound_code, std::string_view what, const json::object& in,
                             const FilterFields& fields) {
  PIER_TRY(check_filters(in, fields));
  std::vector<Object> objs;
  if (!ids.empty()) {
    for (const auto& id : ids) {
      PIER_ASSIGN(auto o, load(db, s, id));
      if (!o || o->type != type) return not_found(notfound_code, what, id);
      objs.push_back(std::move(*o));
    }
  } else {
    PIER_ASSIGN(objs, load_all(db, s, type));
  }
  json::array out;
  for (const auto& o : objs) {
    json::object v = with_tags(db, s, o);
    if (matches(in, fields, v)) out.push_back(std::move(v));
  }
  return out;
}

FilterFields::mapped_type field(std::string key) {
  return [key](const json::object& d) -> std::vector<std::string> {
    auto* v = d.if_contains(key);
    if (!v) return {};
    if (v->is_string()) return {std::string(v->as_string())};
    if (v->is_bool()) return {v->as_bool() ? "true" : "false"};
    if (v->is_int64()) return {std::to_string(v->as_int64())};
    return {};
  };
}

// A VPC and what AWS makes with it: the main route table with its `local`
// route, the `default` security group, the default network ACL.
Result<Made> make_vpc(Db& db, const Scope& s, const Cidr& cidr, bool is_default, const std::string& tenancy) {
  Made m;
  m.vpc.id = new_id("vpc");
  m.vpc.type = "vpc";
  m.vpc.vpc_id = m.vpc.id;
  m.vpc.doc = json::object{
      {"OwnerId", s.account},
      {"InstanceTenancy", tenancy.empty() ? "default" : tenancy},
      {"Ipv6CidrBlockAssociationSet", json::array()},
      {"CidrBlockAssociationSet",
       json::array{json::object{{"AssociationId", new_id("vpc-cidr-assoc")},
                                {"CidrBlock", cidr.str()},
                                {"CidrBlockState", json::object{{"State", "associated"}}}}}},
      {"IsDefault", is_default},
      {"VpcId", m.vpc.id},
      {"State", "available"},
      {"CidrBlock", cidr.str()},
      {"DhcpOptionsId", "default"},
      {"_EnableDnsSupport", true},
      {"_EnableDnsHostnames", is_default},
      {"_EnableNetworkAddressUsageMetrics", false}};
  m.route_table.id = new_id("rtb");
  m.route_table.type = "route-table";
  m.route_table.vpc_id = m.vpc.id;
  m.route_table.doc = json::object{
      {"Associations", json::array{json::object{{"Main", true},
                                                {"RouteTableAssociationId", new_id("rtbassoc")},
                                                {"RouteTableId", m.route_table.id},
                                                {"AssociationState", json::object{{"State", "associated"}}}}}},
      {"PropagatingVgws", json::array()},
      {"RouteTableId", m.route_table.id},
      {"Routes", json::array{json::object{{"DestinationCidrBlock", cidr.str()},
                                          {"GatewayId", "local"},
                                          {"Origin", "CreateRouteTable"},
                                          {"State", "active"}}}},
      {"VpcId", m.vpc.id},
      {"OwnerId", s.account}};
  m.group.id = new_id("sg");
  m.group.type = "security-group";
  m.group.vpc_id = m.vpc.id;
  m.group.doc = json::object{
      {"GroupId", m.group.id},
      {"GroupName", "default"},
      {"Description", "default VPC security group"},
      {"VpcId", m.vpc.id},
      {"OwnerId", s.account},
      {"SecurityGroupArn", fmt::format("arn:aws:ec2:{}:{}:security-group/{}", s.region, s.account, m.group.id)},
      // Members of the default group reach each other; everything may go out.
      {"_Rules", json::array{json::object{{"SecurityGroupRuleId", new_id("sgr")}, {"IsEgress", false},
                                          {"IpProtocol", "-1"}, {"FromPort", -1}, {"ToPort", -1},
                                          {"ReferencedGroupId", m.group.id}},
                             json::object{{"SecurityGroupRuleId", new_id("sgr")}, {"IsEgress", true},
                                          {"IpProtocol", "-1"}, {"FromPort", -1}, {"ToPort", -1},
                                          {"CidrIpv4", "0.0.0.0/0"}}}}};
  derive_permissions(m.group.doc);
  m.acl.id = new_id("acl");
  m.acl.type = "network-acl";
  m.acl.vpc_id = m.vpc.id;
  json::array entries;
  for (bool egress : {true, false})
    for (auto [n, action] : {std::pair{100, "allow"}, std::pair{32767, "deny"}})
      entries.push_back(json::object{{"CidrBlock", "0.0.0.0/0"}, {"Egress", egress}, {"Protocol", "-1"},
                                     {"RuleAction", action}, {"RuleNumber", n}});
  m.acl.doc = json::object{{"Associations", json::array()}, {"Entries", entries}, {"IsDefault", true},
                           {"NetworkAclId", m.acl.id}, {"VpcId", m.vpc.id}, {"OwnerId", s.account}};
  for (const auto* o : {&m.vpc, &m.route_table, &m.group, &m.acl}) PIER_TRY(save(db, s, *o));
  return m;
}

Result<Object> find(Db& db, const Scope& s, const std::string& id, const std::string& type,
                    std::string_view code, std::string_view what) {
  PIER_ASSIGN(auto o, load(db, s, id));
  if (!o || o->type != type) return not_found(code, what, id);
  return std::move(*o);
}

Result<Object> make_subnet(Db& db, const Scope& s, const Object& vpc, const Cidr& cidr, const std::string& az,
                           bool default_for_az) {
  Object sn;
  sn.id = new_id("subnet");
  sn.type = "subnet";
  sn.vpc_id = vpc.id;
  sn.doc = json::object{
      {"AvailabilityZoneId", zone_id(s.region, az.back())},
      {"MapCustomerOwnedIpOnLaunch", false},
      {"OwnerId", s.account},
      {"AssignIpv6AddressOnCreation", false},
      {"Ipv6CidrBlockAssociationSet", json::array()},
      {"SubnetArn", fmt::format("arn:aws:ec2:{}:{}:subnet/{}", s.region, s.account, sn.id)},
      {"EnableDns64", false},
      {"Ipv6Native", false},
      {"PrivateDnsNameOptionsOnLaunch", json::object{{"HostnameType", "ip-name"},
                                                     {"EnableResourceNameDnsARecord", false},
                                                     {"EnableResourceNameDnsAAAARecord", false}}},
      {"SubnetId", sn.id},
      {"State", "available"},
      {"VpcId", vpc.id},
      {"CidrBlock", cidr.str()},
      // AWS keeps five: network, router (.1), DNS (.2), reserved (.3), broadcast.
      {"AvailableIpAddressCount", static_cast<int64_t>(cidr.size()) - 5},
      {"AvailabilityZone", az},
      {"DefaultForAz", default_for_az},
      {"MapPublicIpOnLaunch", default_for_az}};
  PIER_TRY(save(db, s, sn));
  // Every subnet starts associated with the VPC's default network ACL.
  PIER_ASSIGN(auto acls, load_all(db, s, "network-acl", vpc.id));
  for (auto& acl : acls) {
    if (!acl.doc["IsDefault"].as_bool()) continue;
    acl.doc["Associations"].as_array().push_back(json::object{
        {"NetworkAclAssociationId", new_id("aclassoc")}, {"NetworkAclId", acl.id}, {"SubnetId", sn.id}});
    PIER_TRY(save(db, s, acl));
  }
  return sn;
}

Status dry_run(const json::object& in) {
  if (get_bool(in, "DryRun"))
    return Error{ErrorKind::kInvalid, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."};
  return {};
}


Result<std::string> default_vpc_id(Db& db, const Scope& s) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT vpc_id FROM ec2_defaults WHERE account=? AND region=?"));
  st->args(s.account, s.region);
  PIER_ASSIGN(bool row, st->step());
  std::string vpc = row ? st->text(0) : "";
  st->reset();
  return vpc;
}

FilterFields::mapped_type list_field(std::string list, std::string key) {
  return [list, key](const json::object& d) -> std::vector<std::string> {
    std::vector<std::string> out;
    if (const auto* a = get_array(d, list))
      for (const auto& e : *a)
        if (e.is_object()) {
          auto* v = e.as_object().if_contains(key);
          if (v && v->is_string()) out.emplace_back(v->as_string());
          if (v && v->is_bool()) out.emplace_back(v->as_bool() ? "true" : "false");
        }
    return out;
  };
}

void derive_permissions(json::object& g) {
  // One IpPermission per (protocol, ports), its peers listed under it, in
  // the order the rules were added — as DescribeSecurityGroups shows them.
  for (bool egress : {false, true}) {
    json::array perms;
    std::map<std::tuple<std::string, int64_t, int64_t>, size_t> at;
    for (const auto& r : g["_Rules"].as_array()) {
      const auto& o = r.as_object();
      if (o.at("IsEgress").as_bool() != egress) continue;
      auto key = std::tuple{get_string(o, "IpProtocol"), o.at("FromPort").as_int64(), o.at("ToPort").as_int64()};
      auto it = at.find(key);
      if (it == at.end()) {
        json::object p{{"IpProtocol", std::get<0>(key)}, {"IpRanges", json::array()}, {"Ipv6Ranges", json::array()},
                       {"PrefixListIds", json::array()}, {"UserIdGroupPairs", json::array()}};
        if (std::get<0>(key) != "-1") {
          p["FromPort"] = std::get<1>(key);
          p["ToPort"] = std::get<2>(key);
        }
        perms.push_back(std::move(p));
        it = at.emplace(key, perms.size() - 1).first;
      }
      auto& p = perms[it->second].as_object();
      std::string desc = get_string(o, "Description");
      if (o.contains("CidrIpv4")) {
        json::object range{{"CidrIp", o.at("CidrIpv4")}};
        if (!desc.empty()) range["Description"] = desc;
        p["IpRanges"].as_array().push_back(std::move(range));
      } else {
        json::object pair{{"GroupId", o.at("ReferencedGroupId")}, {"UserId", g["OwnerId"]}};
        if (!desc.empty()) pair["Description"] = desc;
        p["UserIdGroupPairs"].as_array().push_back(std::move(pair));
      }
    }
    g[egress ? "IpPermissionsEgress" : "IpPermissions"] = std::move(perms);
  }
}

}  // namespace pier::svc::ec2
