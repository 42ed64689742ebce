// What the Amazon-provided DNS server of a VPC (its base address + 2)
// answers, from the EC2 objects in the store:
//  - the names of AWS services: the ENIs of the VPC's interface endpoint for
//    the service when it has private DNS on — for every subnet of the VPC,
//    as private DNS is VPC-wide on AWS — and the service's public address
//    in the simulated internet otherwise;
//  - an endpoint's own names (vpce-….SERVICE.REGION.vpce.amazonaws.com,
//    and the zonal ones): its ENIs (in that zone), from any VPC;
//  - ip-A-B-C-D.ec2.internal (us-east-1) and ip-A-B-C-D.REGION.compute.internal
//    when the VPC has DNS hostnames on and the address is in the VPC;
//  - nothing else (NXDOMAIN): there is no internet beyond AWS's services.
// A VPC with DNS support off has no resolver at all (the network controller
// does not listen there).
#pragma once

#include <string>
#include <vector>

#include <boost/json.hpp>

#include "store/db.h"

namespace pier::svc::ec2 {

// Where the VPC's resolver is: its base address + 2; "" when the VPC (its
// Describe document, as stored) has DNS support off.
std::string resolver_address(const boost::json::object& vpc);

struct DnsAnswer {
  bool exists = false;                 // false: NXDOMAIN
  std::vector<std::string> addresses;  // IPv4
};

Result<DnsAnswer> resolve_in_vpc(store::Db& db, const std::string& account, const std::string& region,
                                 const std::string& vpc_id, const std::string& name);

}  // namespace pier::svc::ec2
