// AWS Signature Version 4: parsing what a request claims (the Authorization
// header or the presigned query form), rebuilding the canonical request, and
// verifying the signature against a secret. Pure functions; no I/O.
//
// Errors come back with generic codes (SignatureDoesNotMatch,
// IncompleteSignature, MissingAuthenticationToken, InvalidClientTokenId,
// AccessDenied for an expired presigned URL); aws/errors.cc turns them into
// the spelling of the service's protocol.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace pier::aws::sigv4 {

using Headers = std::vector<std::pair<std::string, std::string>>;

// A request as it came off the wire: the raw (still percent-encoded) path and
// query string, the headers in arrival order (repeats kept), the body.
struct WireRequest {
  std::string method;
  std::string path;
  std::string query;
  Headers headers;
  std::string_view body;
};

struct Claim {
  bool presigned = false;
  std::string access_key;
  std::string date;        // scope date, YYYYMMDD
  std::string region;
  std::string service;
  std::string amz_date;    // YYYYMMDDTHHMMSSZ
  std::vector<std::string> signed_headers;
  std::string signature;   // lower-case hex
  std::string security_token;
  long expires = 0;        // presigned only, seconds
};

// Whether the request carries any SigV4 material at all.
bool is_signed(const WireRequest& req);

// Parses the claim; IncompleteSignature / MissingAuthenticationToken on failure.
Result<Claim> parse(const WireRequest& req);

struct Options {
  // S3 signs the path as sent and does not normalize it; every other service
  // normalizes and encodes it once more.
  bool s3 = false;
  // Whether dot segments and empty segments are removed before encoding
  // (every SDK does; the test suite has cases without).
  bool normalize = true;
  std::chrono::seconds window{300};
  // Presigned URLs whose X-Amz-Security-Token was appended after signing (as
  // some clients do for STS credentials) leave it out of the canonical query.
  // verify() tries both forms.
  bool token_after_signing = false;
  // Presigned URLs from the SDKs sign UNSIGNED-PAYLOAD (S3 always does);
  // the test suite signs the body's hash. verify() tries both.
  bool unsigned_payload = false;
};

std::string canonical_request(const WireRequest& req, const Claim& claim, const Options& opt);
std::string string_to_sign(const Claim& claim, std::string_view canonical);
std::string signature(std::string_view secret, const Claim& claim, std::string_view sts);

// Verifies the claim: the signature for the secret, the time window (header
// form) or the expiry (presigned), and that host is signed.
Status verify(const WireRequest& req, const Claim& claim, std::string_view secret,
              std::chrono::system_clock::time_point now, const Options& opt,
              std::string* canonical_out = nullptr);

// Signs req in place (header form) — used by the pier CLI and by tests.
void sign(WireRequest& req, std::string_view access_key, std::string_view secret,
          std::string_view region, std::string_view service,
          std::chrono::system_clock::time_point now, std::string_view token = {});

}  // namespace pier::aws::sigv4
