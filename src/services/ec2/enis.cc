// Network interfaces: Create/Describe/Delete. An ENI takes the lowest free
// address of its subnet (AWS keeps the first four and the last) and is
// "pending" until the network controller has made its namespace, then
// "available" — the controller writes that back (set_interface_status).
#include <fmt/format.h>

#include <set>

#include "common/ids.h"
#include "services/ec2/ec2.h"
#include "services/ec2/helpers.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using aws::RequestContext;
using store::Db;

namespace {

std::string mac_address() {
  // Locally administered, unicast, as AWS's 0e:… / 02:… addresses.
  std::string hex = ids::hex_id(10);
  return fmt::format("02:{}:{}:{}:{}:{}", hex.substr(0, 2), hex.substr(2, 2), hex.substr(4, 2), hex.substr(6, 2),
                     hex.substr(8, 2));
}

std::string dns_name(const std::string& region, const std::string& ip) {
  std::string dashed = ip;
  for (auto& c : dashed)
    if (c == '.') c = '-';
  return region == "us-east-1" ? fmt::format("ip-{}.ec2.internal", dashed)
                               : fmt::format("ip-{}.{}.compute.internal", dashed, region);
}

// Addresses in use in a subnet: every ENI's (NAT gateways and endpoints
// hold ENIs of their own).
Result<std::set<std::string>> used_addresses(Db& db, const Scope& s, const Object& subnet) {
  PIER_ASSIGN(auto enis, load_all(db, s, "network-interface", subnet.vpc_id));
  std::set<std::string> used;
  for (const auto& e : enis)
    if (get_string(e.doc, "SubnetId") == subnet.id) used.insert(get_string(e.doc, "PrivateIpAddress"));
  return used;
}

Status adjust_free(Db& db, const Scope& s, Object& subnet, int delta) {
  auto& n = subnet.doc["AvailableIpAddressCount"];
  n = n.as_int64() + delta;
  return save(db, s, subnet);
}

}  // namespace

Result<Object> make_interface(Db& db, const Scope& s, const std::string& subnet_id, const std::vector<std::string>& groups,
                              const std::string& wanted_ip, const std::string& description,
                              const std::string& interface_type) {
  PIER_ASSIGN(auto sn, find(db, s, subnet_id, "subnet", "InvalidSubnetID.NotFound", "subnet"));
  auto cidr = *Cidr::parse(get_string(sn.doc, "CidrBlock"));
  PIER_ASSIGN(auto used, used_addresses(db, s, sn));
  std::string ip = wanted_ip;
  if (!ip.empty()) {
    auto one = Cidr::parse(ip + "/32");
    if (!one || !cidr.contains(*one))
      return invalid("InvalidParameterValue", fmt::format("Address {} does not fall within the subnet's address range", ip));
    uint32_t off = one->base - cidr.base;
    if (off < 4 || one->base == cidr.last())
      return invalid("InvalidParameterValue", fmt::format("Address {} is in subnet's reserved address range", ip));
    ip = one->address(0);  // canonical, as stored and compared
    if (used.count(ip))
      return invalid("InvalidIPAddress.InUse", fmt::format("The specified address is already in use."));
  } else {
    for (uint32_t off = 4; cidr.base + off < cidr.last(); ++off)
      if (!used.count(cidr.address(off))) {
        ip = cidr.address(off);
        break;
      }
    if (ip.empty())
      return invalid("InsufficientFreeAddressesInSubnet", "The specified subnet does not have enough free addresses to satisfy the request.");
  }
  // Security groups: given, else the VPC's default one; all of its VPC.
  json::array gs;
  PIER_ASSIGN(auto vpc_groups, load_all(db, s, "security-group", sn.vpc_id));
  auto group_named = [&](auto pred) -> const Object* {
    for (const auto& g : vpc_groups)
      if (pred(g)) return &g;
    return nullptr;
  };
  if (groups.empty()) {
    if (const auto* g = group_named([](const Object& g) { return get_string(g.doc, "GroupName") == "default"; }))
      gs.push_back(json::object{{"GroupId", g->id}, {"GroupName", "default"}});
  }
  for (const auto& id : groups) {
    const auto* g = group_named([&](const Object& g) { return g.id == id; });
    if (!g) {
      PIER_ASSIGN(auto other, load(db, s, id));
      if (other && other->type == "security-group")
        return invalid("InvalidParameterValue", fmt::format("The security group {} and subnet {} belong to different networks", id, subnet_id));
      return invalid("InvalidGroup.NotFound", fmt::format("The security group '{}' does not exist", id));
    }
    gs.push_back(json::object{{"GroupId", g->id}, {"GroupName", g->doc.at("GroupName")}});
  }
  Object e;
  e.id = new_id("eni");
  e.type = "network-interface";
  e.vpc_id = sn.vpc_id;
  std::string dns = dns_name(s.region, ip);
  e.doc = json::object{
      {"AvailabilityZone", sn.doc.at("AvailabilityZone")},
      {"AvailabilityZoneId", sn.doc.at("AvailabilityZoneId")},
      {"Description", description},
      {"Groups", gs},
      {"InterfaceType", interface_type},
      {"Ipv6Addresses", json::array()},
      {"MacAddress", mac_address()},
      {"NetworkInterfaceId", e.id},
      {"OwnerId", s.account},
      {"PrivateDnsName", dns},
      {"PrivateIpAddress", ip},
      {"PrivateIpAddresses", json::array{json::object{{"Primary", true}, {"PrivateDnsName", dns}, {"PrivateIpAddress", ip}}}},
      {"RequesterManaged", false},
      {"SourceDestCheck", true},
      {"Status", "pending"},
      {"SubnetId", sn.id},
      {"VpcId", sn.vpc_id}};
  PIER_TRY(save(db, s, e));
  PIER_TRY(adjust_free(db, s, sn, -1));
  return e;
}

Status delete_interface(Db& db, const Scope& s, const std::string& id, bool by_owner) {
  PIER_ASSIGN(auto e, find(db, s, id, "network-interface", "InvalidNetworkInterfaceID.NotFound", "networkInterface"));
  if (!by_owner && get_bool(e.doc, "RequesterManaged"))
    return invalid("OperationNotPermitted", fmt::format("You are not allowed to manage '{}' attachments.",
                                                        get_string(e.doc, "InterfaceType")));
  if (e.doc.contains("Attachment"))
    return invalid("InvalidNetworkInterface.InUse", fmt::format("Interface: [{}] in use.", id));
  PIER_ASSIGN(auto sn, load(db, s, get_string(e.doc, "SubnetId")));
  if (sn) PIER_TRY(adjust_free(db, s, *sn, +1));
  return erase(db, s, id);
}

Status finish_interface(Db& db, const std::string& account, const std::string& region, const std::string& id) {
  Scope s{account, region};
  // Read again: the ENI may have gone or changed since the pass began.
  PIER_ASSIGN(auto e, load(db, s, id));
  if (!e || get_string(e->doc, "Status") != "pending") return {};
  e->doc["Status"] = "available";
  return save(db, s, *e);
}

Result<json::object> make_task_interface(Db& db, const std::string& account, const std::string& region,
                                         const std::string& subnet_id, const std::vector<std::string>& groups,
                                         const std::string& description) {
  Scope s{account, region};
  PIER_ASSIGN(auto e, make_interface(db, s, subnet_id, groups, "", description, "interface"));
  e.doc["RequesterManaged"] = true;
  e.doc["RequesterId"] = "578734482556";  // the account AWS's ECS uses for task ENIs
  e.doc["Attachment"] = json::object{{"AttachmentId", "ela-attach-" + ids::hex_id(8)},
                                     {"DeleteOnTermination", true},
                                     {"DeviceIndex", 1},
                                     {"InstanceOwnerId", "amazon-aws"},
                                     {"Status", "attached"}};
  PIER_TRY(save(db, s, e));
  return e.doc;
}

Result<std::optional<json::object>> load_object(Db& db, const std::string& account, const std::string& region,
                                                const std::string& id, const std::string& type) {
  PIER_ASSIGN(auto e, load(db, Scope{account, region}, id));
  if (!e || e->type != type) return std::optional<json::object>();
  return std::optional<json::object>(std::move(e->doc));
}

Status delete_task_interface(Db& db, const std::string& account, const std::string& region, const std::string& id) {
  Scope s{account, region};
  PIER_ASSIGN(auto e, load(db, s, id));
  if (!e) return {};
  e->doc.erase("Attachment");
  PIER_TRY(save(db, s, *e));
  return delete_interface(db, s, id, true);
}

json::object interface_view(Db& db, const Scope& s, const Object& e) {
  json::object v = with_tags(db, s, e);
  v["TagSet"] = std::move(v["Tags"]);
  v.erase("Tags");
  return v;
}

void add_interface_actions(const AddAction& add, store::Store& store) {
  add("CreateNetworkInterface", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    auto tags = spec_tags(in, "network-interface");
    PIER_TRY(check_tags(tags));
    std::string type = get_string(in, "InterfaceType", "interface");
    if (type != "interface")
      return invalid("InvalidParameterValue", fmt::format("Value ({}) for parameter interfaceType is invalid.", type));
    return store.write([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto e, make_interface(db, s, get_string(in, "SubnetId"), get_strings(in, "Groups"),
                                         get_string(in, "PrivateIpAddress"), get_string(in, "Description"), type));
      PIER_TRY(put_tags(db, s, e.id, tags));
      json::object out{{"NetworkInterface", interface_view(db, s, e)}};
      if (in.contains("ClientToken")) out["ClientToken"] = in["ClientToken"];
      return out;
    });
  });

  add("DeleteNetworkInterface", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_TRY(store.write([&](Db& db) -> Status { return delete_interface(db, s, get_string(in, "NetworkInterfaceId")); }));
    return json::object{};
  });

  FilterFields fields{{"network-interface-id", field("NetworkInterfaceId")}, {"subnet-id", field("SubnetId")},
                      {"vpc-id", field("VpcId")}, {"status", field("Status")},
                      {"private-ip-address", field("PrivateIpAddress")}, {"addresses.private-ip-address", field("PrivateIpAddress")},
                      {"availability-zone", field("AvailabilityZone")}, {"description", field("Description")},
                      {"interface-type", field("InterfaceType")}, {"mac-address", field("MacAddress")},
                      {"owner-id", field("OwnerId")}, {"private-dns-name", field("PrivateDnsName")},
                      {"group-id", list_field("Groups", "GroupId")}, {"group-name", list_field("Groups", "GroupName")},
                      {"requester-managed", field("RequesterManaged")}};
  add("DescribeNetworkInterfaces", [&store, fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_TRY(check_filters(in, fields));
      std::vector<Object> objs;
      auto ids = get_strings(in, "NetworkInterfaceIds");
      if (ids.empty()) {
        PIER_ASSIGN(objs, load_all(db, s, "network-interface"));
      }
      for (const auto& id : ids) {
        PIER_ASSIGN(auto e, find(db, s, id, "network-interface", "InvalidNetworkInterfaceID.NotFound", "networkInterface"));
        objs.push_back(std::move(e));
      }
      json::array out;
      for (const auto& e : objs) {
        json::object v = with_tags(db, s, e);  // filters read Tags
        if (!matches(in, fields, v)) continue;
        out.push_back(interface_view(db, s, e));
      }
      return json::object{{"NetworkInterfaces", out}};
    });
  });
}

}  // namespace pier::svc::ec2
