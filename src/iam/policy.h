// IAM policy documents and their evaluation.
//
// evaluate() follows AWS's logic for identity-based policies within one
// account: an explicit Deny in any statement wins; otherwise an Allow grants;
// otherwise the request is implicitly denied. Action matching is
// case-insensitive with '*' and '?'; resource ARNs match case-sensitively.
// Conditions support the String*, Arn*, Bool, Numeric*, Date*, IpAddress,
// Null operators, the IfExists suffix and the ForAnyValue / ForAllValues set
// qualifiers; an unknown operator makes the statement not apply (as AWS treats
// a condition it cannot satisfy).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pier::iam {

struct Condition {
  std::string op;   // e.g. "StringEquals", "ForAnyValue:StringLike", "ArnLikeIfExists"
  std::string key;  // e.g. "aws:SourceArn" (matched case-insensitively)
  std::vector<std::string> values;
};

struct Statement {
  std::string sid;
  bool allow = true;
  bool not_action = false;
  std::vector<std::string> actions;
  bool not_resource = false;
  std::vector<std::string> resources;  // empty with !not_resource: no Resource element
  std::vector<Condition> conditions;
  bool has_principal = false;         // resource policies only
  std::map<std::string, std::vector<std::string>> principals;  // "AWS", "Service", "*"
};

struct Policy {
  std::string version;
  std::vector<Statement> statements;
};

// Parses a policy document. Errors have code MalformedPolicyDocument and AWS's
// wording.
Result<Policy> parse_policy(std::string_view json_text);

// The request being authorized. Context keys are matched case-insensitively;
// a key may have several values (multivalued keys such as aws:TagKeys).
struct Request {
  std::string action;    // "ecs:RegisterTaskDefinition"
  std::string resource;  // an ARN, or "*"
  std::map<std::string, std::vector<std::string>> context;
};

enum class Decision { kImplicitDeny, kAllow, kExplicitDeny };
std::string_view decision_name(Decision d);

// Evaluates identity policies (no Principal element) together.
Decision evaluate(const std::vector<Policy>& policies, const Request& req);

// Whether a resource policy (e.g. a role's trust policy) lets principal (an
// ARN, or a service name such as "ecs-tasks.amazonaws.com") perform the action.
Decision evaluate_resource_policy(const Policy& policy, const Request& req,
                                  std::string_view principal_type,
                                  const std::vector<std::string>& principal_ids);

}  // namespace pier::iam
