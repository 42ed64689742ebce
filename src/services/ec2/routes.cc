// Route tables: Create/Describe/Delete, routes (Create/Replace/Delete) to an
// internet gateway, a NAT gateway or a network interface, and subnet
// associations. A subnet without an explicit association uses its VPC's main
// table. Every table keeps the VPC's `local` route, which cannot be removed.
#include <fmt/format.h>

#include "services/ec2/helpers.h"
#include "services/util.h"

namespace pier::svc::ec2 {

using aws::RequestContext;
using store::Db;

namespace {

// The route's target, checked: it must exist and belong to the table's VPC.
Result<std::pair<std::string, std::string>> route_target(Db& db, const Scope& s, const Object& table,
                                                        const json::object& in) {
  std::vector<std::pair<std::string, std::string>> given;
  for (const char* m : {"GatewayId", "NatGatewayId", "NetworkInterfaceId", "InstanceId", "VpcPeeringConnectionId",
                        "TransitGatewayId", "EgressOnlyInternetGatewayId", "LocalGatewayId", "CarrierGatewayId",
                        "VpcEndpointId"})
    if (std::string v = get_string(in, m); !v.empty()) given.emplace_back(m, v);
  if (given.size() != 1)
    return invalid(given.empty() ? "MissingParameter" : "InvalidParameterCombination",
                   given.empty() ? "The request must contain exactly one of gatewayId, natGatewayId, networkInterfaceId"
                                 : "Only one of the route targets may be given");
  auto [member, id] = given[0];
  if (member == "GatewayId") {
    PIER_ASSIGN(auto igw, load(db, s, id));
    if (!igw || igw->type != "internet-gateway")
      return invalid("InvalidGatewayID.NotFound", fmt::format("The gateway ID '{}' does not exist", id));
    if (igw->vpc_id != table.vpc_id)
      return invalid("InvalidParameterValue",
                     fmt::format("route table {} and network gateway {} belong to different networks", table.id, id));
  } else if (member == "NatGatewayId") {
    PIER_ASSIGN(auto nat, load(db, s, id));
    if (!nat || nat->type != "nat-gateway")
      return invalid("InvalidNatGatewayID.NotFound", fmt::format("The natGateway ID '{}' does not exist", id));
    if (nat->vpc_id != table.vpc_id)
      return invalid("InvalidParameterValue",
                     fmt::format("route table {} and NAT gateway {} belong to different networks", table.id, id));
  } else if (member == "NetworkInterfaceId") {
    PIER_ASSIGN(auto eni, load(db, s, id));
    if (!eni || eni->type != "network-interface")
      return invalid("InvalidNetworkInterfaceID.NotFound", fmt::format("The networkInterface ID '{}' does not exist", id));
    if (eni->vpc_id != table.vpc_id)
      return invalid("InvalidParameterValue",
                     fmt::format("route table {} and interface {} belong to different networks", table.id, id));
  } else {
    return invalid("InvalidParameterValue", fmt::format("pier does not route to a {} yet", member));
  }
  return std::pair{member, id};
}

Result<Cidr> destination(const json::object& in) {
  std::string d = get_string(in, "DestinationCidrBlock");
  if (d.empty()) return invalid("MissingParameter", "The request must contain the parameter destinationCidrBlock");
  auto c = Cidr::parse(d);
  if (!c) return invalid("InvalidParameterValue", fmt::format("Value ({}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.", d));
  return *c;
}

json::array* routes_of(Object& t) { return &t.doc["Routes"].as_array(); }

}  // namespace

void add_route_table_actions(const AddAction& add, store::Store& store) {
  auto table_find = [](Db& db, const Scope& s, const std::string& id) {
    return find(db, s, id, "route-table", "InvalidRouteTableID.NotFound", "routeTable");
  };

  add("CreateRouteTable", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    auto tags = spec_tags(in, "route-table");
    PIER_TRY(check_tags(tags));
    return store.write([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto vpc, find(db, s, get_string(in, "VpcId"), "vpc", "InvalidVpcID.NotFound", "vpc"));
      Object t;
      t.id = new_id("rtb");
      t.type = "route-table";
      t.vpc_id = vpc.id;
      t.doc = json::object{{"Associations", json::array()}, {"PropagatingVgws", json::array()},
                           {"RouteTableId", t.id},
                           {"Routes", json::array{json::object{{"DestinationCidrBlock", vpc.doc["CidrBlock"]},
                                                               {"GatewayId", "local"},
                                                               {"Origin", "CreateRouteTable"},
                                                               {"State", "active"}}}},
                           {"VpcId", vpc.id}, {"OwnerId", s.account}};
      PIER_TRY(save(db, s, t));
      PIER_TRY(put_tags(db, s, t.id, tags));
      json::object out{{"RouteTable", with_tags(db, s, t)}};
      if (in.contains("ClientToken")) out["ClientToken"] = in["ClientToken"];
      return out;
    });
  });

  add("DeleteRouteTable", [&store, table_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string id = get_string(in, "RouteTableId");
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto t, table_find(db, s, id));
      if (!t.doc["Associations"].as_array().empty())
        return invalid("DependencyViolation", fmt::format("The routeTable '{}' has dependencies and cannot be deleted.", id));
      return erase(db, s, id);
    }));
    return json::object{};
  });

  add("CreateRoute", [&store, table_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_ASSIGN(Cidr dest, destination(in));
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto t, table_find(db, s, get_string(in, "RouteTableId")));
      PIER_ASSIGN(auto target, route_target(db, s, t, in));
      for (const auto& r : *routes_of(t))
        if (get_string(r.as_object(), "DestinationCidrBlock") == dest.str())
          return invalid("RouteAlreadyExists", fmt::format("The route identified by {} already exists.", dest.str()));
      routes_of(t)->push_back(json::object{{"DestinationCidrBlock", dest.str()}, {target.first, target.second},
                                           {"Origin", "CreateRoute"}, {"State", "active"}});
      return save(db, s, t);
    }));
    return json::object{{"Return", true}};
  });

  add("ReplaceRoute", [&store, table_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_ASSIGN(Cidr dest, destination(in));
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto t, table_find(db, s, get_string(in, "RouteTableId")));
      PIER_ASSIGN(auto target, route_target(db, s, t, in));
      for (auto& r : *routes_of(t)) {
        auto& o = r.as_object();
        if (get_string(o, "DestinationCidrBlock") != dest.str()) continue;
        if (get_string(o, "GatewayId") == "local")
          return invalid("InvalidParameterValue", fmt::format("cannot replace local route {} in route table {}", dest.str(), t.id));
        o = json::object{{"DestinationCidrBlock", dest.str()}, {target.first, target.second},
                         {"Origin", "CreateRoute"}, {"State", "active"}};
        return save(db, s, t);
      }
      return invalid("InvalidRoute.NotFound",
                     fmt::format("no route with destination-cidr-block {} in route table {}", dest.str(), t.id));
    }));
    return json::object{};
  });

  add("DeleteRoute", [&store, table_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    PIER_ASSIGN(Cidr dest, destination(in));
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto t, table_find(db, s, get_string(in, "RouteTableId")));
      auto& routes = *routes_of(t);
      for (auto it = routes.begin(); it != routes.end(); ++it) {
        if (get_string(it->as_object(), "DestinationCidrBlock") != dest.str()) continue;
        if (get_string(it->as_object(), "GatewayId") == "local")
          return invalid("InvalidParameterValue", fmt::format("cannot remove local route {} in route table {}", dest.str(), t.id));
        routes.erase(it);
        return save(db, s, t);
      }
      return invalid("InvalidRoute.NotFound",
                     fmt::format("no route with destination-cidr-block {} in route table {}", dest.str(), t.id));
    }));
    return json::object{};
  });

  add("AssociateRouteTable", [&store, table_find](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string assoc = new_id("rtbassoc");
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto t, table_find(db, s, get_string(in, "RouteTableId")));
      std::string subnet_id = get_string(in, "SubnetId");
      if (subnet_id.empty()) return invalid("MissingParameter", "The request must contain the parameter subnetId");
      PIER_ASSIGN(auto sn, find(db, s, subnet_id, "subnet", "InvalidSubnetID.NotFound", "subnet"));
      if (sn.vpc_id != t.vpc_id)
        return invalid("InvalidParameterValue",
                       fmt::format("Route table {} and subnet {} belong to different networks", t.id, sn.id));
      PIER_ASSIGN(auto tables, load_all(db, s, "route-table", t.vpc_id));
      for (const auto& other : tables)
        for (const auto& a : other.doc.at("Associations").as_array())
          if (get_string(a.as_object(), "SubnetId") == subnet_id)
            return invalid("Resource.AlreadyAssociated",
                           fmt::format("the specified association for route table {} conflicts with an existing "
                                       "association", t.id));
      t.doc["Associations"].as_array().push_back(json::object{
          {"Main", false}, {"RouteTableAssociationId", assoc}, {"RouteTableId", t.id}, {"SubnetId", subnet_id},
          {"AssociationState", json::object{{"State", "associated"}}}});
      return save(db, s, t);
    }));
    return json::object{{"AssociationId", assoc}, {"AssociationState", json::object{{"State", "associated"}}}};
  });

  add("DisassociateRouteTable", [&store](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    std::string assoc = get_string(in, "AssociationId");
    PIER_TRY(store.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto tables, load_all(db, s, "route-table"));
      for (auto& t : tables) {
        auto& list = t.doc["Associations"].as_array();
        for (auto it = list.begin(); it != list.end(); ++it) {
          if (get_string(it->as_object(), "RouteTableAssociationId") != assoc) continue;
          if (it->as_object().at("Main").as_bool())
            return invalid("InvalidParameterValue", fmt::format("cannot disassociate the main route table association {}", assoc));
          list.erase(it);
          return save(db, s, t);
        }
      }
      return invalid("InvalidAssociationID.NotFound", fmt::format("The association ID '{}' does not exist", assoc));
    }));
    return json::object{};
  });

  FilterFields fields{{"route-table-id", field("RouteTableId")}, {"vpc-id", field("VpcId")},
                      {"owner-id", field("OwnerId")},
                      {"association.main", list_field("Associations", "Main")},
                      {"association.subnet-id", list_field("Associations", "SubnetId")},
                      {"association.route-table-association-id", list_field("Associations", "RouteTableAssociationId")},
                      {"route.destination-cidr-block", list_field("Routes", "DestinationCidrBlock")},
                      {"route.destination-prefix-list-id", list_field("Routes", "DestinationPrefixListId")},
                      {"route.origin", list_field("Routes", "Origin")},
                      {"route.gateway-id", list_field("Routes", "GatewayId")},
                      {"route.nat-gateway-id", list_field("Routes", "NatGatewayId")},
                      {"route.state", list_field("Routes", "State")}};
  add("DescribeRouteTables", [&store, fields](RequestContext& ctx, json::object& in) -> Result<json::object> {
    Scope s = scope(ctx);
    return store.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto list, describe(db, s, "route-table", get_strings(in, "RouteTableIds"),
                                      "InvalidRouteTableID.NotFound", "routeTable", in, fields));
      return json::object{{"RouteTables", list}};
    });
  });
}

}  // namespace pier::svc::ec2
