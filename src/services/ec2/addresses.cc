// Elastic IPs (from the simulated internet's range, 198.19.0.0/16 — unique
// across all accounts of one pierd, as public addresses are) and NAT
// gateways. A NAT gateway holds a requester-managed ENI in its subnet and an
// EIP; it is "pending" until the network controller has made it, then
// "available"; DeleteNatGateway makes it "deleting" until the controller has
// removed it, then "deleted" (still listed, as on AWS).
#include <fmt/format.h>

#include <set>

#include "services/ec2/ec2.h"
#include "services/ec2/helpers.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using aws::RequestContext;
using store::Db;

namespace {

constexpr std::string_view kEipRange = "198.19.0.0/16";

Result<std::string> free_public_ip(Db& db) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM ec2_objects WHERE type='elastic-ip'"));
  std::set<std::string> used;
  for (;;) {
    PIER_ASSIGN(bool more, st->step());
    if (!more) break;
    PIER_ASSIGN(auto doc, parse_object(st->text(0)));
    used.insert(get_string(doc, "PublicIp"));
  }
  auto range = *Cidr::parse(kEipRange);
  for (uint32_t off = 1; off + 1 < range.size(); ++off)
    if (!used.count(range.address(off))) return range.address(off);
  return invalid("AddressLimitExceeded", "The maximum number of addresses has been reached.");
}

Result<Object> address_by(Db& db, const Scope& s, const json::object& in) {
  std::string id = get_string(in, "AllocationId");
  if (!id.empty()) return find(db, s, id, "elastic-ip", "InvalidAllocationID.NotFound", "allocation");
  std::string ip = get_string(in, "PublicIp");
  PIER_ASSIGN(auto all, load_all(db, s, "elastic-ip"));
  for (auto& a : all)
    if (get_string(a.doc, "PublicIp") == ip) return std::move(a);
  return invalid("InvalidAddress.NotFound", fmt::format("Address '{}' not found.", ip));
}

}  // namespace

void add_address_actions(const AddAction& add, store::Store& store) {
  add("AllocateAddress", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string domain = get_string(in, "Domain", "vpc");
    if (domain != "vpc" && domain != "standard")
      return invalid("InvalidParameterValue", fmt::format("Invalid value '{}' for domain.", domain));
    auto tags = spec_tags(in, "elastic-ip");
    PIER_TRY(check_tags(tags));
    return store.write([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(std::string ip, free_public_ip(db));
      Object a;
      a.id = new_id("eipalloc");
      a.type = "elastic-ip";
      a.doc = json::object{{"AllocationId", a.id}, {"Domain", "vpc"}, {"PublicIp", ip},
                           {"PublicIpv4Pool", "amazon"}, {"NetworkBorderGroup", s.region}};
      PIER_TRY(save(db, s, a));
      PIER_TRY(put_tags(db, s, a.id, tags));
      return view(a.doc);
    });
  });

  add("ReleaseAddress", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto a, address_by(db, s, in));
      if (a.doc.contains("AssociationId") || a.doc.contains("_NatGatewayId"))
        return invalid("InvalidIPAddress.InUse", fmt::format("Address {} is in use.", get_string(a.doc, "PublicIp")));
      return erase(db, s, a.id);
    }));
    return json::object{};
  });

  FilterFields fields{{"allocation-id", field("AllocationId")}, {"public-ip", field("PublicIp")},
                      {"domain", field("Domain")}, {"network-interface-id", field("NetworkInterfaceId")},
                      {"private-ip-address", field("PrivateIpAddress")}, {"association-id", field("AssociationId")},
                      {"network-border-group", field("NetworkBorderGroup")}};
  add("DescribeAddresses", [&store, fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "elastic-ip", get_strings(in, "AllocationIds"),
                                      "InvalidAllocationID.NotFound", "allocation", in, fields));
      auto ips = get_strings(in, "PublicIps");
      if (!ips.empty()) {
        json::array picked;
        for (const auto& ip : ips) {
          bool found = false;
          for (const auto& a : list)
            if (get_string(a.as_object(), "PublicIp") == ip) picked.push_back(a), found = true;
          if (!found) return invalid("InvalidAddress.NotFound", fmt::format("Address '{}' not found.", ip));
        }
        list = std::move(picked);
      }
      return json::object{{"Addresses", list}};
    });
  });

  add("DescribeAddressesAttribute", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string attr = get_string(in, "Attribute", "domain-name");
    if (attr != "domain-name")
      return invalid("InvalidParameterValue", fmt::format("Value ({}) for parameter attribute is invalid.", attr));
    return store.read([&](Db& db) -> Result<json::object> {
      std::vector<Object> objs;
      auto ids = get_strings(in, "AllocationIds");
      if (ids.empty()) {
        PIER_ASSIGN(objs, load_all(db, s, "elastic-ip"));
      }
      for (const auto& id : ids) {
        PIER_ASSIGN(auto a, find(db, s, id, "elastic-ip", "InvalidAllocationID.NotFound", "allocation"));
        objs.push_back(std::move(a));
      }
      // No reverse DNS records: the attribute exists, with no PtrRecord.
      json::array out;
      for (const auto& a : objs)
        out.push_back(json::object{{"PublicIp", a.doc.at("PublicIp")}, {"AllocationId", a.id}});
      return json::object{{"Addresses", out}};
    });
  });

  // --------------------------------------------------------------- NAT gateways
  add("CreateNatGateway", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string type = get_string(in, "ConnectivityType", "public");
    if (type != "public")
      return invalid("InvalidParameterValue", "pier makes public NAT gateways only (ConnectivityType public).");
    std::string alloc = get_string(in, "AllocationId");
    if (alloc.empty()) return invalid("MissingParameter", "The request must contain the parameter AllocationId");
    auto tags = spec_tags(in, "natgateway");
    PIER_TRY(check_tags(tags));
    return store.write([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto sn, find(db, s, get_string(in, "SubnetId"), "subnet", "InvalidSubnetID.NotFound", "subnet"));
      PIER_ASSIGN(auto eip, find(db, s, alloc, "elastic-ip", "InvalidAllocationID.NotFound", "allocation"));
      if (eip.doc.contains("AssociationId") || eip.doc.contains("_NatGatewayId"))
        return invalid("Resource.AlreadyAssociated", fmt::format("Elastic IP address [{}] is already associated", alloc));
      Object nat;
      nat.id = new_id("nat");
      nat.type = "nat-gateway";
      nat.vpc_id = sn.vpc_id;
      PIER_ASSIGN(auto eni, make_interface(db, s, sn.id, {}, get_string(in, "PrivateIpAddress"),
                                           "Interface for NAT Gateway " + nat.id, "natGateway"));
      eni.doc["RequesterManaged"] = true;
      eni.doc["Groups"] = json::array();  // a NAT gateway's ENI has no security groups
      PIER_TRY(save(db, s, eni));
      eip.doc["_NatGatewayId"] = nat.id;
      eip.doc["NetworkInterfaceId"] = eni.id;
      eip.doc["PrivateIpAddress"] = eni.doc["PrivateIpAddress"];
      eip.doc["AssociationId"] = new_id("eipassoc");
      PIER_TRY(save(db, s, eip));
      nat.doc = json::object{
          {"CreateTime", ctx.now},
          {"NatGatewayAddresses",
           json::array{json::object{{"AllocationId", alloc}, {"NetworkInterfaceId", eni.id},
                                    {"PrivateIp", eni.doc["PrivateIpAddress"]}, {"PublicIp", eip.doc["PublicIp"]},
                                    {"AssociationId", eip.doc["AssociationId"]}, {"IsPrimary", true},
                                    {"Status", "succeeded"}}}},
          {"NatGatewayId", nat.id},
          {"State", "pending"},
          {"SubnetId", sn.id},
          {"VpcId", sn.vpc_id},
          {"ConnectivityType", "public"}};
      PIER_TRY(save(db, s, nat));
      PIER_TRY(put_tags(db, s, nat.id, tags));
      json::object out{{"NatGateway", with_tags(db, s, nat)}};
      if (in.contains("ClientToken")) out["ClientToken"] = in["ClientToken"];
      return out;
    });
  });

  add("DeleteNatGateway", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "NatGatewayId");
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto nat, find(db, s, id, "nat-gateway", "NatGatewayNotFound", "NAT gateway"));
      std::string state = get_string(nat.doc, "State");
      if (state == "deleted" || state == "deleting") return {};
      nat.doc["State"] = "deleting";
      nat.doc["DeleteTime"] = ctx.now;
      return save(db, s, nat);
    }));
    return json::object{{"NatGatewayId", id}};
  });

  FilterFields nat_fields{{"nat-gateway-id", field("NatGatewayId")}, {"state", field("State")},
                          {"subnet-id", field("SubnetId")}, {"vpc-id", field("VpcId")}};
  add("DescribeNatGateways", [&store, nat_fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    json::object q = in;
    if (q.contains("Filter")) q["Filters"] = q["Filter"];  // this call alone spells it Filter
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "nat-gateway", get_strings(in, "NatGatewayIds"), "NatGatewayNotFound",
                                      "NAT gateway", q, nat_fields));
      return json::object{{"NatGateways", list}};
    });
  });
}

Status finish_nat_gateway(Db& db, const std::string& account, const std::string& region, const std::string& id,
                          bool removed) {
  Scope s{account, region};
  PIER_ASSIGN(auto nat, load(db, s, id));
  if (!nat) return {};
  std::string state = get_string(nat->doc, "State");
  if (!removed && state == "pending") {
    nat->doc["State"] = "available";
    return save(db, s, *nat);
  }
  if (removed && state == "deleting") {
    // Its ENI and the EIP's association go; the EIP stays allocated.
    for (const auto& a : nat->doc["NatGatewayAddresses"].as_array()) {
      std::string eni = get_string(a.as_object(), "NetworkInterfaceId");
      PIER_ASSIGN(auto e, load(db, s, eni));
      if (e) PIER_TRY(delete_interface(db, s, eni, /*by_owner=*/true));
      PIER_ASSIGN(auto eip, load(db, s, get_string(a.as_object(), "AllocationId")));
      if (eip) {
        for (const char* k : {"_NatGatewayId", "NetworkInterfaceId", "PrivateIpAddress", "AssociationId"}) eip->doc.erase(k);
        PIER_TRY(save(db, s, *eip));
      }
    }
    nat->doc["State"] = "deleted";
    nat->vpc_id.clear();  // listed still, but nothing of its VPC's any more
    return save(db, s, *nat);
  }
  return {};
}

}  // namespace pier::svc::ec2
