// SSM Session Manager (StartSession, ResumeSession, TerminateSession,
// DescribeSessions) and the ssmmessages REST calls the agent makes
// (CreateControlChannel, CreateDataChannel), over exec::Broker.
#pragma once

#include "aws/dispatcher.h"
#include "exec/broker.h"

namespace pier::svc::ssm {

class SsmService {
 public:
  explicit SsmService(exec::Broker& broker);
  aws::ServiceDef definition();
  // The ssmmessages endpoints, which no botocore model describes.
  std::vector<aws::SignedRoute> channel_routes();

  // The session document AWS names, with its parameters filled in.
  static Result<boost::json::object> document(const std::string& name,
                                              const boost::json::object& parameters);

 private:
  exec::Broker& broker_;
};

}  // namespace pier::svc::ssm
