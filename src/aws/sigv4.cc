#include "aws/sigv4.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/crypto.h"
#include "common/strings.h"
#include "common/time.h"

namespace pier::aws::sigv4 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

const std::string* header(const WireRequest& req, std::string_view name) {
  for (const auto& [k, v] : req.headers)
    if (str::iequals(k, name)) return &v;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> query_pairs(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  if (q.empty()) return out;
  for (auto part : str::split(q, '&')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string_view k = part.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
    auto dk = str::uri_decode(k);
    auto dv = str::uri_decode(v);
    out.emplace_back(dk ? *dk : std::string(k), dv ? *dv : std::string(v));
  }
  return out;
}

const std::string* query_value(const std::vector<std::pair<std::string, std::string>>& q,
                               std::string_view key) {
  for (const auto& [k, v] : q)
    if (k == key) return &v;
  return nullptr;
}

// RFC 3986 remove_dot_segments, plus collapsing of empty segments, as the SDKs
// normalize a path before signing it.
std::string normalize_path(std::string_view path) {
  std::vector<std::string_view> out;
  for (auto seg : str::split(path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(seg);
  }
  std::string r = "/";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i) r += '/';
    r += out[i];
  }
  bool trailing = !path.empty() && path.back() == '/';
  if (!out.empty() && (trailing || path.ends_with("/.") || path.ends_with("/.."))) r += '/';
  return r;
}

std::string canonical_value(std::string_view v) {
  // Trim, and collapse every run of whitespace (including folded lines) to one space.
  std::string out;
  bool space = false;
  for (char c : str::trim(v)) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

Error incomplete(std::string msg) { return Error::unauthenticated("IncompleteSignature", std::move(msg)); }

}  // namespace

bool is_signed(const WireRequest& req) {
  if (header(req, "authorization")) return true;
  for (const auto& [k, v] : query_pairs(req.query))
    if (k == "X-Amz-Signature" || k == "X-Amz-Credential") return true;
  return false;
}

Result<Claim> parse(const WireRequest& req) {
  Claim c;
  auto q = query_pairs(req.query);
  std::string credential;
  std::string signed_headers;
  if (const auto* auth = header(req, "authorization")) {
    std::string_view a = str::trim(*auth);
    if (!a.starts_with(kAlgorithm)) {
      if (a.starts_with("AWS "))
        return Error::unauthenticated("IncompleteSignature",
                                      "Signature Version 2 is not supported; use Signature Version 4");
      return incomplete(fmt::format("Unsupported AWS 'algorithm': '{}'", a.substr(0, a.find(' '))));
    }
    a.remove_prefix(kAlgorithm.size());
    std::string sig;
    for (auto part : str::split(a, ',')) {
      part = str::trim(part);
      auto eq = part.find('=');
      if (eq == std::string_view::npos) continue;
      auto k = part.substr(0, eq);
      auto v = part.substr(eq + 1);
      if (k == "Credential") credential = std::string(v);
      else if (k == "SignedHeaders") signed_headers = std::string(v);
      else if (k == "Signature") sig = std::string(v);
    }
    std::vector<std::string> missing;
    if (credential.empty()) missing.push_back("Credential");
    if (signed_headers.empty()) missing.push_back("SignedHeaders");
    if (sig.empty()) missing.push_back("Signature");
    const std::string* date = header(req, "x-amz-date");
    if (!date) date = header(req, "date");
    if (!missing.empty() || !date) {
      std::string msg;
      for (const auto& m : missing)
        msg += fmt::format("Authorization header requires '{}' parameter. ", m);
      if (!date) msg += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
      msg += fmt::format("Authorization={}", std::string(kAlgorithm) + " ...");
      return incomplete(std::string(str::trim(msg)));
    }
    c.amz_date = std::string(str::trim(*date));
    c.signature = sig;
    if (const auto* t = header(req, "x-amz-security-token")) c.security_token = std::string(str::trim(*t));
  } else if (query_value(q, "X-Amz-Signature") || query_value(q, "X-Amz-Credential") ||
             query_value(q, "X-Amz-Algorithm")) {
    c.presigned = true;
    std::vector<std::string> missing;
    for (const char* k : {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature",
                          "X-Amz-SignedHeaders", "X-Amz-Date"})
      if (!query_value(q, k)) missing.push_back(k);
    if (!missing.empty()) {
      std::string msg;
      for (const auto& m : missing) msg += fmt::format("AWS query-string parameters must include '{}'. ", m);
      return incomplete(msg + "Re-examine the query-string parameters.");
    }
    if (*query_value(q, "X-Amz-Algorithm") != kAlgorithm)
      return incomplete("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    credential = *query_value(q, "X-Amz-Credential");
    signed_headers = *query_value(q, "X-Amz-SignedHeaders");
    c.signature = *query_value(q, "X-Amz-Signature");
    c.amz_date = *query_value(q, "X-Amz-Date");
    if (const auto* e = query_value(q, "X-Amz-Expires")) {
      try {
        c.expires = std::stol(*e);
      } catch (...) {
        return Error::unauthenticated("AuthorizationQueryParametersError",
                                      "X-Amz-Expires should be a number");
      }
    }
    if (const auto* t = query_value(q, "X-Amz-Security-Token")) c.security_token = *t;
  } else {
    return Error::unauthenticated("MissingAuthenticationToken", "Missing Authentication Token");
  }

  auto parts = str::split(credential, '/');
  if (parts.size() != 5 || parts[4] != "aws4_request" || parts[0].empty())
    return incomplete(fmt::format(
        "Credential should be scoped to a valid region. Credential={}",
        parts.empty() ? std::string() : std::string(parts[0])));
  c.access_key = std::string(parts[0]);
  c.date = std::string(parts[1]);
  c.region = std::string(parts[2]);
  c.service = std::string(parts[3]);
  for (auto h : str::split(signed_headers, ';'))
    if (!h.empty()) c.signed_headers.emplace_back(str::lower(h));
  return c;
}

std::string canonical_request(const WireRequest& req, const Claim& claim, const Options& opt) {
  std::string out = req.method + "\n";
  // Canonical URI.
  if (opt.s3) {
    out += req.path.empty() ? "/" : req.path;
  } else {
    std::string raw = req.path.empty() ? "/" : req.path;
    std::string path = opt.normalize ? normalize_path(raw) : raw;
    out += str::uri_encode(path, /*keep_slash=*/true);
  }
  out += '\n';
  // Canonical query string: every parameter but the signature, each part
  // decoded and encoded again strictly, sorted by key then value.
  auto q = query_pairs(req.query);
  std::vector<std::pair<std::string, std::string>> enc;
  for (const auto& [k, v] : q) {
    if (claim.presigned && k == "X-Amz-Signature") continue;
    if (claim.presigned && opt.token_after_signing && k == "X-Amz-Security-Token") continue;
    enc.emplace_back(str::uri_encode(k), str::uri_encode(v));
  }
  std::sort(enc.begin(), enc.end());
  for (size_t i = 0; i < enc.size(); ++i) {
    if (i) out += '&';
    out += enc[i].first + "=" + enc[i].second;
  }
  out += '\n';
  // Canonical headers: the signed ones, values of repeats joined by ','.
  for (const auto& name : claim.signed_headers) {
    std::string joined;
    bool first = true;
    for (const auto& [k, v] : req.headers) {
      if (!str::iequals(k, name)) continue;
      if (!first) joined += ',';
      joined += canonical_value(v);
      first = false;
    }
    out += name + ":" + joined + "\n";
  }
  out += '\n';
  for (size_t i = 0; i < claim.signed_headers.size(); ++i) {
    if (i) out += ';';
    out += claim.signed_headers[i];
  }
  out += '\n';
  // Payload hash: as declared (S3 and any client that sends the header), else
  // UNSIGNED-PAYLOAD for presigned S3 URLs, else the hash of the body.
  if (const auto* h = header(req, "x-amz-content-sha256")) {
    out += std::string(str::trim(*h));
  } else if ((opt.s3 || opt.unsigned_payload) && claim.presigned) {
    out += "UNSIGNED-PAYLOAD";
  } else {
    out += str::hex(crypto::sha256(req.body));
  }
  return out;
}

std::string string_to_sign(const Claim& claim, std::string_view canonical) {
  return fmt::format("{}\n{}\n{}/{}/{}/aws4_request\n{}", kAlgorithm, claim.amz_date, claim.date,
                     claim.region, claim.service, str::hex(crypto::sha256(canonical)));
}

namespace {
// The signing key depends only on the secret, the date, the region and the
// service, so each thread keeps the last few it derived (as the SDKs do).
struct KeyCacheEntry {
  std::string secret, date, region, service, key;
};
std::string signing_key(std::string_view secret, const Claim& claim) {
  thread_local std::vector<KeyCacheEntry> cache;
  for (const auto& e : cache)
    if (e.date == claim.date && e.region == claim.region && e.service == claim.service &&
        crypto::constant_time_equal(e.secret, secret))
      return e.key;
  std::string k = crypto::hmac_sha256("AWS4" + std::string(secret), claim.date);
  k = crypto::hmac_sha256(k, claim.region);
  k = crypto::hmac_sha256(k, claim.service);
  k = crypto::hmac_sha256(k, "aws4_request");
  if (cache.size() >= 16) cache.erase(cache.begin());
  cache.push_back({std::string(secret), claim.date, claim.region, claim.service, k});
  return k;
}
}  // namespace

std::string signature(std::string_view secret, const Claim& claim, std::string_view sts) {
  return str::hex(crypto::hmac_sha256(signing_key(secret, claim), sts));
}

Status verify(const WireRequest& req, const Claim& claim, std::string_view secret,
              std::chrono::system_clock::time_point now, const Options& opt,
              std::string* canonical_out) {
  auto t = time::parse_amz_date(claim.amz_date);
  if (!t) {
    // A Date header in RFC 1123 form is legal for the header form; pier's
    // clients all send X-Amz-Date, so anything else is refused clearly.
    return Error::unauthenticated(
        "IncompleteSignature",
        fmt::format("Date must be in ISO-8601 'basic format'. Got '{}'. See "
                    "http://en.wikipedia.org/wiki/ISO_8601",
                    claim.amz_date));
  }
  if (claim.amz_date.substr(0, 8) != claim.date)
    return Error::unauthenticated(
        "SignatureDoesNotMatch",
        fmt::format("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    "date from HTTP: '{}' != '{}', from '{}'.",
                    claim.date, claim.amz_date.substr(0, 8), claim.amz_date));
  if (std::find(claim.signed_headers.begin(), claim.signed_headers.end(), "host") ==
      claim.signed_headers.end())
    return Error::unauthenticated("SignatureDoesNotMatch",
                                  "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                                  "Authorization.");
  if (claim.presigned) {
    if (claim.expires <= 0 || claim.expires > 604800)
      return Error::unauthenticated(
          "AuthorizationQueryParametersError",
          "X-Amz-Expires must be less than a week (in seconds) that is 604800");
    if (now > *t + std::chrono::seconds(claim.expires))
      return Error::denied("AccessDenied", "Request has expired");
    if (*t > now + opt.window)
      return Error::denied("AccessDenied", "Request is not valid yet");
  } else {
    auto skew = now > *t ? now - *t : *t - now;
    if (skew > opt.window) {
      auto mins = std::chrono::duration_cast<std::chrono::minutes>(opt.window).count();
      std::string now_s = time::amz_date(now);
      std::string msg =
          now > *t
              ? fmt::format("Signature expired: {} is now earlier than {} ({} - {} min.)",
                            claim.amz_date, time::amz_date(now - opt.window), now_s, mins)
              : fmt::format("Signature not yet current: {} is still later than {} ({} + {} min.)",
                            claim.amz_date, time::amz_date(now + opt.window), now_s, mins);
      return Error::unauthenticated(opt.s3 ? "RequestTimeTooSkewed" : "SignatureExpired", msg);
    }
  }
  auto matches = [&](const Options& o) {
    std::string canonical = canonical_request(req, claim, o);
    std::string sts = string_to_sign(claim, canonical);
    if (canonical_out && canonical_out->empty()) *canonical_out = canonical;
    return crypto::constant_time_equal(signature(secret, claim, sts), str::lower(claim.signature));
  };
  bool ok = matches(opt);
  // Presigned URLs come in variants the signature alone cannot tell apart.
  for (int variant = 1; !ok && claim.presigned && variant < 4; ++variant) {
    Options v = opt;
    v.unsigned_payload = variant & 1;
    v.token_after_signing = variant & 2;
    if (v.token_after_signing && claim.security_token.empty()) continue;
    ok = matches(v);
  }
  if (!ok)
    return Error::unauthenticated(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.");
  return {};
}

void sign(WireRequest& req, std::string_view access_key, std::string_view secret,
          std::string_view region, std::string_view service,
          std::chrono::system_clock::time_point now, std::string_view token) {
  Claim c;
  c.access_key = std::string(access_key);
  c.amz_date = time::amz_date(now);
  c.date = c.amz_date.substr(0, 8);
  c.region = std::string(region);
  c.service = std::string(service);
  req.headers.emplace_back("X-Amz-Date", c.amz_date);
  if (!token.empty()) req.headers.emplace_back("X-Amz-Security-Token", std::string(token));
  for (const auto& [k, v] : req.headers) c.signed_headers.push_back(str::lower(k));
  std::sort(c.signed_headers.begin(), c.signed_headers.end());
  c.signed_headers.erase(std::unique(c.signed_headers.begin(), c.signed_headers.end()),
                         c.signed_headers.end());
  std::string sts = string_to_sign(c, canonical_request(req, c, {}));
  std::string sig = signature(secret, c, sts);
  std::string sh;
  for (size_t i = 0; i < c.signed_headers.size(); ++i) sh += (i ? ";" : "") + c.signed_headers[i];
  req.headers.emplace_back(
      "Authorization", fmt::format("{} Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, "
                                   "Signature={}",
                                   kAlgorithm, access_key, c.date, region, service, sh, sig));
}

}  // namespace pier::aws::sigv4
