#include "tls/ca.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/crypto.h"
#include "common/strings.h"

namespace pier::tls {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

const std::string kSsm = "ssmmessages.us-east-1.amazonaws.com";
const std::string kEcrWild = "*.dkr.ecr.us-east-1.amazonaws.com";
const std::string kEcrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Cert = std::unique_ptr<X509, CertFree>;

Cert parse_cert(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free_all)> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                   &BIO_free_all);
  return Cert(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::string common_name(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// Seconds between two certificate times.
long seconds_between(const ASN1_TIME* from, const ASN1_TIME* to) {
  int days = 0, secs = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &secs, from, to), 1);
  return days * 86400L + secs;
}

// "" if X509_verify_cert accepts `leaf` as a TLS server certificate against a
// store holding only `ca_pem`, else why not.
std::string verify(const std::string& ca_pem, X509* leaf) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), &X509_STORE_free);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), &X509_STORE_CTX_free);
  Cert ca = parse_cert(ca_pem);
  if (!store || !ctx || !ca || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1 ||
      X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER) != 1)
    return "cannot set up the store";
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

std::shared_ptr<Authority> open_ok(const fs::path& dir) {
  auto r = Authority::open(dir.string());
  if (!r.ok()) {
    ADD_FAILURE() << "open " << dir << ": " << r.error().message;
    return nullptr;
  }
  return *r;
}

Issued issue_ok(Authority& ca, const std::vector<std::string>& dns, const std::vector<std::string>& ips = {}) {
  auto r = ca.issue(dns, ips);
  if (!r.ok()) {
    ADD_FAILURE() << "issue: " << r.error().message;
    return {};
  }
  return *r;
}

std::vector<fs::path> files_starting(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with(prefix)) out.push_back(e.path());
  return out;
}

// A fresh directory per test, removed after it; the CA goes in its "ca"
// subdirectory so open() has to make that.
class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : root_(fs::temp_directory_path() / ("pier-tls-test-" + str::hex(crypto::random_bytes(8)))) {
    fs::create_directories(root_);
  }
  ~TlsTest() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path dir(const std::string& name = "ca") const { return root_ / name; }

  fs::path root_;
};

using TlsAuthority = TlsTest;
using TlsIssue = TlsTest;
using TlsCache = TlsTest;
using TlsHandshake = TlsTest;

TEST_F(TlsAuthority, MakesACaThenLoadsTheSameOne) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(mode_of(dir()), 0700u);
  EXPECT_EQ(mode_of(dir() / "ca.key"), 0600u);
  EXPECT_EQ(ca->ca_file(), (dir() / "ca.pem").string());
  EXPECT_EQ(read(ca->ca_file()), ca->ca_pem());
  EXPECT_TRUE(files_starting(dir(), ".").empty()) << "temporary files left behind";

  Cert cert = parse_cert(ca->ca_pem());
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(cert.get()), nullptr);
  EXPECT_EQ(X509_check_issued(cert.get(), cert.get()), X509_V_OK);  // self-signed
  std::string cn = common_name(cert.get());
  EXPECT_TRUE(cn.starts_with("pier local CA ") && cn.size() > 14) << cn;
  for (int nid : {NID_basic_constraints, NID_key_usage}) {
    X509_EXTENSION* ext = X509_get_ext(cert.get(), X509_get_ext_by_NID(cert.get(), nid, -1));
    ASSERT_NE(ext, nullptr);
    EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1) << OBJ_nid2sn(nid);
  }
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  char group[64] = {};
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof group, nullptr), 1);
  EXPECT_STREQ(group, "prime256v1");
  long life = seconds_between(X509_get0_notBefore(cert.get()), X509_get0_notAfter(cert.get()));
  EXPECT_GE(life, 3650L * 86400);
  EXPECT_LE(life, 3653L * 86400);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr),
                                                      &BN_free);
  EXPECT_GT(BN_num_bits(serial.get()), 64);  // 128 random bits; fewer than 65 is a 2^-64 chance

  auto again = open_ok(dir());
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->ca_pem(), ca->ca_pem());

  // Another directory gets another CA.
  auto other = open_ok(dir("other"));
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other->ca_pem(), ca->ca_pem());
}

TEST_F(TlsAuthority, RefusesHalfACa) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);

  fs::create_directories(dir("pem-only"));
  fs::copy_file(dir() / "ca.pem", dir("pem-only") / "ca.pem");
  auto r = Authority::open(dir("pem-only").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ca.key"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(dir("pem-only") / "ca.key"));
  EXPECT_EQ(read(dir("pem-only") / "ca.pem"), ca->ca_pem());  // left alone

  fs::create_directories(dir("key-only"));
  fs::copy_file(dir() / "ca.key", dir("key-only") / "ca.key");
  EXPECT_FALSE(Authority::open(dir("key-only").string()).ok());
  EXPECT_FALSE(fs::exists(dir("key-only") / "ca.pem"));
}

TEST_F(TlsAuthority, RefusesAKeyOfAnotherCa) {
  auto a = open_ok(dir("a"));
  auto b = open_ok(dir("b"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  fs::create_directories(dir("mixed"));
  fs::copy_file(dir("a") / "ca.key", dir("mixed") / "ca.key");
  fs::copy_file(dir("b") / "ca.pem", dir("mixed") / "ca.pem");
  auto r = Authority::open(dir("mixed").string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kInternal);
  EXPECT_EQ(read(dir("mixed") / "ca.pem"), b->ca_pem());
}

// A start that died between linking ca.key and ca.pem into place: the next
// open() finishes the job from the temporary files rather than refusing.
TEST_F(TlsAuthority, FinishesACaInterruptedWhileBeingMade) {
  auto made = open_ok(dir("made"));
  ASSERT_NE(made, nullptr);
  fs::create_directories(dir());
  write(dir() / ".ca.key.0badcafe.tmp", read(dir("made") / "ca.key"));
  write(dir() / ".ca.pem.0badcafe.tmp", made->ca_pem());
  fs::create_hard_link(dir() / ".ca.key.0badcafe.tmp", dir() / "ca.key");

  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(ca->ca_pem(), made->ca_pem());
  EXPECT_TRUE(files_starting(dir(), ".").empty());
}

TEST_F(TlsIssue, LeafVerifiesForItsNamesOnly) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  Issued leaf = issue_ok(*ca, {kSsm, kEcrWild});
  Cert cert = parse_cert(leaf.cert_pem);
  ASSERT_NE(cert, nullptr);

  EXPECT_EQ(verify(ca->ca_pem(), cert.get()), "");
  auto stranger = open_ok(dir("stranger"));
  ASSERT_NE(stranger, nullptr);
  EXPECT_NE(verify(stranger->ca_pem(), cert.get()), "");

  EXPECT_EQ(X509_check_host(cert.get(), kSsm.data(), kSsm.size(), 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), kEcrHost.data(), kEcrHost.size(), 0, nullptr), 1);
  for (std::string other : {"evil.example.com", "a.b.dkr.ecr.us-east-1.amazonaws.com", "us-east-1.amazonaws.com"})
    EXPECT_EQ(X509_check_host(cert.get(), other.data(), other.size(), 0, nullptr), 0) << other;

  // The key is the certificate's, EC P-256.
  std::unique_ptr<BIO, decltype(&BIO_free_all)> b(
      BIO_new_mem_buf(leaf.key_pem.data(), static_cast<int>(leaf.key_pem.size())), &BIO_free_all);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr),
                                                          &EVP_PKEY_free);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  char group[64] = {};
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group, sizeof group, nullptr), 1);
  EXPECT_STREQ(group, "prime256v1");

  EXPECT_EQ(common_name(cert.get()), kSsm);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(cert.get());
  ASSERT_NE(akid, nullptr);
  Cert ca_cert = parse_cert(ca->ca_pem());
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(ca_cert.get())), 0);
  EXPECT_EQ(seconds_between(X509_get0_notBefore(cert.get()), X509_get0_notAfter(cert.get())), 397L * 86400);
  ASN1_TIME* now = ASN1_TIME_set(nullptr, std::time(nullptr));
  long before = seconds_between(X509_get0_notBefore(cert.get()), now);
  ASN1_TIME_free(now);
  EXPECT_GE(before, 3600);
  EXPECT_LE(before, 3660);
}

TEST_F(TlsIssue, IpAddressSans) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  Cert cert = parse_cert(issue_ok(*ca, {kSsm}, {"10.0.0.2"}).cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(verify(ca->ca_pem(), cert.get()), "");
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.2", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.3", 0), 0);
  EXPECT_EQ(X509_check_host(cert.get(), kSsm.data(), kSsm.size(), 0, nullptr), 1);

  Cert only_ip = parse_cert(issue_ok(*ca, {}, {"127.0.0.1"}).cert_pem);
  ASSERT_NE(only_ip, nullptr);
  EXPECT_EQ(verify(ca->ca_pem(), only_ip.get()), "");
  EXPECT_EQ(X509_check_ip_asc(only_ip.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(common_name(only_ip.get()), "127.0.0.1");
}

TEST_F(TlsIssue, RefusesWhatIsNotAName) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> bad = {
      {{}, {}},          {{"two words.example.com"}, {}}, {{"a..b.com"}, {}}, {{"*"}, {}},
      {{"*.com"}, {}},   {{"a.*.example.com"}, {}},       {{"-a.com"}, {}},   {{kSsm}, {"10.0.0"}},
      {{kSsm}, {"a.b"}}, {{"x,DNS:evil.example.com"}, {}}};
  for (const auto& [dns, ips] : bad) {
    auto r = ca->issue(dns, ips);
    ASSERT_FALSE(r.ok()) << (dns.empty() ? "" : dns[0]) << " / " << (ips.empty() ? "" : ips[0]);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  }
  // Upper case and a trailing dot are the same name.
  Cert cert = parse_cert(issue_ok(*ca, {"SSMMessages.US-East-1.amazonaws.com."}).cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_host(cert.get(), kSsm.data(), kSsm.size(), 0, nullptr), 1);
}

TEST_F(TlsCache, SameNamesSameCertAcrossRestarts) {
  Issued first, other;
  {
    auto ca = open_ok(dir());
    ASSERT_NE(ca, nullptr);
    first = issue_ok(*ca, {kSsm, kEcrWild});
    Issued again = issue_ok(*ca, {kEcrWild, kSsm, kEcrWild});  // order and repeats do not matter
    EXPECT_EQ(again.cert_pem, first.cert_pem);
    EXPECT_EQ(again.key_pem, first.key_pem);
    other = issue_ok(*ca, {kSsm});
    EXPECT_NE(other.cert_pem, first.cert_pem);
    EXPECT_NE(other.key_pem, first.key_pem);
    EXPECT_NE(issue_ok(*ca, {kSsm}, {"10.0.0.2"}).cert_pem, other.cert_pem);
  }
  auto leaves = files_starting(dir(), "leaf-");
  ASSERT_EQ(leaves.size(), 3u);
  for (const auto& p : leaves) {
    EXPECT_EQ(mode_of(p), 0600u) << p;
    EXPECT_EQ(p.filename().string().size(), std::string("leaf-0123456789abcdef.pem").size()) << p;
  }
  EXPECT_TRUE(files_starting(dir(), ".").empty());

  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(issue_ok(*ca, {kSsm, kEcrWild}).cert_pem, first.cert_pem);
  EXPECT_EQ(issue_ok(*ca, {kSsm}).key_pem, other.key_pem);
}

TEST_F(TlsCache, ReissuesADiskCopyThatIsBrokenOrFromAnotherCa) {
  std::string first;
  {
    auto ca = open_ok(dir());
    ASSERT_NE(ca, nullptr);
    first = issue_ok(*ca, {kSsm}).cert_pem;
  }
  auto leaves = files_starting(dir(), "leaf-");
  ASSERT_EQ(leaves.size(), 1u);
  write(leaves[0], "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
  std::string second;
  {
    auto ca = open_ok(dir());
    ASSERT_NE(ca, nullptr);
    second = issue_ok(*ca, {kSsm}).cert_pem;
    EXPECT_NE(second, first);
    Cert cert = parse_cert(second);
    ASSERT_NE(cert, nullptr);
    EXPECT_EQ(verify(ca->ca_pem(), cert.get()), "");
  }

  // The same names' leaf from another CA, dropped into this one's directory.
  auto stranger = open_ok(dir("stranger"));
  ASSERT_NE(stranger, nullptr);
  std::string foreign = issue_ok(*stranger, {kSsm}).cert_pem;
  fs::copy_file(files_starting(dir("stranger"), "leaf-").at(0), leaves[0], fs::copy_options::overwrite_existing);
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  Issued third = issue_ok(*ca, {kSsm});
  EXPECT_NE(third.cert_pem, foreign);
  EXPECT_NE(third.cert_pem, second);
  Cert cert = parse_cert(third.cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(verify(ca->ca_pem(), cert.get()), "");
}

TEST_F(TlsCache, ThreadSafe) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  const std::vector<std::vector<std::string>> sets = {{kSsm}, {kEcrWild}, {kSsm, kEcrWild}};
  constexpr int kThreads = 6, kRounds = 5;
  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        auto r = ca->issue(sets[(t + i) % sets.size()]);
        got[t].push_back(r.ok() ? r->cert_pem : "error: " + r.error().message);
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kRounds; ++i)
      EXPECT_EQ(got[t][i], issue_ok(*ca, sets[(t + i) % sets.size()]).cert_pem) << t << "/" << i;
  EXPECT_EQ(files_starting(dir(), "leaf-").size(), sets.size());
}

// What each end of a loopback TLS connection saw.
struct Outcome {
  boost::system::error_code server;
  boost::system::error_code client;
  std::string echoed;
  int version = 0;
};

asio::awaitable<void> echo_once(tcp::acceptor& acceptor, ssl::context& ctx, Outcome& out) {
  auto [aec, sock] = co_await acceptor.async_accept(kTuple);
  if (aec) {
    out.server = aec;
    co_return;
  }
  ssl::stream<tcp::socket> s(std::move(sock), ctx);
  auto [hec] = co_await s.async_handshake(ssl::stream_base::server, kTuple);
  if (hec) {
    out.server = hec;
    co_return;
  }
  std::array<char, 5> buf{};
  auto [rec, n] = co_await asio::async_read(s, asio::buffer(buf), kTuple);
  if (rec) {
    out.server = rec;
    co_return;
  }
  auto [wec, wn] = co_await asio::async_write(s, asio::buffer(buf.data(), n), kTuple);
  out.server = wec;
}

asio::awaitable<void> say_hello(tcp::endpoint to, ssl::context& ctx, std::string name, Outcome& out) {
  ssl::stream<tcp::socket> s(co_await asio::this_coro::executor, ctx);
  auto [cec] = co_await s.next_layer().async_connect(to, kTuple);
  if (cec) {
    out.client = cec;
    co_return;
  }
  SSL_set_tlsext_host_name(s.native_handle(), name.c_str());
  s.set_verify_callback(ssl::host_name_verification(name));
  auto [hec] = co_await s.async_handshake(ssl::stream_base::client, kTuple);
  if (hec) {
    out.client = hec;
    co_return;
  }
  out.version = SSL_version(s.native_handle());
  auto [wec, wn] = co_await asio::async_write(s, asio::buffer(std::string_view("hello")), kTuple);
  if (wec) {
    out.client = wec;
    co_return;
  }
  std::array<char, 5> buf{};
  auto [rec, n] = co_await asio::async_read(s, asio::buffer(buf), kTuple);
  out.client = rec;
  out.echoed.assign(buf.data(), n);
}

// One connection over 127.0.0.1, both ends on one io_context: a server with
// `server_ctx`, a client trusting only `ca_file` and verifying `name`.
Outcome connect_once(ssl::context& server_ctx, const std::string& ca_file, const std::string& name) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  ssl::context client_ctx(ssl::context::tls_client);
  client_ctx.set_verify_mode(ssl::verify_peer);
  client_ctx.load_verify_file(ca_file);
  Outcome out;
  asio::co_spawn(ioc, echo_once(acceptor, server_ctx, out), asio::detached);
  asio::co_spawn(ioc, say_hello(acceptor.local_endpoint(), client_ctx, name, out), asio::detached);
  ioc.run_for(5s);  // a safety net only: both ends finish at once
  EXPECT_TRUE(ioc.stopped()) << "the connection did not finish";
  return out;
}

TEST_F(TlsHandshake, ClientTrustingTheCaConnects) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  auto ctx = ca->server_context({kSsm, kEcrWild});
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  for (const std::string& name : {kSsm, kEcrHost}) {
    Outcome out = connect_once(**ctx, ca->ca_file(), name);
    EXPECT_FALSE(out.client) << name << ": " << out.client.message();
    EXPECT_FALSE(out.server) << name << ": " << out.server.message();
    EXPECT_EQ(out.echoed, "hello") << name;
    EXPECT_GE(out.version, TLS1_2_VERSION) << name;
  }
}

TEST_F(TlsHandshake, ClientVerifyingAnotherNameFails) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  auto ctx = ca->server_context({kSsm, kEcrWild});
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  Outcome out = connect_once(**ctx, ca->ca_file(), "other.example.com");
  ASSERT_TRUE(out.client);
  EXPECT_EQ(out.client.category(), asio::error::get_ssl_category()) << out.client.message();
  EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(out.client.value())), SSL_R_CERTIFICATE_VERIFY_FAILED)
      << out.client.message();
  EXPECT_TRUE(out.server);
  EXPECT_EQ(out.echoed, "");
}

TEST_F(TlsHandshake, ClientTrustingAnotherCaFails) {
  auto ca = open_ok(dir());
  auto stranger = open_ok(dir("stranger"));
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(stranger, nullptr);
  auto ctx = ca->server_context({kSsm});
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  Outcome out = connect_once(**ctx, stranger->ca_file(), kSsm);
  ASSERT_TRUE(out.client);
  EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(out.client.value())), SSL_R_CERTIFICATE_VERIFY_FAILED)
      << out.client.message();
}

TEST_F(TlsHandshake, ServerContextSettings) {
  auto ca = open_ok(dir());
  ASSERT_NE(ca, nullptr);
  auto ctx = ca->server_context({kSsm});
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  SSL_CTX* native = (*ctx)->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(native), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options(native) & SSL_OP_NO_COMPRESSION, 0u);
  X509* leaf = SSL_CTX_get0_certificate(native);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_cmp(leaf, parse_cert(issue_ok(*ca, {kSsm}).cert_pem).get()), 0);
  EXPECT_FALSE(ca->server_context({}).ok());
}

}  // namespace
}  // namespace pier::tls
