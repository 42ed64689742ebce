#include "client/credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>

#include "common/time.h"

namespace pier::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// A one-connection-at-a-time HTTP server on 127.0.0.1 (random port), on the
// test's io_context: it records each request and answers with reply().
class FakeEndpoint {
 public:
  struct Seen {
    std::string target, authorization, host;
  };
  explicit FakeEndpoint(asio::io_context& ioc)
      : acceptor_(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ioc, serve(), asio::detached);
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port()); }

  std::function<std::pair<int, std::string>(const Seen&)> reply;
  std::vector<Seen> seen;

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(kTuple);
      if (ec) co_return;
      beast::tcp_stream s(std::move(sock));
      beast::flat_buffer buf;
      bhttp::request<bhttp::string_body> req;
      auto [rec, rn] = co_await bhttp::async_read(s, buf, req, kTuple);
      if (rec) continue;
      Seen seen_now{std::string(req.target()), std::string(req[bhttp::field::authorization]),
                    std::string(req[bhttp::field::host])};
      seen.push_back(seen_now);
      auto [status, body] = reply ? reply(seen_now) : std::pair<int, std::string>{404, "{}"};
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
      res.set(bhttp::field::content_type, "application/json");
      res.body() = body;
      res.prepare_payload();
      co_await bhttp::async_write(s, res, kTuple);
      boost::system::error_code ignored;
      s.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
  }
  tcp::acceptor acceptor_;
};

template <class T>
T run(asio::io_context& ioc, asio::awaitable<T> a) {
  std::optional<T> out;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    out.emplace(co_await std::move(a));
    ioc.stop();
  }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  ioc.restart();
  ioc.run_for(20s);
  EXPECT_TRUE(out.has_value()) << "the coroutine did not finish";
  if (!out) return T(Error::internal("did not finish"));
  return std::move(*out);
}

struct TempFile {
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/pier-creds-XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

std::string creds_json(const std::string& key, std::chrono::system_clock::time_point expires) {
  return R"({"RoleArn":"arn:aws:iam::000000000000:role/task","AccessKeyId":")" + key +
         R"(","SecretAccessKey":"s3cr3t-)" + key + R"(","Token":"tok-)" + key + R"(","Expiration":")" +
         time::iso8601(time::epoch(expires)) + R"("})";
}

const char* kVars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                       "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                       "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "HOME"};

// Every test starts from an environment without AWS variables (HOME points
// nowhere) and gets the real one back afterwards.
class CredentialsProviderTest : public ::testing::Test {
 protected:
  CredentialsProviderTest() : endpoint(ioc) {
    for (const char* v : kVars) {
      if (const char* old = std::getenv(v)) saved_[v] = old;
      unsetenv(v);
    }
    setenv("HOME", "/nonexistent-pier-home", 1);
  }
  ~CredentialsProviderTest() override {
    for (const char* v : kVars) {
      if (auto it = saved_.find(v); it != saved_.end()) setenv(v, it->second.c_str(), 1);
      else unsetenv(v);
    }
  }
  Result<Credentials> get(CredentialsProvider& p) { return run(ioc, p.get()); }

  asio::io_context ioc{1};
  FakeEndpoint endpoint;

 private:
  std::map<std::string, std::string> saved_;
};

TEST_F(CredentialsProviderTest, FromEnvironment) {
  setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  setenv("AWS_SESSION_TOKEN", "envtoken", 1);
  setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", 1);  // env wins
  auto p = CredentialsProvider::from_environment();
  EXPECT_EQ(p.source(), "environment");
  auto c = get(p);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->key, "AKIAENV");
  EXPECT_EQ(c->secret, "envsecret");
  EXPECT_EQ(c->token, "envtoken");
  EXPECT_FALSE(c->expires.has_value());
}

TEST_F(CredentialsProviderTest, KeyWithoutSecretIsNotEnough) {
  setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  auto p = CredentialsProvider::from_environment();
  EXPECT_NE(p.source(), "environment");
  auto c = get(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind, ErrorKind::kUnauthenticated);
}

TEST_F(CredentialsProviderTest, NothingAnywhere) {
  auto p = CredentialsProvider::from_environment();
  auto c = get(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind, ErrorKind::kUnauthenticated);
  EXPECT_NE(c.error().message.find("Unable to locate credentials"), std::string::npos) << c.error().message;
  unsetenv("HOME");
  auto q = CredentialsProvider::from_environment();
  EXPECT_EQ(q.source(), "none");
  auto d = get(q);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("Unable to locate credentials"), std::string::npos);
}

TEST_F(CredentialsProviderTest, RelativeUriPointsAtTheEcsAgent) {
  setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc-123", 1);
  auto p = CredentialsProvider::from_environment();
  EXPECT_EQ(p.source(), "container endpoint http://169.254.170.2/v2/credentials/abc-123");
}

TEST_F(CredentialsProviderTest, FullUriWithTokenAndCaching) {
  auto now = std::chrono::system_clock::now();
  endpoint.reply = [&](const FakeEndpoint::Seen& s) -> std::pair<int, std::string> {
    if (s.authorization != "Bearer good") return {401, R"({"code":"Unauthorized","message":"bad token"})"};
    return {200, creds_json("ASIA" + std::to_string(endpoint.seen.size()), now + 1h)};
  };
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", (endpoint.base() + "/creds?role=task").c_str(), 1);
  setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer good", 1);
  auto p = CredentialsProvider::from_environment();
  EXPECT_EQ(p.source(), "container endpoint " + endpoint.base() + "/creds?role=task");
  auto c = get(p);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->key, "ASIA1");
  EXPECT_EQ(c->secret, "s3cr3t-ASIA1");
  EXPECT_EQ(c->token, "tok-ASIA1");
  ASSERT_TRUE(c->expires.has_value());
  EXPECT_LT(std::chrono::abs(*c->expires - (now + 1h)), 1s);
  ASSERT_EQ(endpoint.seen.size(), 1u);
  EXPECT_EQ(endpoint.seen[0].target, "/creds?role=task");
  EXPECT_EQ(endpoint.seen[0].host, "127.0.0.1:" + std::to_string(endpoint.port()));

  // Cached: no second fetch while far from expiry.
  auto again = get(p);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->key, "ASIA1");
  EXPECT_EQ(endpoint.seen.size(), 1u);

  // invalidate(): fetched anew.
  p.invalidate();
  auto fresh = get(p);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->key, "ASIA2");
  EXPECT_EQ(endpoint.seen.size(), 2u);
}

TEST_F(CredentialsProviderTest, RefreshedWithinFiveMinutesOfExpiry) {
  auto start = std::chrono::system_clock::now();
  endpoint.reply = [&](const FakeEndpoint::Seen&) -> std::pair<int, std::string> {
    return {200, creds_json("ASIA" + std::to_string(endpoint.seen.size()), start + 1h)};
  };
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", (endpoint.base() + "/c").c_str(), 1);
  auto p = CredentialsProvider::from_environment();
  auto clock_now = start;
  p.set_clock([&] { return clock_now; });
  ASSERT_TRUE(get(p).ok());
  EXPECT_EQ(endpoint.seen.size(), 1u);
  EXPECT_TRUE(endpoint.seen[0].authorization.empty());  // no token configured: no header
  clock_now = start + 54min;  // 6 minutes left: still cached
  ASSERT_TRUE(get(p).ok());
  EXPECT_EQ(endpoint.seen.size(), 1u);
  clock_now = start + 56min;  // 4 minutes left: refreshed
  auto c = get(p);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->key, "ASIA2");
  EXPECT_EQ(endpoint.seen.size(), 2u);
  EXPECT_EQ(p.fetches(), 2);

  // The endpoint fails while the old credentials are still valid: kept.
  endpoint.reply = [](const FakeEndpoint::Seen&) -> std::pair<int, std::string> { return {500, "oops"}; };
  auto kept = get(p);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->key, "ASIA2");
  EXPECT_EQ(endpoint.seen.size(), 3u);
  // ...but not once they have expired.
  clock_now = start + 61min;
  auto gone = get(p);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(gone.error().message.find("500"), std::string::npos) << gone.error().message;
}

TEST_F(CredentialsProviderTest, TokenFileIsReadOnEveryFetch) {
  TempFile token("Bearer from-file\n");
  endpoint.reply = [&](const FakeEndpoint::Seen& s) -> std::pair<int, std::string> {
    return {200, creds_json("K" + std::to_string(endpoint.seen.size()), std::chrono::system_clock::now() + 1h)};
    (void)s;
  };
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", (endpoint.base() + "/v1/credentials").c_str(), 1);
  setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token.path.c_str(), 1);
  setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer from-env", 1);  // the file wins
  auto p = CredentialsProvider::from_environment();
  ASSERT_TRUE(get(p).ok());
  ASSERT_EQ(endpoint.seen.size(), 1u);
  EXPECT_EQ(endpoint.seen[0].authorization, "Bearer from-file");
  std::ofstream(token.path) << "Bearer rotated";
  p.invalidate();
  ASSERT_TRUE(get(p).ok());
  ASSERT_EQ(endpoint.seen.size(), 2u);
  EXPECT_EQ(endpoint.seen[1].authorization, "Bearer rotated");
}

TEST_F(CredentialsProviderTest, RefusalCarriesStatusAndBody) {
  endpoint.reply = [](const FakeEndpoint::Seen&) -> std::pair<int, std::string> {
    return {403, R"({"code":"AccessDenied","message":"token expired"})"};
  };
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", (endpoint.base() + "/c").c_str(), 1);
  auto p = CredentialsProvider::from_environment();
  auto c = get(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind, ErrorKind::kUnauthenticated);
  EXPECT_NE(c.error().message.find("403"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("token expired"), std::string::npos) << c.error().message;
}

TEST_F(CredentialsProviderTest, AnswerWithoutKeysIsAnErrorWithoutSecrets) {
  endpoint.reply = [](const FakeEndpoint::Seen&) -> std::pair<int, std::string> {
    return {200, R"({"SecretAccessKey":"TOPSECRET","Token":"TOPTOKEN","Expiration":"2026-12-01T12:00:00Z"})"};
  };
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", (endpoint.base() + "/c").c_str(), 1);
  auto p = CredentialsProvider::from_environment();
  auto c = get(p);
  ASSERT_FALSE(c.ok());
  const auto& m = c.error().message;
  EXPECT_NE(m.find("AccessKeyId"), std::string::npos) << m;
  EXPECT_NE(m.find("200"), std::string::npos) << m;
  EXPECT_NE(m.find("Expiration"), std::string::npos) << m;  // the excerpt
  EXPECT_EQ(m.find("TOPSECRET"), std::string::npos) << m;
  EXPECT_EQ(m.find("TOPTOKEN"), std::string::npos) << m;
}

TEST_F(CredentialsProviderTest, EndpointDownIsUnavailable) {
  uint16_t port;
  {
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }  // closed: connections are refused
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", ("http://127.0.0.1:" + std::to_string(port) + "/c").c_str(), 1);
  auto p = CredentialsProvider::from_environment();
  auto c = get(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind, ErrorKind::kUnavailable);
}

TEST_F(CredentialsProviderTest, FullUriMustBeLocalForPlainHttp) {
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.10/creds", 1);
  auto p = CredentialsProvider::from_environment();
  auto c = get(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().kind, ErrorKind::kInvalid);
  EXPECT_NE(c.error().message.find("192.0.2.10"), std::string::npos) << c.error().message;
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://example.com/creds", 1);
  auto q = CredentialsProvider::from_environment();
  auto d = get(q);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().kind, ErrorKind::kInvalid);
}

TEST_F(CredentialsProviderTest, FullUriHostNameIsResolvedWithOwnResolver) {
  TempFile hosts("127.0.0.1 creds.local\n");
  endpoint.reply = [](const FakeEndpoint::Seen&) -> std::pair<int, std::string> {
    return {200, R"({"AccessKeyId":"AKIAH","SecretAccessKey":"x","Token":"t"})"};
  };
  setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
         ("http://creds.local:" + std::to_string(endpoint.port()) + "/c").c_str(), 1);
  ResolverOptions dns;
  dns.hosts_file = hosts.path;
  auto p = CredentialsProvider::from_environment(dns);
  auto c = get(p);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->key, "AKIAH");
  EXPECT_FALSE(c->expires.has_value());
  ASSERT_EQ(endpoint.seen.size(), 1u);
  EXPECT_EQ(endpoint.seen[0].host, "creds.local:" + std::to_string(endpoint.port()));
}

TEST_F(CredentialsProviderTest, SharedFileProfiles) {
  TempFile file(
      "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key=defsecret\n\n"
      "[work]\n; another comment\nAWS_ACCESS_KEY_ID = AKIAWORK \naws_secret_access_key = worksecret\n"
      "aws_session_token = worktoken\n");
  setenv("AWS_SHARED_CREDENTIALS_FILE", file.path.c_str(), 1);
  auto d = CredentialsProvider::from_environment();
  EXPECT_EQ(d.source(), "shared file profile default (" + file.path + ")");
  auto dc = get(d);
  ASSERT_TRUE(dc.ok()) << dc.error().message;
  EXPECT_EQ(dc->key, "AKIADEFAULT");
  EXPECT_EQ(dc->secret, "defsecret");
  EXPECT_EQ(dc->token, "");

  setenv("AWS_PROFILE", "work", 1);
  auto w = CredentialsProvider::from_environment();
  auto wc = get(w);
  ASSERT_TRUE(wc.ok()) << wc.error().message;
  EXPECT_EQ(wc->key, "AKIAWORK");
  EXPECT_EQ(wc->secret, "worksecret");
  EXPECT_EQ(wc->token, "worktoken");
  EXPECT_EQ(w.source(), "shared file profile work (" + file.path + ")");
  // Cached until invalidate().
  ASSERT_TRUE(get(w).ok());
  EXPECT_EQ(w.fetches(), 1);
  w.invalidate();
  ASSERT_TRUE(get(w).ok());
  EXPECT_EQ(w.fetches(), 2);

  setenv("AWS_PROFILE", "absent", 1);
  auto a = CredentialsProvider::from_environment();
  auto ac = get(a);
  ASSERT_FALSE(ac.ok());
  EXPECT_EQ(ac.error().kind, ErrorKind::kUnauthenticated);
  EXPECT_NE(ac.error().message.find("absent"), std::string::npos) << ac.error().message;
}

TEST_F(CredentialsProviderTest, SharedFileUnderHome) {
  char tmpl[] = "/tmp/pier-home-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string home = tmpl;
  std::filesystem::create_directories(home + "/.aws");
  std::ofstream(home + "/.aws/credentials") << "[default]\naws_access_key_id=AKIAHOME\naws_secret_access_key=h\n";
  setenv("HOME", home.c_str(), 1);
  auto p = CredentialsProvider::from_environment();
  auto c = get(p);
  std::filesystem::remove_all(home);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->key, "AKIAHOME");
  EXPECT_EQ(p.source(), "shared file profile default (" + home + "/.aws/credentials)");
}

TEST(CredentialsParse, ContainerAnswer) {
  auto c = parse_container_credentials(
      R"({"RoleArn":"r","AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2026-12-01T12:00:00Z"})");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(c->expires.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c->expires), 1796126400);
  EXPECT_FALSE(parse_container_credentials("not json").ok());
  EXPECT_FALSE(parse_container_credentials(R"({"AccessKeyId":"A"})").ok());
  EXPECT_FALSE(parse_container_credentials(R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"})").ok());
}

}  // namespace
}  // namespace pier::client
