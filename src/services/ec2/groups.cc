// Security groups: Create/Describe/Delete, Authorize/Revoke for ingress and
// egress (CIDR and source-group peers, IpPermissions or the older top-level
// members), DescribeSecurityGroupRules. Each rule is kept on its own (an id,
// a direction, a protocol, ports and one peer), which is what AWS's rule API
// shows and what the network controller turns into nftables rules.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "services/ec2/helpers.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using aws::RequestContext;
using store::Db;

namespace {

// "tcp", "6" → "tcp"; "-1", "all" → "-1"; other numbers stay numbers.
Result<std::string> protocol(std::string p) {
  for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (p == "tcp" || p == "6") return std::string("tcp");
  if (p == "udp" || p == "17") return std::string("udp");
  if (p == "icmp" || p == "1") return std::string("icmp");
  if (p == "-1" || p == "all") return std::string("-1");
  if (!p.empty() && p.size() <= 3 && p.find_first_not_of("0123456789") == std::string::npos && std::stoi(p) <= 255)
    return p;
  return invalid("InvalidParameterValue", fmt::format("Invalid value '{}' for IP protocol. Unknown protocol.", p));
}

// The rules one Authorize/Revoke call names, without ids.
Result<json::array> requested_rules(Db& db, const Scope& s, const Object& group, const json::object& in, bool egress) {
  json::array perms;
  if (const auto* p = get_array(in, "IpPermissions")) perms = *p;
  // The older form: one permission in top-level members.
  if (in.contains("IpProtocol") || in.contains("CidrIp") || in.contains("SourceSecurityGroupName")) {
    json::object p{{"IpProtocol", get_string(in, "IpProtocol", "-1")}};
    if (auto f = get_int(in, "FromPort")) p["FromPort"] = *f;
    if (auto t = get_int(in, "ToPort")) p["ToPort"] = *t;
    if (in.contains("CidrIp")) p["IpRanges"] = json::array{json::object{{"CidrIp", in.at("CidrIp")}}};
    if (std::string name = get_string(in, "SourceSecurityGroupName"); !name.empty()) {
      PIER_ASSIGN(auto groups, load_all(db, s, "security-group", group.vpc_id));
      std::string id;
      for (const auto& g : groups)
        if (get_string(g.doc, "GroupName") == name) id = g.id;
      if (id.empty()) return invalid("InvalidGroup.NotFound", fmt::format("The security group '{}' does not exist", name));
      p["UserIdGroupPairs"] = json::array{json::object{{"GroupId", id}}};
    }
    perms.push_back(std::move(p));
  }
  if (perms.empty()) return invalid("MissingParameter", "No permissions were specified (IpPermissions).");
  json::array rules;
  for (const auto& pv : perms) {
    if (!pv.is_object()) continue;
    const auto& p = pv.as_object();
    PIER_ASSIGN(std::string proto, protocol(get_string(p, "IpProtocol")));
    int64_t from = get_int(p, "FromPort").value_or(-1), to = get_int(p, "ToPort").value_or(-1);
    if (proto == "-1") {
      from = to = -1;
    } else if (proto == "tcp" || proto == "udp") {
      if (!p.contains("FromPort") || !p.contains("ToPort"))
        return invalid("InvalidParameterValue", "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange");
      if (from < 0 || to > 65535 || from > to)
        return invalid("InvalidParameterValue",
                       fmt::format("Invalid value 'from port {} to port {}' for portRange. The ports must be 0 to 65535, from <= to.", from, to));
    } else if (proto == "icmp") {
      if (from < -1 || from > 255 || to < -1 || to > 255)
        return invalid("InvalidParameterValue", fmt::format("Invalid value '{}' for ICMP type or code.", from));
    }
    auto base = [&] {
      return json::object{{"IsEgress", egress}, {"IpProtocol", proto}, {"FromPort", from}, {"ToPort", to}};
    };
    size_t before = rules.size();
    if (const auto* ranges = get_array(p, "IpRanges"))
      for (const auto& r : *ranges) {
        std::string text = get_string(r.as_object(), "CidrIp");
        auto c = Cidr::parse(text);
        if (!c)
          return invalid("InvalidParameterValue", fmt::format("CIDR block {} is malformed", text));
        auto rule = base();
        rule["CidrIpv4"] = c->str();
        if (std::string d = get_string(r.as_object(), "Description"); !d.empty()) rule["Description"] = d;
        rules.push_back(std::move(rule));
      }
    if (const auto* pairs = get_array(p, "UserIdGroupPairs"))
      for (const auto& g : *pairs) {
        std::string id = get_string(g.as_object(), "GroupId");
        PIER_ASSIGN(auto peer, load(db, s, id));
        if (!peer || peer->type != "security-group")
          return invalid("InvalidGroup.NotFound", fmt::format("The security group '{}' does not exist", id));
        if (peer->vpc_id != group.vpc_id)
          return invalid("InvalidGroup.NotFound",
                         fmt::format("You have specified two resources that belong to different networks."));
        auto rule = base();
        rule["ReferencedGroupId"] = id;
        if (std::string d = get_string(g.as_object(), "Description"); !d.empty()) rule["Description"] = d;
        rules.push_back(std::move(rule));
      }
    if (rules.size() == before)
      return invalid("InvalidParameterValue", "Each permission needs at least one IpRanges or UserIdGroupPairs peer.");
  }
  return rules;
}

bool same_rule(const json::object& a, const json::object& b) {
  for (const char* k : {"IsEgress", "IpProtocol", "FromPort", "ToPort", "CidrIpv4", "ReferencedGroupId"}) {
    const auto* x = a.if_contains(k);
    const auto* y = b.if_contains(k);
    if ((x == nullptr) != (y == nullptr) || (x && *x != *y)) return false;
  }
  return true;
}

std::string describe_rule(const json::object& r) {
  std::string peer = r.contains("CidrIpv4") ? get_string(r, "CidrIpv4") : get_string(r, "ReferencedGroupId");
  std::string proto = get_string(r, "IpProtocol");
  for (auto& c : proto) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return fmt::format("peer: {}, {}, from port: {}, to port: {}, ALLOW", peer, proto == "-1" ? "ALL" : proto,
                     r.at("FromPort").as_int64(), r.at("ToPort").as_int64());
}

// The rule as SecurityGroupRule shows it.
json::object rule_view(const Scope& s, const Object& g, const json::object& r) {
  json::object v{{"SecurityGroupRuleId", r.at("SecurityGroupRuleId")},
                 {"GroupId", g.id},
                 {"GroupOwnerId", s.account},
                 {"IsEgress", r.at("IsEgress")},
                 {"IpProtocol", r.at("IpProtocol")},
                 {"FromPort", r.at("FromPort")},
                 {"ToPort", r.at("ToPort")},
                 {"Tags", json::array()},
                 {"SecurityGroupRuleArn", fmt::format("arn:aws:ec2:{}:{}:security-group-rule/{}", s.region, s.account,
                                                      get_string(r, "SecurityGroupRuleId"))}};
  if (r.contains("CidrIpv4")) v["CidrIpv4"] = r.at("CidrIpv4");
  if (r.contains("ReferencedGroupId"))
    v["ReferencedGroupInfo"] = json::object{{"GroupId", r.at("ReferencedGroupId")}, {"UserId", s.account}};
  if (r.contains("Description")) v["Description"] = r.at("Description");
  return v;
}

Result<Object> group_of(Db& db, const Scope& s, const json::object& in) {
  std::string id = get_string(in, "GroupId");
  if (!id.empty()) return find(db, s, id, "security-group", "InvalidGroup.NotFound", "security group");
  std::string name = get_string(in, "GroupName");
  if (name.empty()) return invalid("MissingParameter", "The request must contain the parameter groupId");
  // By name: in the default VPC, as on AWS.
  PIER_ASSIGN(std::string vpc, default_vpc_id(db, s));
  PIER_ASSIGN(auto groups, load_all(db, s, "security-group", vpc));
  for (auto& g : groups)
    if (!vpc.empty() && get_string(g.doc, "GroupName") == name) return std::move(g);
  return invalid("InvalidGroup.NotFound", fmt::format("The security group '{}' does not exist in default VPC '{}'", name, vpc));
}

}  // namespace

void add_security_group_actions(const AddAction& add, store::Store& store) {
  add("CreateSecurityGroup", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string name = get_string(in, "GroupName"), desc = get_string(in, "Description");
    if (name.empty()) return invalid("MissingParameter", "The request must contain the parameter groupName");
    if (desc.empty()) return invalid("MissingParameter", "The request must contain the parameter groupDescription");
    if (name.size() > 255 || desc.size() > 255)
      return invalid("InvalidParameterValue", "Group names and descriptions are at most 255 characters long.");
    if (name.starts_with("sg-"))
      return invalid("InvalidParameterValue", fmt::format("Invalid value '{}' for groupName. Group names may not be in the format sg-*.", name));
    auto tags = spec_tags(in, "security-group");
    PIER_TRY(check_tags(tags));
    return store.write([&](Db& db) -> Result<json::object> {
      std::string vpc_id = get_string(in, "VpcId");
      if (vpc_id.empty()) {
        PIER_ASSIGN(vpc_id, default_vpc_id(db, s));
        if (vpc_id.empty()) return invalid("VPCIdNotSpecified", "No default VPC for this user");
      }
      PIER_TRY(find(db, s, vpc_id, "vpc", "InvalidVpcID.NotFound", "vpc"));
      PIER_ASSIGN(auto groups, load_all(db, s, "security-group", vpc_id));
      for (const auto& g : groups)
        if (get_string(g.doc, "GroupName") == name)
          return invalid("InvalidGroup.Duplicate", fmt::format("The security group '{}' already exists for VPC '{}'", name, vpc_id));
      Object g;
      g.id = new_id("sg");
      g.type = "security-group";
      g.vpc_id = vpc_id;
      std::string arn = fmt::format("arn:aws:ec2:{}:{}:security-group/{}", s.region, s.account, g.id);
      g.doc = json::object{{"GroupId", g.id}, {"GroupName", name}, {"Description", desc}, {"VpcId", vpc_id},
                           {"OwnerId", s.account}, {"SecurityGroupArn", arn},
                           // AWS gives every new group the rule that lets everything out.
                           {"_Rules", json::array{json::object{{"SecurityGroupRuleId", new_id("sgr")}, {"IsEgress", true},
                                                               {"IpProtocol", "-1"}, {"FromPort", -1}, {"ToPort", -1},
                                                               {"CidrIpv4", "0.0.0.0/0"}}}}};
      derive_permissions(g.doc);
      PIER_TRY(save(db, s, g));
      PIER_TRY(put_tags(db, s, g.id, tags));
      PIER_ASSIGN(auto t, tags_of(db, s, g.id));
      return json::object{{"GroupId", g.id}, {"Tags", t}, {"SecurityGroupArn", arn}};
    });
  });

  add("DeleteSecurityGroup", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id;
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto g, group_of(db, s, in));
      id = g.id;
      if (get_string(g.doc, "GroupName") == "default")
        return invalid("CannotDelete", fmt::format("the specified group: \"{}\" name: \"default\" cannot be deleted by a user", id));
      PIER_ASSIGN(auto groups, load_all(db, s, "security-group", g.vpc_id));
      for (const auto& other : groups) {
        if (other.id == id) continue;
        for (const auto& r : other.doc.at("_Rules").as_array())
          if (get_string(r.as_object(), "ReferencedGroupId") == id)
            return invalid("DependencyViolation", fmt::format("resource {} has a dependent object", id));
      }
      PIER_ASSIGN(auto enis, load_all(db, s, "network-interface", g.vpc_id));
      for (const auto& e : enis)
        for (const auto& gr : e.doc.at("Groups").as_array())
          if (get_string(gr.as_object(), "GroupId") == id)
            return invalid("DependencyViolation", fmt::format("resource {} has a dependent object", id));
      return erase(db, s, id);
    }));
    return json::object{{"Return", true}, {"GroupId", id}};
  });

  for (bool egress : {false, true}) {
    add(egress ? "AuthorizeSecurityGroupEgress" : "AuthorizeSecurityGroupIngress",
        [&store, egress](RequestContext& ctx, json::object& in) -> Result<json::object> {
          Scope s = scope(ctx);
          json::array added;
          PIER_TRY(store.write([&](Db& db) -> Status {
            PIER_ASSIGN(auto g, group_of(db, s, in));
            PIER_ASSIGN(auto rules, requested_rules(db, s, g, in, egress));
            auto& have = g.doc["_Rules"].as_array();
            for (auto& r : rules) {
              for (const auto& h : have)
                if (same_rule(h.as_object(), r.as_object()))
                  return invalid("InvalidPermission.Duplicate",
                                 fmt::format("the specified rule \"{}\" already exists", describe_rule(r.as_object())));
              r.as_object()["SecurityGroupRuleId"] = new_id("sgr");
              have.push_back(r);
              added.push_back(rule_view(s, g, r.as_object()));
            }
            derive_permissions(g.doc);
            return save(db, s, g);
          }));
          return json::object{{"Return", true}, {"SecurityGroupRules", added}};
        });
    add(egress ? "RevokeSecurityGroupEgress" : "RevokeSecurityGroupIngress",
        [&store, egress](RequestContext& ctx, json::object& in) -> Result<json::object> {
          Scope s = scope(ctx);
          json::array revoked;
          PIER_TRY(store.write([&](Db& db) -> Status {
            PIER_ASSIGN(auto g, group_of(db, s, in));
            auto& have = g.doc["_Rules"].as_array();
            std::vector<size_t> gone;
            auto ids = get_strings(in, "SecurityGroupRuleIds");
            if (!ids.empty()) {
              for (const auto& id : ids) {
                size_t i = 0;
                while (i < have.size() && (get_string(have[i].as_object(), "SecurityGroupRuleId") != id ||
                                           have[i].as_object().at("IsEgress").as_bool() != egress))
                  ++i;
                if (i == have.size())
                  return invalid("InvalidSecurityGroupRuleId.NotFound",
                                 fmt::format("The security group rule ID '{}' does not exist", id));
                gone.push_back(i);
              }
            } else {
              PIER_ASSIGN(auto rules, requested_rules(db, s, g, in, egress));
              for (const auto& r : rules) {
                size_t i = 0;
                while (i < have.size() && !same_rule(have[i].as_object(), r.as_object())) ++i;
                if (i == have.size())
                  return invalid("InvalidPermission.NotFound", "The specified rule does not exist in this security group.");
                gone.push_back(i);
              }
            }
            std::sort(gone.begin(), gone.end());
            gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
            for (auto it = gone.rbegin(); it != gone.rend(); ++it) {
              auto v = rule_view(s, g, have[*it].as_object());
              json::object r{{"SecurityGroupRuleId", v["SecurityGroupRuleId"]}, {"GroupId", g.id},
                             {"IsEgress", v["IsEgress"]}, {"IpProtocol", v["IpProtocol"]},
                             {"FromPort", v["FromPort"]}, {"ToPort", v["ToPort"]}};
              if (v.contains("CidrIpv4")) r["CidrIpv4"] = v["CidrIpv4"];
              if (v.contains("ReferencedGroupInfo")) r["ReferencedGroupId"] = v["ReferencedGroupInfo"].as_object()["GroupId"];
              revoked.push_back(std::move(r));
              have.erase(have.begin() + static_cast<std::ptrdiff_t>(*it));
            }
            derive_permissions(g.doc);
            return save(db, s, g);
          }));
          return json::object{{"Return", true}, {"RevokedSecurityGroupRules", revoked}};
        });
  }

  FilterFields group_fields{{"group-id", field("GroupId")}, {"group-name", field("GroupName")},
                            {"vpc-id", field("VpcId")}, {"owner-id", field("OwnerId")},
                            {"description", field("Description")}};
  add("DescribeSecurityGroups", [&store, group_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "security-group", get_strings(in, "GroupIds"),
                                      "InvalidGroup.NotFound", "security group", in, group_fields));
      // GroupNames select within the default VPC, as on AWS.
      auto names = get_strings(in, "GroupNames");
      if (!names.empty()) {
        PIER_ASSIGN(std::string vpc, default_vpc_id(db, s));
        json::array picked;
        for (const auto& n : names) {
          bool found = false;
          for (const auto& g : list)
            if (get_string(g.as_object(), "GroupName") == n && get_string(g.as_object(), "VpcId") == vpc) {
              picked.push_back(g);
              found = true;
            }
          if (!found)
            return invalid("InvalidGroup.NotFound", fmt::format("The security group '{}' does not exist in default VPC '{}'", n, vpc));
        }
        list = std::move(picked);
      }
      return json::object{{"SecurityGroups", list}};
    });
  });

  FilterFields rule_fields{{"group-id", field("GroupId")}, {"security-group-rule-id", field("SecurityGroupRuleId")},
                           {"is-egress", field("IsEgress")}};
  add("DescribeSecurityGroupRules", [&store, rule_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_TRY(check_filters(in, rule_fields));
    auto ids = get_strings(in, "SecurityGroupRuleIds");
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto groups, load_all(db, s, "security-group"));
      json::array out;
      std::set<std::string> seen;
      for (const auto& g : groups)
        for (const auto& r : g.doc.at("_Rules").as_array()) {
          auto v = rule_view(s, g, r.as_object());
          std::string id = get_string(v, "SecurityGroupRuleId");
          if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
          seen.insert(id);
          if (matches(in, rule_fields, v)) out.push_back(std::move(v));
        }
      for (const auto& id : ids)
        if (!seen.count(id))
          return invalid("InvalidSecurityGroupRuleId.NotFound", fmt::format("The security group rule ID '{}' does not exist", id));
      return json::object{{"SecurityGroupRules", out}};
    });
  });
}

}  // namespace pier::svc::ec2
