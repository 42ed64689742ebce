#include "services/ec2/ec2.h"

#include <fmt/format.h>

#include <mutex>
#include <set>

#include "common/ids.h"
#include "services/ec2/cidr.h"
#include "services/ec2/helpers.h"
#include "services/ec2/objects.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using aws::RequestContext;
using store::Db;

std::vector<std::string> zone_names(const std::string& region) {
  std::vector<std::string> out;
  for (char c = 'a'; c <= 'f'; ++c) out.push_back(region + c);
  return out;
}


Ec2Service::Ec2Service(store::Store& store, std::function<void()> on_change)
    : store_(store), on_change_(std::move(on_change)) {}

aws::ServiceDef Ec2Service::definition() {
  aws::ServiceDef def;
  def.model_id = "ec2";

  // A new account has a default VPC in every region it uses (172.31.0.0/16,
  // a /20 per zone, an attached internet gateway and a default route to it).
  auto defaults_made = std::make_shared<std::pair<std::mutex, std::set<std::string>>>();
  auto ensure_default_vpc = [this, defaults_made](const RequestContext& ctx) -> Status {
    Scope s = scope(ctx);
    std::string key = s.account + "/" + s.region;
    {
      std::lock_guard lock(defaults_made->first);
      if (defaults_made->second.count(key)) return {};
    }
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto* st, db.prepare("SELECT 1 FROM ec2_defaults WHERE account=? AND region=?"));
      st->args(s.account, s.region);
      PIER_ASSIGN(bool made, st->step());
      st->reset();
      if (made) return {};
      PIER_ASSIGN(auto m, make_vpc(db, s, *Cidr::parse("172.31.0.0/16"), true, "default"));
      int i = 0;
      for (const auto& az : zone_names(s.region)) {
        Cidr c{Cidr::parse("172.31.0.0/16")->base + static_cast<uint32_t>(i++) * 4096u, 20};
        PIER_TRY(make_subnet(db, s, m.vpc, c, az, true));
      }
      Object igw;
      igw.id = new_id("igw");
      igw.type = "internet-gateway";
      igw.vpc_id = m.vpc.id;
      igw.doc = json::object{{"Attachments", json::array{json::object{{"State", "available"}, {"VpcId", m.vpc.id}}}},
                             {"InternetGatewayId", igw.id}, {"OwnerId", s.account}};
      PIER_TRY(save(db, s, igw));
      m.route_table.doc["Routes"].as_array().push_back(json::object{
          {"DestinationCidrBlock", "0.0.0.0/0"}, {"GatewayId", igw.id}, {"Origin", "CreateRoute"}, {"State", "active"}});
      PIER_TRY(save(db, s, m.route_table));
      PIER_ASSIGN(auto* ins, db.prepare("INSERT INTO ec2_defaults (account, region, vpc_id) VALUES (?,?,?)"));
      return ins->args(s.account, s.region, m.vpc.id).run();
    }));
    std::lock_guard lock(defaults_made->first);
    defaults_made->second.insert(key);
    return {};
  };
  // Every action: the default VPC first, then the handler.
  auto add = [&](std::string name, aws::Handler h) {
    bool reads = name.starts_with("Describe");
    def.actions.push_back({std::move(name), [this, reads, h = std::move(h), ensure_default_vpc](
                                                RequestContext& ctx, json::object& in) -> Result<json::object> {
      PIER_TRY(ensure_default_vpc(ctx));
      PIER_TRY(dry_run(in));
      auto r = h(ctx, in);
      if ((!reads || ctx.action == "DescribeVpcs") && on_change_) on_change_();  // (the default VPC may be new)
      return r;
    }});
  };

  // ------------------------------------------------------------ regions, zones
  add("DescribeRegions", [](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::vector<std::string> names = {"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1",
                                      "eu-central-1", "ap-northeast-1", "ap-southeast-1", "ap-southeast-2"};
    if (std::find(names.begin(), names.end(), ctx.region) == names.end()) names.push_back(ctx.region);
    auto wanted = get_strings(in, "RegionNames");
    FilterFields fields{{"region-name", field("RegionName")}, {"endpoint", field("Endpoint")},
                        {"opt-in-status", field("OptInStatus")}};
    PIER_TRY(check_filters(in, fields));
    json::array out;
    for (const auto& w : wanted)
      if (std::find(names.begin(), names.end(), w) == names.end())
        return invalid("InvalidParameterValue", fmt::format("Invalid region: {}", w));
    for (const auto& n : names) {
      if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), n) == wanted.end()) continue;
      json::object r{{"Endpoint", fmt::format("ec2.{}.amazonaws.com", n)}, {"RegionName", n},
                     {"OptInStatus", "opt-in-not-required"}};
      if (matches(in, fields, r)) out.push_back(std::move(r));
    }
    return json::object{{"Regions", out}};
  });

  add("DescribeAvailabilityZones", [](RequestContext& ctx, json::object& in) -> Result<json::object> {
    FilterFields fields{{"zone-name", field("ZoneName")}, {"zone-id", field("ZoneId")},
                        {"region-name", field("RegionName")}, {"state", field("State")},
                        {"zone-type", field("ZoneType")}, {"opt-in-status", field("OptInStatus")},
                        {"group-name", field("GroupName")}};
    PIER_TRY(check_filters(in, fields));
    auto names = get_strings(in, "ZoneNames"), zids = get_strings(in, "ZoneIds");
    auto all = zone_names(ctx.region);
    for (const auto& n : names)
      if (std::find(all.begin(), all.end(), n) == all.end())
        return invalid("InvalidParameterValue", fmt::format("Invalid availability zone: [{}]", n));
    json::array out;
    for (const auto& z : all) {
      json::object o{{"OptInStatus", "opt-in-not-required"}, {"Messages", json::array()},
                     {"RegionName", ctx.region}, {"ZoneName", z}, {"ZoneId", zone_id(ctx.region, z.back())},
                     {"GroupName", ctx.region}, {"NetworkBorderGroup", ctx.region},
                     {"ZoneType", "availability-zone"}, {"State", "available"}};
      if (!names.empty() && std::find(names.begin(), names.end(), z) == names.end()) continue;
      if (!zids.empty() && std::find(zids.begin(), zids.end(), get_string(o, "ZoneId")) == zids.end()) continue;
      if (matches(in, fields, o)) out.push_back(std::move(o));
    }
    return json::object{{"AvailabilityZones", out}};
  });

  // ----------------------------------------------------------------------- VPCs
  add("CreateVpc", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string text = get_string(in, "CidrBlock");
    if (text.empty()) return Error::invalid("MissingParameter", "Either 'cidrBlock' or 'ipv4IpamPoolId' should be provided.");
    auto cidr = Cidr::parse(text);
    if (!cidr)
      return invalid("InvalidParameterValue",
                     fmt::format("Value ({}) for parameter cidrBlock is invalid. This is not a valid CIDR block.", text));
    if (cidr->prefix < 16 || cidr->prefix > 28) return invalid("InvalidVpc.Range", fmt::format("The CIDR '{}' is invalid.", text));
    std::string tenancy = get_string(in, "InstanceTenancy", "default");
    if (tenancy != "default" && tenancy != "dedicated")
      return invalid("InvalidParameterValue", fmt::format("Value ({}) for parameter instanceTenancy is invalid.", tenancy));
    auto tags = spec_tags(in, "vpc");
    PIER_TRY(check_tags(tags));
    Scope s = scope(ctx);
    return store_.write([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto m, make_vpc(db, s, *cidr, false, tenancy));
      PIER_TRY(put_tags(db, s, m.vpc.id, tags));
      return json::object{{"Vpc", with_tags(db, s, m.vpc)}};
    });
  });

  FilterFields vpc_fields{{"vpc-id", field("VpcId")}, {"cidr", field("CidrBlock")},
                          {"cidr-block-association.cidr-block", field("CidrBlock")},
                          {"state", field("State")}, {"is-default", field("IsDefault")},
                          {"owner-id", field("OwnerId")}, {"dhcp-options-id", field("DhcpOptionsId")}};
  add("DescribeVpcs", [this, vpc_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "vpc", get_strings(in, "VpcIds"), "InvalidVpcID.NotFound", "vpc", in, vpc_fields));
      return json::object{{"Vpcs", list}};
    });
  });

  add("DescribeVpcAttribute", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string attr = get_string(in, "Attribute"), id = get_string(in, "VpcId");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto vpc, find(db, s, id, "vpc", "InvalidVpcID.NotFound", "vpc"));
      json::object out{{"VpcId", id}};
      std::string member = attr.empty() ? "" : std::string(1, static_cast<char>(std::toupper(attr[0]))) + attr.substr(1);
      if (!vpc.doc.contains("_" + member))
        return invalid("InvalidParameterValue", fmt::format("Value ({}) for parameter attribute is invalid. Unknown attribute.", attr));
      out[member] = json::object{{"Value", vpc.doc["_" + member]}};
      return out;
    });
  });

  add("ModifyVpcAttribute", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "VpcId");
    std::vector<std::pair<std::string, bool>> changes;
    for (std::string m : {"EnableDnsSupport", "EnableDnsHostnames", "EnableNetworkAddressUsageMetrics"})
      if (auto* v = in.if_contains(m); v && v->is_object())
        changes.emplace_back(m, get_bool(v->as_object(), "Value"));
    // One attribute per call, as AWS insists.
    if (changes.size() != 1)
      return invalid("InvalidParameterCombination", "Fields for multiple attribute types specified: " +
                                                         std::to_string(changes.size()));
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto vpc, find(db, s, id, "vpc", "InvalidVpcID.NotFound", "vpc"));
      auto [name, value] = changes[0];
      if (name == "EnableDnsHostnames" && value && !vpc.doc["_EnableDnsSupport"].as_bool())
        return invalid("InvalidParameterValue", "enableDnsHostnames cannot be enabled while enableDnsSupport is disabled");
      vpc.doc["_" + name] = value;
      return save(db, s, vpc);
    }));
    return json::object{};
  });

  add("DeleteVpc", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "VpcId");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto vpc, find(db, s, id, "vpc", "InvalidVpcID.NotFound", "vpc"));
      auto dependency = invalid("DependencyViolation", fmt::format("The vpc '{}' has dependencies and cannot be deleted.", id));
      // What AWS deletes with the VPC: its main route table, default group and ACL.
      std::vector<std::string> owned;
      for (const std::string type : {"subnet", "internet-gateway", "route-table", "security-group", "network-acl",
                                     "nat-gateway", "vpc-endpoint", "network-interface"}) {
        PIER_ASSIGN(auto objs, load_all(db, s, type, id));
        for (auto& o : objs) {
          bool main_rtb = type == "route-table" && o.doc["Associations"].as_array().size() == 1 &&
                          o.doc["Associations"].as_array()[0].as_object()["Main"].as_bool();
          bool default_sg = type == "security-group" && get_string(o.doc, "GroupName") == "default";
          bool default_acl = type == "network-acl" && o.doc["IsDefault"].as_bool();
          if (!main_rtb && !default_sg && !default_acl) return dependency;
          owned.push_back(o.id);
        }
      }
      for (const auto& o : owned) PIER_TRY(erase(db, s, o));
      if (vpc.doc["IsDefault"].as_bool()) {
        PIER_ASSIGN(auto* st, db.prepare("UPDATE ec2_defaults SET vpc_id='' WHERE account=? AND region=?"));
        PIER_TRY(st->args(s.account, s.region).run());
      }
      return erase(db, s, id);
    }));
    return json::object{};
  });

  // -------------------------------------------------------------------- subnets
  add("CreateSubnet", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string text = get_string(in, "CidrBlock"), vpc_id = get_string(in, "VpcId");
    auto cidr = Cidr::parse(text);
    if (!cidr)
      return invalid("InvalidParameterValue",
                     fmt::format("Value ({}) for parameter cidrBlock is invalid. This is not a valid CIDR block.", text));
    auto zones = zone_names(ctx.region);
    std::string az = get_string(in, "AvailabilityZone");
    if (std::string zid = get_string(in, "AvailabilityZoneId"); az.empty() && !zid.empty()) {
      for (const auto& z : zones)
        if (zone_id(ctx.region, z.back()) == zid) az = z;
      if (az.empty())
        return invalid("InvalidParameterValue", fmt::format("Value ({}) for parameter availabilityZoneId is invalid.", zid));
    }
    if (az.empty()) az = zones.front();
    if (std::find(zones.begin(), zones.end(), az) == zones.end()) {
      std::string list;
      for (const auto& z : zones) list += (list.empty() ? "" : ", ") + z;
      return invalid("InvalidParameterValue",
                     fmt::format("Value ({}) for parameter availabilityZone is invalid. Subnets can currently only be "
                                 "created in the following availability zones: {}.", az, list));
    }
    auto tags = spec_tags(in, "subnet");
    PIER_TRY(check_tags(tags));
    return store_.write([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto vpc, find(db, s, vpc_id, "vpc", "InvalidVpcID.NotFound", "vpc"));
      auto vcidr = Cidr::parse(get_string(vpc.doc, "CidrBlock"));
      if (!vcidr || !vcidr->contains(*cidr) || cidr->prefix > 28)
        return invalid("InvalidSubnet.Range", fmt::format("The CIDR '{}' is invalid.", text));
      PIER_ASSIGN(auto siblings, load_all(db, s, "subnet", vpc_id));
      for (const auto& o : siblings)
        if (auto c = Cidr::parse(get_string(o.doc, "CidrBlock")); c && c->overlaps(*cidr))
          return invalid("InvalidSubnet.Conflict", fmt::format("The CIDR '{}' conflicts with another subnet", text));
      PIER_ASSIGN(auto sn, make_subnet(db, s, vpc, *cidr, az, false));
      PIER_TRY(put_tags(db, s, sn.id, tags));
      return json::object{{"Subnet", with_tags(db, s, sn)}};
    });
  });

  FilterFields subnet_fields{{"subnet-id", field("SubnetId")}, {"vpc-id", field("VpcId")},
                             {"cidr-block", field("CidrBlock")}, {"cidr", field("CidrBlock")},
                             {"cidrBlock", field("CidrBlock")}, {"availability-zone", field("AvailabilityZone")},
                             {"availability-zone-id", field("AvailabilityZoneId")},
                             {"availabilityZone", field("AvailabilityZone")}, {"state", field("State")},
                             {"default-for-az", field("DefaultForAz")}, {"defaultForAz", field("DefaultForAz")},
                             {"map-public-ip-on-launch", field("MapPublicIpOnLaunch")},
                             {"owner-id", field("OwnerId")}, {"subnet-arn", field("SubnetArn")},
                             {"available-ip-address-count", field("AvailableIpAddressCount")}};
  add("DescribeSubnets", [this, subnet_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "subnet", get_strings(in, "SubnetIds"), "InvalidSubnetID.NotFound",
                                      "subnet", in, subnet_fields));
      return json::object{{"Subnets", list}};
    });
  });

  add("DeleteSubnet", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "SubnetId");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto sn, find(db, s, id, "subnet", "InvalidSubnetID.NotFound", "subnet"));
      for (const std::string type : {"network-interface", "nat-gateway"}) {
        PIER_ASSIGN(auto objs, load_all(db, s, type, sn.vpc_id));
        for (const auto& o : objs)
          if (get_string(o.doc, "SubnetId") == id)
            return invalid("DependencyViolation", fmt::format("The subnet '{}' has dependencies and cannot be deleted.", id));
      }
      // Its associations go with it.
      for (const std::string type : {"network-acl", "route-table"}) {
        PIER_ASSIGN(auto objs, load_all(db, s, type, sn.vpc_id));
        for (auto& o : objs) {
          auto& assoc = o.doc["Associations"].as_array();
          auto before = assoc.size();
          assoc.erase(std::remove_if(assoc.begin(), assoc.end(),
                                     [&](const json::value& a) { return get_string(a.as_object(), "SubnetId") == id; }),
                      assoc.end());
          if (assoc.size() != before) PIER_TRY(save(db, s, o));
        }
      }
      return erase(db, s, id);
    }));
    return json::object{};
  });

  // ---------------------------------------------------------- internet gateways
  add("CreateInternetGateway", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    auto tags = spec_tags(in, "internet-gateway");
    PIER_TRY(check_tags(tags));
    return store_.write([&](Db& db) -> Result<json::object> {
      Object igw;
      igw.id = new_id("igw");
      igw.type = "internet-gateway";
      igw.doc = json::object{{"Attachments", json::array()}, {"InternetGatewayId", igw.id}, {"OwnerId", s.account}};
      PIER_TRY(save(db, s, igw));
      PIER_TRY(put_tags(db, s, igw.id, tags));
      return json::object{{"InternetGateway", with_tags(db, s, igw)}};
    });
  });

  auto igw_find = [](Db& db, const Scope& s, const std::string& id) {
    return find(db, s, id, "internet-gateway", "InvalidInternetGatewayID.NotFound", "internetGateway");
  };
  add("AttachInternetGateway", [this, igw_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "InternetGatewayId"), vpc_id = get_string(in, "VpcId");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto igw, igw_find(db, s, id));
      PIER_TRY(find(db, s, vpc_id, "vpc", "InvalidVpcID.NotFound", "vpc"));
      if (!igw.vpc_id.empty())
        return invalid("Resource.AlreadyAssociated", fmt::format("resource {} is already attached to network {}", id, igw.vpc_id));
      PIER_ASSIGN(auto others, load_all(db, s, "internet-gateway", vpc_id));
      if (!others.empty())
        return invalid("InvalidParameterValue", fmt::format("Network {} already has an internet gateway attached", vpc_id));
      igw.vpc_id = vpc_id;
      igw.doc["Attachments"] = json::array{json::object{{"State", "available"}, {"VpcId", vpc_id}}};
      return save(db, s, igw);
    }));
    return json::object{};
  });

  add("DetachInternetGateway", [this, igw_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "InternetGatewayId"), vpc_id = get_string(in, "VpcId");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      if (vpc_id.empty()) return invalid("MissingParameter", "The request must contain the parameter vpcId");
      PIER_ASSIGN(auto igw, igw_find(db, s, id));
      if (igw.vpc_id != vpc_id)
        return invalid("Gateway.NotAttached", fmt::format("resource {} is not attached to network {}", id, vpc_id));
      PIER_ASSIGN(auto eips, load_all(db, s, "elastic-ip"));
      for (const auto& a : eips) {
        std::string eni = get_string(a.doc, "NetworkInterfaceId");
        if (eni.empty()) continue;
        PIER_ASSIGN(auto e, load(db, s, eni));
        if (e && e->vpc_id == vpc_id)
          return invalid("DependencyViolation", fmt::format("Network {} has some mapped public address(es). Please unmap "
                                                            "those public address(es) before detaching the gateway.", vpc_id));
      }
      // Routes through it stay, blackholed, as on AWS.
      PIER_ASSIGN(auto tables, load_all(db, s, "route-table", vpc_id));
      for (auto& t : tables) {
        bool changed = false;
        for (auto& r : t.doc["Routes"].as_array())
          if (get_string(r.as_object(), "GatewayId") == id) {
            r.as_object()["State"] = "blackhole";
            changed = true;
          }
        if (changed) PIER_TRY(save(db, s, t));
      }
      igw.vpc_id.clear();
      igw.doc["Attachments"] = json::array();
      return save(db, s, igw);
    }));
    return json::object{};
  });

  add("DeleteInternetGateway", [this, igw_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "InternetGatewayId");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto igw, igw_find(db, s, id));
      if (!igw.vpc_id.empty())
        return invalid("DependencyViolation", fmt::format("The internetGateway '{}' has dependencies and cannot be deleted.", id));
      return erase(db, s, id);
    }));
    return json::object{};
  });

  FilterFields igw_fields{{"internet-gateway-id", field("InternetGatewayId")}, {"owner-id", field("OwnerId")},
                          {"attachment.vpc-id", list_field("Attachments", "VpcId")},
                          {"attachment.state", list_field("Attachments", "State")}};
  add("DescribeInternetGateways", [this, igw_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "internet-gateway", get_strings(in, "InternetGatewayIds"),
                                      "InvalidInternetGatewayID.NotFound", "internetGateway", in, igw_fields));
      return json::object{{"InternetGateways", list}};
    });
  });

  // ------------------------------------------------------------- network ACLs
  FilterFields acl_fields{{"network-acl-id", field("NetworkAclId")}, {"vpc-id", field("VpcId")},
                          {"default", field("IsDefault")}, {"owner-id", field("OwnerId")},
                          {"association.subnet-id", list_field("Associations", "SubnetId")}};
  add("DescribeNetworkAcls", [this, acl_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "network-acl", get_strings(in, "NetworkAclIds"),
                                      "InvalidNetworkAclID.NotFound", "network ACL", in, acl_fields));
      return json::object{{"NetworkAcls", list}};
    });
  });

  add_route_table_actions(add, store_);
  add_security_group_actions(add, store_);
  add_interface_actions(add, store_);
  add_address_actions(add, store_);
  add_endpoint_actions(add, store_);

  // ----------------------------------------------------------------------- tags
  add("CreateTags", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    const json::array* tags = get_array(in, "Tags");
    json::array none;
    PIER_TRY(check_tags(tags ? *tags : none));
    PIER_TRY(store_.write([&](Db& db) -> Status {
      for (const auto& id : get_strings(in, "Resources")) {
        if (resource_type(id).empty()) return invalid("InvalidID", fmt::format("The ID '{}' is not valid", id));
        PIER_ASSIGN(auto o, load(db, s, id));
        if (!o) return invalid("InvalidID", fmt::format("The ID '{}' is not valid", id));
        PIER_TRY(put_tags(db, s, id, tags ? *tags : none));
      }
      return {};
    }));
    return json::object{};
  });

  add("DeleteTags", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    const json::array* tags = get_array(in, "Tags");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      for (const auto& id : get_strings(in, "Resources")) {
        if (resource_type(id).empty()) return invalid("InvalidID", fmt::format("The ID '{}' is not valid", id));
        PIER_TRY(delete_tags(db, s, id, tags ? *tags : json::array()));
      }
      return {};
    }));
    return json::object{};
  });

  FilterFields tag_fields{{"resource-id", field("ResourceId")}, {"resource-type", field("ResourceType")},
                          {"key", field("Key")}, {"value", field("Value")}};
  add("DescribeTags", [this, tag_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_TRY(check_filters(in, tag_fields));
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto all, all_tags(db, s));
      json::array out;
      for (const auto& [id, k, v] : all) {
        json::object t{{"Key", k}, {"ResourceId", id}, {"ResourceType", resource_type(id)}, {"Value", v}};
        if (matches(in, tag_fields, t)) out.push_back(std::move(t));
      }
      return json::object{{"Tags", out}};
    });
  });

  return def;
}

}  // namespace pier::svc::ec2
