#include "services/iam/managed_policies.h"

#include <string>

namespace pier::svc::iam {

const std::vector<ManagedPolicy>& aws_managed_policies() {
  static const std::vector<ManagedPolicy> kPolicies = {
      {"AmazonECSTaskExecutionRolePolicy", "/service-role/", "ANPAJG4T4G4PV56DE72PY", "v1",
       R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]})",
       "Provides access to other AWS service resources that are required to run Amazon ECS tasks"},
      {"AmazonEC2ContainerRegistryPowerUser", "/", "ANPAJDNE5PIHROIBGGDDW", "v1",
       R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:GetRepositoryPolicy","ecr:DescribeRepositories","ecr:ListImages","ecr:DescribeImages","ecr:BatchGetImage","ecr:GetLifecyclePolicy","ecr:GetLifecyclePolicyPreview","ecr:ListTagsForResource","ecr:DescribeImageScanFindings","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage"],"Resource":"*"}]})",
       "Provides full access to Amazon EC2 Container Registry repositories, but does not allow "
       "repository deletion or policy changes."},
      {"AWSLambdaBasicExecutionRole", "/service-role/", "ANPAJNCQGXC42545SKXIK", "v1",
       R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]})",
       "Provides write permissions to CloudWatch Logs."},
  };
  return kPolicies;
}

const ManagedPolicy* find_aws_managed(std::string_view arn) {
  constexpr std::string_view kPrefix = "arn:aws:iam::aws:policy";
  if (!arn.starts_with(kPrefix)) return nullptr;
  std::string_view rest = arn.substr(kPrefix.size());
  for (const auto& p : aws_managed_policies())
    if (rest == std::string(p.path) + std::string(p.name)) return &p;
  return nullptr;
}

}  // namespace pier::svc::iam
