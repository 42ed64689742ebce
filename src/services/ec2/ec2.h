// The EC2 VPC control plane: VPCs (with their main route table, default
// security group and default network ACL), subnets, internet gateways, tags,
// regions and zones, and the default VPC an account has in a region on first
// use. The objects are the desired state the network controller realizes
// (issue 4); their kernel side comes with it. Thread-safe: all state is in
// the store.
#pragma once

#include <functional>

#include "aws/dispatcher.h"
#include "store/store.h"

namespace pier::svc::ec2 {

class Ec2Service {
 public:
  // on_change runs after every call that may have changed an object (the
  // network controller's kick).
  explicit Ec2Service(store::Store& store, std::function<void()> on_change = {});
  aws::ServiceDef definition();

 private:
  store::Store& store_;
  std::function<void()> on_change_;
};

// The network controller's word back, once kernel state is made or gone:
// a NAT gateway pending → available, or deleting → deleted (its ENI
// removed, its EIP free again).
Status finish_nat_gateway(store::Db& db, const std::string& account, const std::string& region,
                          const std::string& id, bool removed);
// An ENI pending → available once it is wired.
Status finish_interface(store::Db& db, const std::string& account, const std::string& region, const std::string& id);

// A task's ENI, made by ECS (requester-managed, attached): the subnet's
// lowest free address, the given groups (which must be of the subnet's VPC)
// or the VPC's default group. Errors are EC2's (InvalidSubnetID.NotFound,
// InvalidGroup.NotFound, …). Returns the ENI as DescribeNetworkInterfaces
// shows it; it is "pending" until the network controller has wired it.
Result<boost::json::object> make_task_interface(store::Db& db, const std::string& account,
                                                const std::string& region, const std::string& subnet_id,
                                                const std::vector<std::string>& groups,
                                                const std::string& description);
// An EC2 object of the type ("subnet", "security-group", "network-interface",
// "vpc", …) as stored; nullopt if there is none.
Result<std::optional<boost::json::object>> load_object(store::Db& db, const std::string& account,
                                                       const std::string& region, const std::string& id,
                                                       const std::string& type);
// Removes a task's ENI (no error if it is gone already).
Status delete_task_interface(store::Db& db, const std::string& account, const std::string& region,
                             const std::string& id);

// A VPC endpoint pending → available once its ENIs are wired and pierd
// listens on them, or deleting → deleted (its ENIs removed) once its kernel
// side is gone.
Status finish_vpc_endpoint(store::Db& db, const std::string& account, const std::string& region,
                           const std::string& id, bool removed);

// The prefix list of a gateway endpoint service, by its service name
// ("com.amazonaws.us-east-1.s3" → "pl-" + 8 hex digits, the same for every
// account), as gateway endpoint routes name it (DestinationPrefixListId).
std::string prefix_list_id(const std::string& service_name);
// The CIDRs a prefix list stands for in the region (the service's public
// address, /32); empty when the id names none.
std::vector<std::string> prefix_list_cidrs(const std::string& prefix_list_id, const std::string& region);

// The zones pier offers in a region: REGION + a..f (us-east-1 has six;
// pier gives every region the same six).
std::vector<std::string> zone_names(const std::string& region);

}  // namespace pier::svc::ec2
