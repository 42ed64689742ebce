#include "net/security_groups.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "net/kernel.h"

namespace pier::net {
namespace {

std::vector<SgRule> sample() {
  return {
      SgRule{false, "tcp", 443, 443, "10.0.0.0/16", ""},
      SgRule{false, "tcp", 8000, 8999, "", "sg-0123456789abcdef0"},
      SgRule{false, "icmp", 8, -1, "0.0.0.0/0", ""},
      SgRule{false, "-1", -1, -1, "", "sg-00000000000000001"},
      SgRule{true, "-1", -1, -1, "0.0.0.0/0", ""},
      SgRule{true, "50", -1, -1, "192.0.2.0/24", ""},
  };
}

TEST(SecurityGroups, RulesetIsStatefulDefaultDropOneRulePerPeer) {
  std::map<std::string, std::vector<std::string>> members{{"sg-0123456789abcdef0", {"10.0.1.4", "10.0.2.4"}}};
  std::string s = sg_ruleset(sample(), members);
  // Replaces whatever was there, in one transaction.
  EXPECT_EQ(s.rfind("table inet pier\ndelete table inet pier\ntable inet pier {\n", 0), 0u);
  EXPECT_NE(s.find("set g_0123456789abcdef0 {\n    type ipv4_addr\n    elements = { 10.0.1.4, 10.0.2.4 }\n  }"),
            std::string::npos);
  // A group with no members yet: an empty set, nothing admitted.
  EXPECT_NE(s.find("set g_00000000000000001 {\n    type ipv4_addr\n  }"), std::string::npos);
  EXPECT_NE(s.find("type filter hook input priority 0; policy drop;"), std::string::npos);
  EXPECT_NE(s.find("type filter hook output priority 0; policy drop;"), std::string::npos);
  EXPECT_NE(s.find("ct state established,related accept"), std::string::npos);
  EXPECT_NE(s.find("    ip saddr 10.0.0.0/16 tcp dport 443 accept\n"), std::string::npos);
  EXPECT_NE(s.find("    ip saddr @g_0123456789abcdef0 tcp dport 8000-8999 accept\n"), std::string::npos);
  EXPECT_NE(s.find("    meta l4proto icmp icmp type 8 accept\n"), std::string::npos);
  EXPECT_NE(s.find("    ip saddr @g_00000000000000001 accept\n"), std::string::npos);
  EXPECT_NE(s.find("    ip daddr 192.0.2.0/24 meta l4proto 50 accept\n"), std::string::npos);
  // 0.0.0.0/0 and all protocols: accept everything that way.
  auto egress = s.substr(s.find("chain egress"));
  EXPECT_NE(egress.find("    oif \"lo\" accept\n    accept\n"), std::string::npos);
}

TEST(SecurityGroups, NoRulesAdmitNothing) {
  std::string s = sg_ruleset({}, {});
  auto begin = s.find("  chain ingress"), end = s.find("  chain egress");
  EXPECT_EQ(s.substr(begin, end - begin),
            "  chain ingress {\n    type filter hook input priority 0; policy drop;\n"
            "    ct state established,related accept\n    ct state invalid drop\n    iif \"lo\" accept\n"
            "    counter drop\n  }\n");
}

// nft itself accepts the ruleset (in a namespace of the test's own).
TEST(SecurityGroups, NftAcceptsTheRuleset) {
  if (geteuid() != 0 || access("/usr/sbin/nft", X_OK) != 0) GTEST_SKIP() << "needs root and nft";
  std::string ns = "pier-unit-" + std::to_string(getpid());
  ASSERT_TRUE(add_netns(ns).ok());
  std::map<std::string, std::vector<std::string>> members{{"sg-0123456789abcdef0", {"10.0.1.4"}}};
  auto applied = nft(ns, sg_ruleset(sample(), members));
  auto again = nft(ns, sg_ruleset(sample(), {}));  // replacing works too
  auto listed = run_in(ns, {"nft", "list", "table", "inet", "pier"});
  ASSERT_TRUE(delete_netns(ns).ok());
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  ASSERT_TRUE(again.ok()) << again.error().message;
  ASSERT_TRUE(listed.ok());
  EXPECT_NE(listed->find("tcp dport 8000-8999"), std::string::npos);
}

}  // namespace
}  // namespace pier::net
