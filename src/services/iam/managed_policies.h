// The AWS-managed policies pier knows, with the documents AWS publishes for them.
#pragma once

#include <string_view>
#include <vector>

namespace pier::svc::iam {

struct ManagedPolicy {
  std::string_view name;
  std::string_view path;
  std::string_view policy_id;
  std::string_view version_id;
  std::string_view document;
  std::string_view description;
};

const std::vector<ManagedPolicy>& aws_managed_policies();
const ManagedPolicy* find_aws_managed(std::string_view arn);

}  // namespace pier::svc::iam
