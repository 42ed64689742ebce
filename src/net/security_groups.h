// Security groups as the kernel enforces them: a stateful nftables ruleset
// (inet family, so conntrack works — the bridge family has none here) in
// each ENI's own namespace. Inbound and outbound default to drop; replies to
// allowed connections pass; each rule allows one protocol/port range from or
// to one peer — a CIDR, or the members of a group (a named set of their
// addresses, updated when memberships change).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pier::net {

struct SgRule {
  bool egress = false;
  std::string protocol;  // "tcp", "udp", "icmp", "-1" (all) or a number
  int from = -1, to = -1;
  std::string cidr;      // or
  std::string group;     // a group id: its members' addresses
};

// The whole ruleset for one ENI, as one `nft -f` transaction that replaces
// the previous one. `members` gives the addresses of every group a rule
// names. Traffic to `resolver` (the VPC's DNS server) on port 53 is never
// filtered, as on AWS.
std::string sg_ruleset(const std::vector<SgRule>& rules,
                       const std::map<std::string, std::vector<std::string>>& members,
                       const std::string& resolver = {});

}  // namespace pier::net
