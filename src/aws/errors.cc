#include "aws/errors.h"

#include <string_view>
#include <unordered_map>

namespace pier::aws {

int http_status(const ServiceModel* model, const Error& e) {
  if (model) {
    auto it = model->errors_by_code.find(e.code);
    if (it != model->errors_by_code.end() && it->second->error_status)
      return it->second->error_status;
  }
  static const std::unordered_map<std::string_view, int> kKnown = {
      {"AccessDenied", 403},
      {"AccessDeniedException", 400},
      {"SignatureDoesNotMatch", 403},
      {"InvalidSignatureException", 400},
      {"IncompleteSignature", 400},
      {"IncompleteSignatureException", 400},
      {"MissingAuthenticationToken", 403},
      {"MissingAuthenticationTokenException", 400},
      {"InvalidClientTokenId", 403},
      {"UnrecognizedClientException", 400},
      {"ExpiredToken", 400},
      {"ExpiredTokenException", 400},
      {"InvalidAccessKeyId", 403},
      {"RequestTimeTooSkewed", 403},
      {"AuthorizationQueryParametersError", 400},
      {"AuthFailure", 401},
      {"NoSuchEntity", 404},
      {"EntityAlreadyExists", 409},
      {"DeleteConflict", 409},
      {"LimitExceeded", 409},
      {"MalformedPolicyDocument", 400},
      {"InvalidAction", 400},
      {"UnknownOperationException", 400},
      {"NotImplemented", 501},
      {"InternalFailure", 500},
      {"InternalError", 500},
      {"ServiceUnavailable", 503},
      {"ThrottlingException", 400},
      {"ValidationError", 400},
      {"ValidationException", 400},
      {"SerializationException", 400},
      {"MissingParameter", 400},
      {"InvalidParameterValue", 400},
      {"RequestEntityTooLarge", 413},
  };
  if (auto it = kKnown.find(e.code); it != kKnown.end()) return it->second;
  switch (e.kind) {
    case ErrorKind::kInvalid: return 400;
    case ErrorKind::kNotFound: return 400;
    case ErrorKind::kConflict: return 400;
    case ErrorKind::kDenied: return 403;
    case ErrorKind::kUnauthenticated: return 403;
    case ErrorKind::kLimit: return 400;
    case ErrorKind::kUnavailable: return 503;
    case ErrorKind::kInternal: return 500;
  }
  return 500;
}

Error for_protocol(Protocol p, Error e) {
  bool json = p == Protocol::kJson || p == Protocol::kRestJson;
  bool s3 = p == Protocol::kRestXml;
  const std::string& c = e.code;
  if (c == "SignatureExpired") {
    e.code = json ? "InvalidSignatureException" : "SignatureDoesNotMatch";
  } else if (c == "SignatureDoesNotMatch") {
    if (json) e.code = "InvalidSignatureException";
  } else if (c == "IncompleteSignature") {
    if (json) e.code = "IncompleteSignatureException";
    if (s3) e.code = "AuthorizationHeaderMalformed";
  } else if (c == "MissingAuthenticationToken") {
    if (json) e.code = "MissingAuthenticationTokenException";
    if (s3) {
      e.code = "AccessDenied";
      e.message = "Access Denied";
    }
  } else if (c == "InvalidClientTokenId") {
    if (json) e.code = "UnrecognizedClientException";
    if (s3) {
      e.code = "InvalidAccessKeyId";
      e.message = "The AWS Access Key Id you provided does not exist in our records.";
    }
    if (p == Protocol::kEc2) e.code = "AuthFailure";
  } else if (c == "ExpiredToken") {
    if (json) e.code = "ExpiredTokenException";
  } else if (c == "AccessDenied") {
    if (json) e.code = "AccessDeniedException";
  } else if (c == "UnknownOperation") {
    e.code = json ? "UnknownOperationException" : "InvalidAction";
    if (s3) e.code = "MethodNotAllowed";
  } else if (c == "InternalFailure" && !json) {
    e.code = p == Protocol::kEc2 || s3 ? "InternalError" : "InternalFailure";
  }
  return e;
}

std::string validation_code(Protocol p, bool missing) {
  switch (p) {
    case Protocol::kJson: return "ValidationException";
    case Protocol::kRestJson: return "ValidationException";
    case Protocol::kQuery: return "ValidationError";
    case Protocol::kEc2: return missing ? "MissingParameter" : "InvalidParameterValue";
    case Protocol::kRestXml: return "InvalidArgument";
  }
  return "ValidationException";
}

}  // namespace pier::aws
