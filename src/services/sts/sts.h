// STS: GetCallerIdentity and AssumeRole. Temporary credentials are stored so
// that the SigV4 layer (through iam::Identities) accepts them until they expire.
#pragma once

#include "aws/dispatcher.h"
#include "services/iam/iam.h"
#include "store/store.h"

namespace pier::svc::sts {

struct Issued {
  std::string access_key;
  std::string secret;
  std::string session_token;
  double expires = 0;
  std::string assumed_role_id;  // ROLEID:SESSION
  std::string assumed_role_arn;
};

class StsService {
 public:
  StsService(store::Store& store, iam::IamService& iam, time::Clock clock);
  aws::ServiceDef definition();

  // Issues credentials for a role without a caller (pier's own use: task roles).
  Result<Issued> issue(const std::string& role_arn, const std::string& session_name,
                       int64_t duration_seconds);

 private:
  store::Store& store_;
  iam::IamService& iam_;
  time::Clock clock_;
};

}  // namespace pier::svc::sts
