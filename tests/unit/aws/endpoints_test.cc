#include "aws/endpoints.h"

#include <gtest/gtest.h>

#include <set>

namespace pier::aws {
namespace {

TEST(EndpointCatalog, ServiceNamesMatchTheirServiceAndRegion) {
  auto m = match_service_name("ssmmessages.us-east-1.amazonaws.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name, "ssmmessages");
  EXPECT_EQ(m->region, "us-east-1");
  m = match_service_name("123456789012.dkr.ecr.eu-west-1.amazonaws.com.");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name, "ecr.dkr");
  EXPECT_EQ(m->region, "eu-west-1");
  m = match_service_name("API.ECR.us-west-2.amazonaws.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name, "ecr.api");
  m = match_service_name("my-bucket.s3.amazonaws.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name, "s3");
  EXPECT_EQ(m->region, "us-east-1");
  m = match_service_name("sts.amazonaws.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name + "/" + m->region, "sts/us-east-1");
  m = match_service_name("iam.amazonaws.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name + "/" + m->region, "iam/us-east-1");
  m = match_service_name("ecs-a-3.us-east-1.amazonaws.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->service->name, "ecs-agent");
}

TEST(EndpointCatalog, OtherNamesMatchNothing) {
  for (const char* n : {"example.com", "amazonaws.com", "evil.ssmmessages.us-east-1.amazonaws.com",
                        "ssmmessages.amazonaws.com", "ecs-a-x.us-east-1.amazonaws.com", "x.us-east-1.amazonaws.com"})
    EXPECT_FALSE(match_service_name(n)) << n;
}

TEST(EndpointCatalog, PublicAddressesAreDistinctAndInTheRange) {
  std::set<std::string> seen;
  for (const auto& r : known_regions())
    for (const auto& s : endpoint_services()) {
      auto a = s.public_address(r);
      EXPECT_TRUE(a.starts_with("198.18.")) << a;
      EXPECT_TRUE(seen.insert(a).second) << a;
    }
  EXPECT_EQ(find_endpoint_service("com.amazonaws.us-east-1.ssmmessages", "us-east-1")->public_address("us-east-1"),
            "198.18.0.11");
  EXPECT_EQ(find_endpoint_service("com.amazonaws.us-east-1.ssmmessages", "eu-west-1"), nullptr);
  EXPECT_GE(region_octet("xx-nowhere-9"), 128);
}

TEST(EndpointCatalog, EndpointNamesGiveTheirEndpoint) {
  const auto* s = find_endpoint_service("com.amazonaws.us-east-1.ecr.dkr", "us-east-1");
  ASSERT_NE(s, nullptr);
  auto regional = s->endpoint_dns_name("vpce-0123456789abcdef0", "abcd1234", "us-east-1");
  EXPECT_EQ(regional, "vpce-0123456789abcdef0-abcd1234.dkr.ecr.us-east-1.vpce.amazonaws.com");
  EXPECT_EQ(match_endpoint_dns_name(regional), "vpce-0123456789abcdef0");
  EXPECT_EQ(match_endpoint_dns_name(s->endpoint_dns_name("vpce-0123456789abcdef0", "abcd1234", "us-east-1", "us-east-1a")),
            "vpce-0123456789abcdef0");
  EXPECT_FALSE(match_endpoint_dns_name("vpce.example.com"));
}

TEST(EndpointCatalog, CertificateNamesCoverEveryPublicName) {
  auto names = certificate_names("eu-west-1");
  auto covered = [&](const std::string& host) {
    for (const auto& n : names)
      if (dns_name_matches(n, host)) return true;
    return false;
  };
  for (const char* h : {"ssmmessages.eu-west-1.amazonaws.com", "api.ecr.eu-west-1.amazonaws.com",
                        "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "bucket.s3.eu-west-1.amazonaws.com",
                        "ecs-a-1.eu-west-1.amazonaws.com", "vpce-1-abcd.ssm.eu-west-1.vpce.amazonaws.com"})
    EXPECT_TRUE(covered(h)) << h;
}

}  // namespace
}  // namespace pier::aws
