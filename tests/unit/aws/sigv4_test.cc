#include "aws/sigv4.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/strings.h"
#include "common/time.h"

namespace pier::aws::sigv4 {
namespace {

namespace fs = std::filesystem;

// The suite lives in the steering repo's shared/ beside the clone; it is read
// from there, never copied into the project.
fs::path vector_dir() {
  if (const char* d = std::getenv("PIER_SIGV4_VECTORS")) return d;
  return fs::path(PIER_SOURCE_DIR) / ".." / "shared" / "vectors" / "sigv4";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Parsed {
  WireRequest req;
  std::string body;
};

// Parses the suite's request files: a request line, headers (a line starting
// with whitespace continues the previous value), a blank line, the body.
Parsed parse_request(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  p.req.method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto q = target.find('?');
  p.req.path = target.substr(0, q);
  if (q != std::string::npos) p.req.query = target.substr(q + 1);
  while (std::getline(in, line)) {
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !p.req.headers.empty()) {
      p.req.headers.back().second += "\n" + line;
      continue;
    }
    auto colon = line.find(':');
    p.req.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  std::stringstream rest;
  rest << in.rdbuf();
  p.body = rest.str();
  return p;
}

struct Case {
  std::string name;
  boost::json::object context;
  std::string secret;
  std::chrono::system_clock::time_point when;
  Options opt;
};

std::vector<std::string> case_names() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(vector_dir(), ec))
    if (e.is_directory() && fs::exists(e.path() / "context.json"))
      out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

Case load_case(const std::string& name) {
  Case c;
  c.name = name;
  c.context = boost::json::parse(slurp(vector_dir() / name / "context.json")).as_object();
  c.secret = std::string(c.context["credentials"].as_object()["secret_access_key"].as_string());
  auto ts = std::string(c.context["timestamp"].as_string());
  c.when = std::chrono::system_clock::from_time_t(
      static_cast<std::time_t>(*time::parse_iso8601(ts)));
  c.opt.normalize = c.context["normalize"].as_bool();
  return c;
}

class SigV4Vectors : public ::testing::TestWithParam<std::string> {};

TEST(SigV4Suite, IsPresent) {
  ASSERT_TRUE(fs::exists(vector_dir())) << "SigV4 vectors not found at " << vector_dir();
  EXPECT_GE(case_names().size(), 30u);
}

void check_form(const Case& c, const std::string& form) {
  SCOPED_TRACE(c.name + " (" + form + ")");
  auto dir = vector_dir() / c.name;
  Parsed p = parse_request(slurp(dir / (form + "-signed-request.txt")));
  p.req.body = p.body;
  ASSERT_TRUE(is_signed(p.req));
  auto claim = parse(p.req);
  ASSERT_TRUE(claim.ok()) << claim.error().message;
  EXPECT_EQ(claim->presigned, form == "query");

  Options shown = c.opt;
  if (auto* o = c.context.if_contains("omit_session_token"); o && o->as_bool())
    shown.token_after_signing = form == "query";
  std::string canonical = canonical_request(p.req, *claim, shown);
  EXPECT_EQ(canonical, slurp(dir / (form + "-canonical-request.txt")));
  EXPECT_EQ(string_to_sign(*claim, canonical), slurp(dir / (form + "-string-to-sign.txt")));
  EXPECT_EQ(signature(c.secret, *claim, string_to_sign(*claim, canonical)),
            slurp(dir / (form + "-signature.txt")));

  auto ok = verify(p.req, *claim, c.secret, c.when, c.opt);
  EXPECT_TRUE(ok.ok()) << ok.error().message;

  // A wrong secret is refused.
  auto bad = verify(p.req, *claim, c.secret + "x", c.when, c.opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "SignatureDoesNotMatch");

  // Any change to a signed part is refused: each signed header's value, the
  // method, the path, the query, and (when it is signed) the body.
  for (const auto& name : claim->signed_headers) {
    WireRequest m = p.req;
    for (auto& [k, v] : m.headers)
      if (str::iequals(k, name)) v += "x";
    if (str::iequals(name, "x-amz-date")) continue;  // changes the time, not only the signature
    EXPECT_FALSE(verify(m, *claim, c.secret, c.when, c.opt).ok()) << "header " << name;
  }
  {
    WireRequest m = p.req;
    m.method = m.method == "GET" ? "POST" : "GET";
    EXPECT_FALSE(verify(m, *claim, c.secret, c.when, c.opt).ok()) << "method";
  }
  {
    WireRequest m = p.req;
    m.path += "x";
    EXPECT_FALSE(verify(m, *claim, c.secret, c.when, c.opt).ok()) << "path";
  }
  {
    WireRequest m = p.req;
    m.query += m.query.empty() ? "extra=1" : "&extra=1";
    EXPECT_FALSE(verify(m, *claim, c.secret, c.when, c.opt).ok()) << "query";
  }
  if (c.context.at("sign_body").as_bool() || !p.body.empty()) {
    WireRequest m = p.req;
    std::string body = p.body + "x";
    m.body = body;
    bool declares = false;
    for (auto& [k, v] : m.headers) declares |= str::iequals(k, "x-amz-content-sha256");
    // A declared payload hash is signed instead of the body; the service
    // checks the body against it separately.
    if (!declares) {
      EXPECT_FALSE(verify(m, *claim, c.secret, c.when, c.opt).ok()) << "body";
    }
  }
  // Outside the window (header form) or after expiry (query form): refused.
  auto late = verify(p.req, *claim, c.secret, c.when + std::chrono::hours(2), c.opt);
  EXPECT_FALSE(late.ok());
}

TEST_P(SigV4Vectors, HeaderFormVerifies) { check_form(load_case(GetParam()), "header"); }
TEST_P(SigV4Vectors, QueryFormVerifies) { check_form(load_case(GetParam()), "query"); }

INSTANTIATE_TEST_SUITE_P(Suite, SigV4Vectors, ::testing::ValuesIn(case_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

WireRequest simple_request() {
  WireRequest r;
  r.method = "POST";
  r.path = "/";
  r.headers = {{"Host", "127.0.0.1:4566"}, {"Content-Type", "application/x-amz-json-1.1"}};
  r.body = "{}";
  return r;
}

TEST(SigV4Verifier, AcceptsItsOwnSignature) {
  auto now = std::chrono::system_clock::now();
  WireRequest r = simple_request();
  sign(r, "test", "test", "us-east-1", "ecs", now);
  auto c = parse(r);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->service, "ecs");
  EXPECT_EQ(c->region, "us-east-1");
  EXPECT_TRUE(verify(r, *c, "test", now, {}).ok());
}

TEST(SigV4Verifier, RejectsExpiredDate) {
  auto then = std::chrono::system_clock::now() - std::chrono::minutes(6);
  WireRequest r = simple_request();
  sign(r, "test", "test", "us-east-1", "ecs", then);
  auto c = parse(r);
  ASSERT_TRUE(c.ok());
  auto v = verify(r, *c, "test", std::chrono::system_clock::now(), {});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, "SignatureExpired");
  EXPECT_TRUE(v.error().message.starts_with("Signature expired: ")) << v.error().message;
}

TEST(SigV4Verifier, AllowsFifteenMinutesForS3) {
  auto then = std::chrono::system_clock::now() - std::chrono::minutes(10);
  WireRequest r = simple_request();
  sign(r, "test", "test", "us-east-1", "s3", then);
  auto c = parse(r);
  ASSERT_TRUE(c.ok());
  Options s3;
  s3.s3 = true;
  s3.window = std::chrono::minutes(15);
  // The S3 canonical path is the raw one; "/" is the same either way.
  EXPECT_TRUE(verify(r, *c, "test", std::chrono::system_clock::now(), s3).ok());
}

TEST(SigV4Parser, MissingSignatureIsMissingAuthenticationToken) {
  WireRequest r = simple_request();
  EXPECT_FALSE(is_signed(r));
  auto c = parse(r);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, "MissingAuthenticationToken");
}

TEST(SigV4Parser, TruncatedHeaderIsIncompleteSignature) {
  WireRequest r = simple_request();
  r.headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=test/20150830/us-east-1/ecs/aws4_request");
  r.headers.emplace_back("X-Amz-Date", "20150830T123600Z");
  auto c = parse(r);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, "IncompleteSignature");
}

TEST(SigV4Parser, PresignedExpiryOverAWeekIsRefused) {
  WireRequest r;
  r.method = "GET";
  r.path = "/";
  r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20150830%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
  r.headers = {{"Host", "x"}};
  auto c = parse(r);
  ASSERT_TRUE(c.ok());
  auto t = time::parse_amz_date("20150830T123600Z");
  auto v = verify(r, *c, "test", *t, {});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, "AuthorizationQueryParametersError");
}

}  // namespace
}  // namespace pier::aws::sigv4
