#include "tls/ca.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/crypto.h"
#include "common/log.h"
#include "common/strings.h"

namespace pier::tls {

void Authority::KeyFree::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
void Authority::CertFree::operator()(X509* c) const { X509_free(c); }

namespace {

namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;
using KeyPtr = Authority::KeyPtr;
using CertPtr = Authority::CertPtr;

template <class T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION, X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES, GENERAL_NAMES_free>>;
using NamePtr = std::unique_ptr<GENERAL_NAME, Free<GENERAL_NAME, GENERAL_NAME_free>>;

constexpr long kDay = 24 * 3600;
constexpr int kCaDays = 3652;    // ten years
constexpr int kLeafDays = 397;   // under the 398 days Apple's clients accept
constexpr long kRenewBefore = 30 * kDay;
constexpr size_t kMaxCommonName = 64;  // ub-common-name (RFC 5280)

// Drains this thread's OpenSSL error queue into one line.
std::string ossl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error recorded" : out;
}

Error ossl_fail(std::string_view what) { return Error::internal(fmt::format("{}: {}", what, ossl_errors())); }

Error sys_fail(std::string_view what, const std::string& path, int err = errno) {
  return Error::internal(fmt::format("{} {}: {}", what, path, std::error_code(err, std::system_category()).message()));
}

// Never prompt on a terminal for the pass phrase of an encrypted key.
int no_password(char*, int, int, void*) { return -1; }

std::string bio_text(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

BioPtr mem_bio(std::string_view text) { return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))); }

Result<std::string> key_pem(EVP_PKEY* key) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return ossl_fail("writing a private key");
  return bio_text(b.get());
}

Result<std::string> cert_pem(X509* cert) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), cert) != 1) return ossl_fail("writing a certificate");
  return bio_text(b.get());
}

std::time_t to_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

// --- Files --------------------------------------------------------------

// 1 if `path` exists (as anything, even a dangling link), 0 if not, else an error.
Result<bool> present(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return sys_fail("stat", path);
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return sys_fail("open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return sys_fail("read", path);
  return ss.str();
}

Status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_fail("open", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return sys_fail("fsync", dir, err);
  return {};
}

// Writes a file that must not exist yet, with exactly `mode`, and flushes it to disk.
Status write_new(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return sys_fail("create", path);
  auto fail = [&](const char* what) {
    int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return sys_fail(what, path, err);
  };
  if (::fchmod(fd, mode) != 0) return fail("chmod");
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    return sys_fail("close", path, err);
  }
  return {};
}

// Replaces `path` atomically with `data` (a temporary file renamed over it).
Status write_replace(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + "." + str::hex(crypto::random_bytes(4)) + ".tmp";
  PIER_TRY(write_new(tmp, data, mode));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return sys_fail("rename to", path, err);
  }
  return {};
}

// Makes `dir` (and its parents) if it is missing; pier's own directory is 0700.
Status ensure_dir(const std::string& dir) {
  PIER_ASSIGN(bool exists, present(dir));
  if (exists) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return Error::internal(fmt::format("{} is not a directory", dir));
    return {};
  }
  fs::path parent = fs::path(dir).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) return Error::internal(fmt::format("create {}: {}", parent.string(), ec.message()));
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return {};  // someone else just made it
    return sys_fail("create", dir);
  }
  if (::chmod(dir.c_str(), 0700) != 0) return sys_fail("chmod", dir);
  return {};
}

// --- Certificates ------------------------------------------------------

Result<KeyPtr> new_key() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return ossl_fail("generating an EC P-256 key");
  return key;
}

Status set_serial(X509* cert) {
  // 128 random bits: unique without any state, and unpredictable.
  for (;;) {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) return ossl_fail("random serial number");
    BnPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
    if (!bn) return ossl_fail("serial number");
    if (BN_is_zero(bn.get())) continue;
    if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) return ossl_fail("serial number");
    return {};
  }
}

Status set_cn(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1)
    return ossl_fail("certificate subject");
  return {};
}

// A v3 certificate for `key`'s public half, valid from an hour ago for `days`.
Result<CertPtr> new_cert(EVP_PKEY* key, int days) {
  CertPtr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return ossl_fail("new certificate");
  PIER_TRY(set_serial(cert.get()));
  // An hour of slack for clocks behind ours (VMs, containers just started).
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, -3600, nullptr))
    return ossl_fail("certificate validity");
  if (X509_set_pubkey(cert.get(), key) != 1) return ossl_fail("certificate public key");
  return cert;
}

Status add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return ossl_fail(fmt::format("certificate extension {}={}", OBJ_nid2sn(nid), value));
  return {};
}

struct Pems {
  std::string cert;
  std::string key;
};

Result<Pems> make_ca() {
  PIER_ASSIGN(KeyPtr key, new_key());
  PIER_ASSIGN(CertPtr cert, new_cert(key.get(), kCaDays));
  X509_NAME* name = X509_get_subject_name(cert.get());
  PIER_TRY(set_cn(name, "pier local CA " + str::hex(crypto::random_bytes(4))));
  if (X509_set_issuer_name(cert.get(), name) != 1) return ossl_fail("certificate issuer");
  PIER_TRY(add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  PIER_TRY(add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  PIER_TRY(add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return ossl_fail("signing the CA certificate");
  PIER_ASSIGN(std::string c, cert_pem(cert.get()));
  PIER_ASSIGN(std::string k, key_pem(key.get()));
  return Pems{std::move(c), std::move(k)};
}

// The names of one leaf, in the form that keys both caches.
struct NameSet {
  std::vector<std::string> dns;  // sorted, unique, lower case
  std::vector<std::string> ips;  // sorted, unique, canonical text
  std::string cn;                // the caller's first name
  std::string key;               // "dns:a\n...ip:b\n"
};

bool valid_dns_name(std::string_view n) {
  if (n.empty() || n.size() > 253) return false;
  bool wildcard = n.starts_with("*.");
  if (wildcard) n.remove_prefix(2);
  auto labels = str::split(n, '.');
  // A wildcard covers one label under a name of at least two (no "*.com").
  if (wildcard && labels.size() < 2) return false;
  for (auto label : labels) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

Result<NameSet> canonical(const std::vector<std::string>& dns_names, const std::vector<std::string>& ips) {
  NameSet set;
  for (const auto& raw : dns_names) {
    std::string n = str::lower(raw);
    if (n.size() > 1 && n.back() == '.') n.pop_back();  // an absolute name
    if (!valid_dns_name(n))
      return Error::invalid("InvalidParameterValue", fmt::format("not a DNS name for a certificate: '{}'", raw));
    if (set.cn.empty()) set.cn = n;
    set.dns.push_back(std::move(n));
  }
  for (const auto& raw : ips) {
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(raw, ec);
    if (ec || (addr.is_v6() && addr.to_v6().scope_id() != 0))
      return Error::invalid("InvalidParameterValue", fmt::format("not an IP address: '{}'", raw));
    std::string text = addr.to_string();
    if (set.cn.empty()) set.cn = text;
    set.ips.push_back(std::move(text));
  }
  if (set.dns.empty() && set.ips.empty())
    return Error::invalid("InvalidParameterValue", "a certificate needs at least one DNS name or IP address");
  for (auto* v : {&set.dns, &set.ips}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  for (const auto& n : set.dns) set.key += "dns:" + n + "\n";
  for (const auto& n : set.ips) set.key += "ip:" + n + "\n";
  return set;
}

Status add_sans(X509* cert, const NameSet& set, bool critical) {
  NamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return ossl_fail("subjectAltName");
  auto add = [&](int type, const std::string& value) -> Status {
    NamePtr name(a2i_GENERAL_NAME(nullptr, nullptr, nullptr, type, value.c_str(), 0));
    if (!name) return ossl_fail(fmt::format("subjectAltName {}", value));
    if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0) return ossl_fail("subjectAltName");
    name.release();  // owned by `names` now
    return {};
  };
  for (const auto& n : set.dns) PIER_TRY(add(GEN_DNS, n));
  for (const auto& n : set.ips) PIER_TRY(add(GEN_IPADD, n));
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1)
    return ossl_fail("subjectAltName");
  return {};
}

// The DNS names and IP addresses in `cert`'s subjectAltName equal `set`'s.
bool same_names(X509* cert, const NameSet& set) {
  NamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return false;
  std::vector<std::string> dns, ips;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_DNS) {
      dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                       static_cast<size_t>(ASN1_STRING_length(g->d.dNSName)));
    } else if (g->type == GEN_IPADD) {
      const unsigned char* p = ASN1_STRING_get0_data(g->d.iPAddress);
      int len = ASN1_STRING_length(g->d.iPAddress);
      if (len == 4) {
        boost::asio::ip::address_v4::bytes_type b;
        std::copy(p, p + 4, b.begin());
        ips.push_back(boost::asio::ip::address_v4(b).to_string());
      } else if (len == 16) {
        boost::asio::ip::address_v6::bytes_type b;
        std::copy(p, p + 16, b.begin());
        ips.push_back(boost::asio::ip::address_v6(b).to_string());
      } else {
        return false;
      }
    } else {
      return false;
    }
  }
  std::sort(dns.begin(), dns.end());
  std::sort(ips.begin(), ips.end());
  return dns == set.dns && ips == set.ips;
}

std::time_t now() { return std::time(nullptr); }

}  // namespace

// --- Authority -----------------------------------------------------------

namespace {

// A CA made in `dir` by an open() that crashed between linking ca.key and
// ca.pem: its temporary files are still there, the key one being ca.key.
// Finishes it; false if there is no such leftover.
Result<bool> finish_interrupted(const std::string& dir) {
  struct stat key_st {};
  if (::stat((dir + "/ca.key").c_str(), &key_st) != 0) return false;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with(".ca.key.") || !name.ends_with(".tmp")) continue;
    std::string tag = name.substr(8, name.size() - 8 - 4);
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0 || st.st_ino != key_st.st_ino || st.st_dev != key_st.st_dev) continue;
    std::string pem_tmp = dir + "/.ca.pem." + tag + ".tmp";
    if (::link(pem_tmp.c_str(), (dir + "/ca.pem").c_str()) != 0 && errno != EEXIST) {
      if (errno == ENOENT) return false;
      return sys_fail("link", pem_tmp);
    }
    ::unlink(pem_tmp.c_str());
    ::unlink(entry.path().c_str());
    PIER_TRY(sync_dir(dir));
    log::get("tls")->warn("finished the CA in {} that an earlier start left half made", dir);
    return true;
  }
  return false;
}

// Makes a CA in `dir` unless one appears there meanwhile: both files are
// written under temporary names, then hard-linked into place (a link never
// replaces an existing file, unlike a rename).
Status create_ca(const std::string& dir) {
  PIER_ASSIGN(Pems ca, make_ca());
  std::string tag = str::hex(crypto::random_bytes(4));
  std::string key_tmp = dir + "/.ca.key." + tag + ".tmp";
  std::string pem_tmp = dir + "/.ca.pem." + tag + ".tmp";
  auto cleanup = [&] {
    ::unlink(key_tmp.c_str());
    ::unlink(pem_tmp.c_str());
  };
  Status st = write_new(key_tmp, ca.key, 0600);
  if (st.ok()) st = write_new(pem_tmp, ca.cert, 0644);
  if (st.ok()) st = sync_dir(dir);
  if (!st.ok()) {
    cleanup();
    return st;
  }
  if (::link(key_tmp.c_str(), (dir + "/ca.key").c_str()) != 0) {
    int err = errno;
    cleanup();
    if (err == EEXIST) return {};  // another process won; open() loads its CA
    return sys_fail("link", dir + "/ca.key", err);
  }
  if (::link(pem_tmp.c_str(), (dir + "/ca.pem").c_str()) != 0) {
    int err = errno;
    cleanup();
    if (err == EEXIST) return {};  // open() finds out whether it matches
    return sys_fail("link", dir + "/ca.pem", err);
  }
  cleanup();
  PIER_TRY(sync_dir(dir));
  log::get("tls")->info("made a new certificate authority in {}", dir);
  return {};
}

}  // namespace

Authority::Authority(std::string dir, std::string ca_pem, KeyPtr key, CertPtr cert)
    : dir_(std::move(dir)), ca_pem_(std::move(ca_pem)), key_(std::move(key)), cert_(std::move(cert)) {}

std::string Authority::ca_file() const { return dir_ + "/ca.pem"; }

Result<std::shared_ptr<Authority>> Authority::open(const std::string& dir_arg) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return Error::invalid("InvalidParameterValue", "no directory for the certificate authority");
  ERR_clear_error();
  PIER_TRY(ensure_dir(dir));
  const std::string key_path = dir + "/ca.key", pem_path = dir + "/ca.pem";
  for (int attempt = 0; attempt < 3; ++attempt) {
    PIER_ASSIGN(bool has_key, present(key_path));
    PIER_ASSIGN(bool has_pem, present(pem_path));
    if (!has_key && !has_pem) {
      PIER_TRY(create_ca(dir));
      continue;
    }
    if (has_key && !has_pem) {
      PIER_ASSIGN(bool finished, finish_interrupted(dir));
      if (finished) continue;
    }
    if (!has_key || !has_pem)
      return Error::internal(fmt::format(
          "{} has {} but not {}: restore the missing file, or move the directory aside to make a new CA "
          "(clients that trust the old one then need the new ca.pem)",
          dir, has_key ? "ca.key" : "ca.pem", has_key ? "ca.pem" : "ca.key"));

    PIER_ASSIGN(std::string key_text, read_text(key_path));
    PIER_ASSIGN(std::string pem_text, read_text(pem_path));
    BioPtr kb = mem_bio(key_text);
    KeyPtr key(kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, no_password, nullptr) : nullptr);
    if (!key) return ossl_fail(fmt::format("reading the private key {}", key_path));
    BioPtr cb = mem_bio(pem_text);
    CertPtr cert(cb ? PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) return ossl_fail(fmt::format("reading the certificate {}", pem_path));
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
      ERR_clear_error();
      return Error::internal(fmt::format("{} is not the key of {}: restore the matching pair, or move {} aside "
                                         "to make a new CA",
                                         key_path, pem_path, dir));
    }
    if (X509_check_ca(cert.get()) == 0)
      return Error::internal(fmt::format("{} is not a CA certificate", pem_path));
    if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) <= 0)
      return Error::internal(fmt::format("the CA certificate {} has expired: move {} aside to make a new CA",
                                         pem_path, dir));
    return std::shared_ptr<Authority>(new Authority(dir, std::move(pem_text), std::move(key), std::move(cert)));
  }
  return Error::internal(fmt::format("{}: the CA files kept changing while being opened", dir));
}

Result<Issued> Authority::issue(const std::vector<std::string>& dns_names, const std::vector<std::string>& ips) {
  PIER_ASSIGN(NameSet set, canonical(dns_names, ips));
  ERR_clear_error();
  std::lock_guard lock(mu_);
  const std::time_t t = now();
  if (auto it = cache_.find(set.key); it != cache_.end() && it->second.not_after - t > kRenewBefore)
    return it->second.issued;

  const std::string path = dir_ + "/leaf-" + str::hex(crypto::sha256(set.key)).substr(0, 16) + ".pem";

  // From an earlier start: if it is still good, for these names, from this CA.
  if (auto text = read_text(path); text.ok()) {
    BioPtr b = mem_bio(*text);
    CertPtr cert(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
    KeyPtr key(cert ? PEM_read_bio_PrivateKey(b.get(), nullptr, no_password, nullptr) : nullptr);
    if (key && X509_check_private_key(cert.get(), key.get()) == 1 &&
        X509_check_issued(cert_.get(), cert.get()) == X509_V_OK &&
        X509_verify(cert.get(), X509_get0_pubkey(cert_.get())) == 1 &&
        X509_cmp_time(X509_get0_notBefore(cert.get()), nullptr) < 0 &&
        to_time(X509_get0_notAfter(cert.get())) - t > kRenewBefore && same_names(cert.get(), set)) {
      auto c = cert_pem(cert.get());
      auto k = key_pem(key.get());
      if (c.ok() && k.ok()) {
        Cached& e = cache_[set.key];
        e.issued = Issued{std::move(c).value(), std::move(k).value()};
        e.not_after = to_time(X509_get0_notAfter(cert.get()));
        return e.issued;
      }
    }
    ERR_clear_error();  // not usable: make a new one over it
  }

  PIER_ASSIGN(KeyPtr key, new_key());
  PIER_ASSIGN(CertPtr cert, new_cert(key.get(), kLeafDays));
  // A name too long for a CN leaves the subject empty; the SANs then must be critical.
  bool empty_subject = set.cn.size() > kMaxCommonName;
  if (!empty_subject) PIER_TRY(set_cn(X509_get_subject_name(cert.get()), set.cn));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1)
    return ossl_fail("certificate issuer");
  PIER_TRY(add_sans(cert.get(), set, empty_subject));
  PIER_TRY(add_ext(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE"));
  PIER_TRY(add_ext(cert.get(), cert_.get(), NID_key_usage, "critical,digitalSignature"));
  PIER_TRY(add_ext(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth"));
  PIER_TRY(add_ext(cert.get(), cert_.get(), NID_subject_key_identifier, "hash"));
  PIER_TRY(add_ext(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), key_.get(), EVP_sha256()) <= 0) return ossl_fail("signing a certificate");
  PIER_ASSIGN(std::string c, cert_pem(cert.get()));
  PIER_ASSIGN(std::string k, key_pem(key.get()));

  // The disk copy only saves work on the next start: failing to write it is not fatal.
  if (auto st = write_replace(path, c + k, 0600); !st.ok())
    log::get("tls")->warn("cannot keep the certificate for {}: {}", set.cn, st.error().message);
  Cached& e = cache_[set.key];
  e.issued = Issued{std::move(c), std::move(k)};
  e.not_after = to_time(X509_get0_notAfter(cert.get()));
  return e.issued;
}

Result<std::shared_ptr<ssl::context>> Authority::server_context(const std::vector<std::string>& dns_names,
                                                                const std::vector<std::string>& ips) {
  PIER_ASSIGN(Issued leaf, issue(dns_names, ips));
  std::shared_ptr<ssl::context> ctx;
  try {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  } catch (const boost::system::system_error& e) {
    return Error::internal(fmt::format("TLS server context: {}", e.what()));
  }
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                       ssl::context::single_dh_use,
                   ec);
  if (ec) return Error::internal("TLS server options: " + ec.message());
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) return ossl_fail("TLS minimum version");
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  ctx->use_certificate_chain(boost::asio::buffer(leaf.cert_pem), ec);
  if (ec) return Error::internal("TLS server certificate: " + ec.message());
  ctx->use_private_key(boost::asio::buffer(leaf.key_pem), ssl::context::pem, ec);
  if (ec) return Error::internal("TLS server key: " + ec.message());
  if (SSL_CTX_check_private_key(native) != 1) return ossl_fail("TLS server key");
  return ctx;
}

}  // namespace pier::tls
