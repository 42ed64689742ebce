// The IAM service (roles, inline and managed policies) and the identity
// provider that the dispatcher asks who a caller is and which policies apply.
// Thread-safe: all state is in the store.
#pragma once

#include <optional>

#include "aws/dispatcher.h"
#include "iam/policy.h"
#include "store/store.h"

namespace pier::svc::iam {

namespace json = boost::json;

struct Config {
  std::string account = "000000000000";
  std::string root_access_key = "test";
  std::string root_secret = "test";
};

class IamService {
 public:
  IamService(store::Store& store, time::Clock clock, Config config);
  aws::ServiceDef definition();
  const Config& config() const { return config_; }

  // The stored Role document (IAM's Role shape) for a role ARN.
  Result<std::optional<json::object>> role_by_arn(const std::string& arn);
  // Inline and attached managed policies of a role.
  Result<std::vector<pier::iam::Policy>> role_policies(const std::string& account,
                                                      const std::string& role_name);

 private:
  store::Store& store_;
  time::Clock clock_;
  Config config_;
};

class Identities : public aws::IdentityProvider {
 public:
  Identities(store::Store& store, IamService& iam);
  Result<std::optional<Found>> find(std::string_view access_key) override;
  Result<std::vector<pier::iam::Policy>> policies(const aws::Principal& p) override;

 private:
  store::Store& store_;
  IamService& iam_;
};

}  // namespace pier::svc::iam
