#include "iam/policy.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace pier::iam {
namespace {

namespace json = boost::json;

json::array load(const std::string& name) {
  std::ifstream in(std::filesystem::path(PIER_SOURCE_DIR) / "tests/fixtures/iam" / name);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str()).as_array();
}

TEST(PolicyEvaluator, CaseTable) {
  json::array cases = load("cases.json");
  ASSERT_GT(cases.size(), 40u);
  for (const auto& cv : cases) {
    const auto& c = cv.as_object();
    std::string name(c.at("name").as_string());
    SCOPED_TRACE(name);
    std::vector<Policy> policies;
    for (const auto& p : c.at("policies").as_array()) {
      auto parsed = parse_policy(json::serialize(p));
      ASSERT_TRUE(parsed.ok()) << parsed.error().message;
      policies.push_back(std::move(parsed).value());
    }
    const auto& r = c.at("request").as_object();
    Request req;
    req.action = std::string(r.at("action").as_string());
    req.resource = std::string(r.at("resource").as_string());
    if (auto* ctx = r.if_contains("context"))
      for (const auto& [k, vals] : ctx->as_object())
        for (const auto& v : vals.as_array()) req.context[std::string(k)].emplace_back(v.as_string());
    EXPECT_EQ(decision_name(evaluate(policies, req)), c.at("expect").as_string());
  }
}

TEST(PolicyParser, RejectsMalformedDocuments) {
  for (const auto& cv : load("malformed.json")) {
    const auto& c = cv.as_object();
    SCOPED_TRACE(std::string(c.at("name").as_string()));
    auto p = parse_policy(c.at("doc").as_string());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code, c.at("code").as_string());
  }
}

TEST(TrustPolicy, ServicePrincipalIsNotTheAccount) {
  auto p = parse_policy(R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]})");
  ASSERT_TRUE(p.ok());
  Request r{"sts:AssumeRole", "arn:aws:iam::000000000000:role/x", {}};
  EXPECT_EQ(evaluate_resource_policy(*p, r, "Service", {"ecs-tasks.amazonaws.com"}), Decision::kAllow);
  EXPECT_EQ(evaluate_resource_policy(*p, r, "AWS", {"arn:aws:iam::000000000000:root"}),
            Decision::kImplicitDeny);
}

TEST(TrustPolicy, AccountPrincipalAllowsTheAccount) {
  auto p = parse_policy(R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"sts:AssumeRole"}]})");
  ASSERT_TRUE(p.ok());
  Request r{"sts:AssumeRole", "arn:aws:iam::000000000000:role/x", {}};
  EXPECT_EQ(evaluate_resource_policy(*p, r, "AWS", {"000000000000", "arn:aws:iam::000000000000:root"}),
            Decision::kAllow);
}

}  // namespace
}  // namespace pier::iam
