// The wire protocols, driven by the service model: decoding a request into a
// protocol-neutral document (a JSON object keyed by the model's member names,
// timestamps as epoch seconds, blobs as raw bytes), validating it against the
// input shape, and encoding an output document or an error the way the
// protocol's clients parse it. No service code here, and no protocol
// knowledge anywhere else.
#pragma once

#include <boost/json.hpp>

#include <map>
#include <string>

#include "aws/model.h"
#include "common/error.h"
#include "http/server.h"

namespace pier::aws {

namespace json = boost::json;

// A request's URL pieces, decoded once.
struct Url {
  std::string path;       // raw (percent-encoded) path
  std::string raw_query;  // raw query string
  std::multimap<std::string, std::string> query;  // decoded
};
Url split_target(std::string_view target);

// Which operation a request names: X-Amz-Target (JSON), Action (query, EC2),
// or method + path (REST). Unknown → generic code "UnknownOperation".
Result<const Operation*> resolve_operation(const ServiceModel& m, const http::Request& req,
                                           const Url& url,
                                           const std::multimap<std::string, std::string>& form);

// Decodes and validates the input document of op.
Result<json::object> decode_input(const ServiceModel& m, const Operation& op,
                                  const http::Request& req, const Url& url,
                                  const std::multimap<std::string, std::string>& form);

// Validates a document against a shape (required members, enums, lengths,
// ranges); the error is in the protocol's spelling.
Status validate(const ServiceModel& m, const Shape& shape, const json::value& doc);

http::Response encode_output(const ServiceModel& m, const Operation& op, const json::object& out,
                             const std::string& request_id, unsigned version);

http::Response encode_error(Protocol p, const ServiceModel* m, const Error& e,
                            const std::string& request_id, unsigned version);

// Parses an application/x-www-form-urlencoded body.
std::multimap<std::string, std::string> parse_form(std::string_view body);

// Guesses the protocol of a request that could not be matched to a service
// (for the shape of the error): X-Amz-Target → JSON, a form → query.
Protocol guess_protocol(const http::Request& req);

}  // namespace pier::aws
