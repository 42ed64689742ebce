// What the EC2 action files share: ids, AWS's error shapes, tags of Create
// calls, Describe with ids and filters, and the objects AWS makes together
// (a VPC with its main route table, default group and ACL; a subnet with its
// ACL association). Internal to services/ec2.
#pragma once

#include "aws/dispatcher.h"
#include "services/ec2/cidr.h"
#include "services/ec2/objects.h"
#include "store/store.h"

namespace pier::svc::ec2 {

Scope scope(const aws::RequestContext& ctx);
std::string new_id(std::string_view prefix);  // "vpc" → "vpc-" + 17 hex digits
Error invalid(std::string code, std::string msg);
// "The vpc ID 'vpc-1' does not exist", with AWS's code for the type.
Error not_found(std::string_view code, std::string_view what, const std::string& id);
Status dry_run(const json::object& in);

// The zone id AWS gives a zone: us-east-1a → use1-az1.
std::string zone_id(const std::string& region, char letter);

// TagSpecifications of a Create call: the tags for resource type `type`.
json::array spec_tags(const json::object& in, std::string_view type);
Status check_tags(const json::array& tags);
json::object with_tags(store::Db& db, const Scope& s, const Object& o);

// Describe*: the objects of a type, by ids (each must exist) and filters.
Result<json::array> describe(store::Db& db, const Scope& s, const std::string& type,
                             const std::vector<std::string>& ids, std::string_view notfound_code,
                             std::string_view what, const json::object& in, const FilterFields& fields);
// A filter reading one scalar member.
FilterFields::mapped_type field(std::string key);
// A filter reading one member of every element of a list member.
FilterFields::mapped_type list_field(std::string list, std::string key);

// The account's default VPC in the region ("" once it has been deleted).
Result<std::string> default_vpc_id(store::Db& db, const Scope& s);

Result<Object> find(store::Db& db, const Scope& s, const std::string& id, const std::string& type,
                    std::string_view code, std::string_view what);

struct Made {
  Object vpc, route_table, group, acl;
};
Result<Made> make_vpc(store::Db& db, const Scope& s, const Cidr& cidr, bool is_default, const std::string& tenancy);
Result<Object> make_subnet(store::Db& db, const Scope& s, const Object& vpc, const Cidr& cidr,
                           const std::string& az, bool default_for_az);

// Security group rules: kept one by one in "_Rules" (what the network
// controller turns into nftables rules); IpPermissions and
// IpPermissionsEgress are derived from them.
void derive_permissions(json::object& group);

// The action files: each adds its actions through `add` (which runs the
// default-VPC check and DryRun first).
using AddAction = std::function<void(std::string name, aws::Handler handler)>;
void add_route_table_actions(const AddAction& add, store::Store& store);
void add_security_group_actions(const AddAction& add, store::Store& store);
void add_interface_actions(const AddAction& add, store::Store& store);
void add_address_actions(const AddAction& add, store::Store& store);
void add_endpoint_actions(const AddAction& add, store::Store& store);

// ENIs, also made by NAT gateways, endpoints and tasks: the lowest free
// address of the subnet unless one is asked for; the VPC's default group
// unless groups are given.
Result<Object> make_interface(store::Db& db, const Scope& s, const std::string& subnet_id,
                              const std::vector<std::string>& groups, const std::string& ip,
                              const std::string& description, const std::string& interface_type);
// by_owner: the NAT gateway (or endpoint) that made it; users may not
// delete a requester-managed ENI.
Status delete_interface(store::Db& db, const Scope& s, const std::string& id, bool by_owner = false);

}  // namespace pier::svc::ec2
