// The one place where errors become HTTP: status codes, the per-protocol
// spelling of the authentication errors, and sender/receiver fault.
#pragma once

#include "aws/model.h"
#include "common/error.h"

namespace pier::aws {

// The HTTP status for an error: the model's httpStatusCode for that exception
// if the service declares one, else AWS's status for well-known codes, else by
// category.
int http_status(const ServiceModel* model, const Error& e);

// Authentication and generic protocol errors are spelled differently per
// protocol (SignatureDoesNotMatch vs InvalidSignatureException, …); this maps
// pier's generic codes to the spelling the protocol's clients expect.
Error for_protocol(Protocol p, Error e);

// Validation errors, in the protocol's spelling.
std::string validation_code(Protocol p, bool missing);

}  // namespace pier::aws
