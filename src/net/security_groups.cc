#include "net/security_groups.h"

#include <fmt/format.h>

#include <set>

namespace pier::net {

namespace {

std::string set_name(const std::string& group) { return "g_" + group.substr(group.find('-') + 1); }

std::string match(const SgRule& r) {
  std::string peer;
  const char* dir = r.egress ? "daddr" : "saddr";
  if (!r.group.empty()) peer = fmt::format("ip {} @{} ", dir, set_name(r.group));
  else if (!r.cidr.empty() && r.cidr != "0.0.0.0/0") peer = fmt::format("ip {} {} ", dir, r.cidr);
  std::string l4;
  if (r.protocol == "tcp" || r.protocol == "udp") {
    std::string ports = r.from == r.to ? std::to_string(r.from) : fmt::format("{}-{}", r.from, r.to);
    l4 = fmt::format("{} dport {} ", r.protocol, ports);
  } else if (r.protocol == "icmp") {
    l4 = "meta l4proto icmp ";
    if (r.from >= 0) l4 += fmt::format("icmp type {} ", r.from);
    if (r.to >= 0) l4 += fmt::format("icmp code {} ", r.to);
  } else if (r.protocol != "-1") {
    l4 = fmt::format("meta l4proto {} ", r.protocol);
  }
  return peer + l4;
}

}  // namespace

std::string sg_ruleset(const std::vector<SgRule>& rules, const std::map<std::string, std::vector<std::string>>& members,
                       const std::string& resolver) {
  std::string out = "table inet pier\ndelete table inet pier\ntable inet pier {\n";
  std::set<std::string> sets;
  for (const auto& r : rules)
    if (!r.group.empty()) sets.insert(r.group);
  for (const auto& g : sets) {
    out += fmt::format("  set {} {{\n    type ipv4_addr\n", set_name(g));
    auto it = members.find(g);
    if (it != members.end() && !it->second.empty()) {
      std::string list;
      for (const auto& a : it->second) list += (list.empty() ? "" : ", ") + a;
      out += fmt::format("    elements = {{ {} }}\n", list);
    }
    out += "  }\n";
  }
  for (bool egress : {false, true}) {
    out += fmt::format("  chain {} {{\n    type filter hook {} priority 0; policy drop;\n", egress ? "egress" : "ingress",
                       egress ? "output" : "input");
    out += "    ct state established,related accept\n    ct state invalid drop\n";
    out += egress ? "    oif \"lo\" accept\n" : "    iif \"lo\" accept\n";
    if (egress && !resolver.empty())
      out += fmt::format("    ip daddr {0} udp dport 53 accept\n    ip daddr {0} tcp dport 53 accept\n", resolver);
    for (const auto& r : rules)
      if (r.egress == egress) out += "    " + match(r) + "accept\n";
    out += "    counter drop\n  }\n";
  }
  return out + "}\n";
}

}  // namespace pier::net
