#include "services/ecs/ecs.h"

#include <gtest/gtest.h>

namespace pier::svc::ecs {
namespace {

TEST(FargateSizes, FollowTheDocumentedTable) {
  EXPECT_TRUE(fargate_size_valid(256, 512));
  EXPECT_TRUE(fargate_size_valid(256, 2048));
  EXPECT_FALSE(fargate_size_valid(256, 4096));
  EXPECT_TRUE(fargate_size_valid(512, 4096));
  EXPECT_FALSE(fargate_size_valid(512, 1536));
  EXPECT_TRUE(fargate_size_valid(1024, 8192));
  EXPECT_TRUE(fargate_size_valid(4096, 30720));
  EXPECT_FALSE(fargate_size_valid(4096, 31744));
  EXPECT_TRUE(fargate_size_valid(8192, 16384 + 4096));
  EXPECT_FALSE(fargate_size_valid(8192, 16384 + 1024));
  EXPECT_TRUE(fargate_size_valid(16384, 122880));
  EXPECT_FALSE(fargate_size_valid(300, 1024));
}

TEST(TaskSizeUnits, CpuAndMemoryAreNormalized) {
  EXPECT_EQ(parse_cpu("256"), 256);
  EXPECT_EQ(parse_cpu("0.25 vCPU"), 256);
  EXPECT_EQ(parse_cpu("1 vcpu"), 1024);
  EXPECT_EQ(parse_cpu("1024 CPU"), 1024);
  EXPECT_EQ(parse_cpu("lots"), std::nullopt);
  EXPECT_EQ(parse_memory("512"), 512);
  EXPECT_EQ(parse_memory("0.5 GB"), 512);
  EXPECT_EQ(parse_memory("2GB"), 2048);
  EXPECT_EQ(parse_memory("512 MiB"), 512);
  EXPECT_EQ(parse_memory("-1"), std::nullopt);
  EXPECT_EQ(parse_memory("1 TB"), std::nullopt);
}

}  // namespace
}  // namespace pier::svc::ecs

namespace pier::svc::ecs {
namespace {

// ECS Exec's targets: cluster names may hold underscores; task and runtime ids do not.
TEST(ExecTargets, AreBuiltAndReadBackAsTheAwsCliBuildsThem) {
  std::string t = exec_target("arn:aws:ecs:us-east-1:000000000000:cluster/fa_127-cluster",
                              "arn:aws:ecs:us-east-1:000000000000:task/fa_127-cluster/0123456789abcdef0123456789abcdef",
                              "0123456789abcdef0123456789abcdef-527074092");
  EXPECT_EQ(t, "ecs:fa_127-cluster_0123456789abcdef0123456789abcdef_0123456789abcdef0123456789abcdef-527074092");
  EXPECT_EQ(exec_target_task(t), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(exec_target_task("mi-0123456789abcdef0"), "");
  EXPECT_EQ(exec_target_task("ecs:nounderscores"), "");
  EXPECT_EQ(exec_target_task("ecs:c_t"), "");
}

}  // namespace
}  // namespace pier::svc::ecs
