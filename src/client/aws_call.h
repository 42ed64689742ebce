// Signed calls from pier's own clients to an AWS endpoint: the REST calls the
// agent makes to ssmmessages and the JSON-protocol calls (SSM ResumeSession,
// StartSession, …) the plugin and `pier` make.
#pragma once

#include <boost/json.hpp>

#include "client/credentials.h"
#include "client/transport.h"

namespace pier::client {

struct Endpoint {
  Url url;                        // scheme, host, port (its target is ignored)
  std::string region = "us-east-1";
  ConnectOptions connect;
};

// SigV4 headers (Host, X-Amz-Date, Authorization, X-Amz-Security-Token) for
// a request to `target` (path?query) at the endpoint.
Headers sign_headers(const Endpoint& ep, std::string_view service, const std::string& method,
                     const std::string& target, const Headers& extra, std::string_view body,
                     const Credentials& creds);

// POST of a JSON 1.1 body with X-Amz-Target; the answer's object, or its AWS
// error (code from __type, message) as an Error of the status's kind.
boost::asio::awaitable<Result<boost::json::object>> call_json(const Endpoint& ep, std::string_view service,
                                                               std::string_view amz_target,
                                                               const boost::json::object& body,
                                                               const Credentials& creds);

// A signed request with a body; the raw answer (any status).
boost::asio::awaitable<Result<HttpResponse>> signed_request(const Endpoint& ep, std::string_view service,
                                                            const std::string& method, const std::string& target,
                                                            const Headers& extra, std::string body,
                                                            const Credentials& creds);

// Region from AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
std::string region_from_environment();

}  // namespace pier::client
