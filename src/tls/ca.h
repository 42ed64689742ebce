// pier's own certificate authority. It lives in a directory under pierd's home
// (ca.key, ca.pem) and signs the leaf certificates of the AWS names pierd
// answers for inside VPCs (ssmmessages.us-east-1.amazonaws.com on 443 in a
// network namespace, ...), so clients that trust ca.pem verify them. Leaves are
// EC P-256, cached in memory and on disk (DIR/leaf-<hash>.pem) per name set.
#pragma once

#include <openssl/types.h>

#include <boost/asio/ssl/context.hpp>

#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"

namespace pier::tls {

// A leaf certificate (PEM, the leaf alone) and its private key (PEM, PKCS#8).
struct Issued {
  std::string cert_pem;
  std::string key_pem;
};

class Authority {
 public:
  // Loads DIR/ca.key and DIR/ca.pem, or makes both if both are absent (DIR is
  // created 0700, the key file is 0600): an EC P-256 key and a self-signed
  // X.509 v3 CA certificate, CN "pier local CA <random>", valid 10 years. New
  // files are written under temporary names and linked into place, so a crash
  // never leaves half a CA and an existing one is never replaced. Only one of
  // the two files present, or a key that does not match the certificate, is an
  // error: pier never overwrites a CA that clients may already trust.
  static Result<std::shared_ptr<Authority>> open(const std::string& dir);

  const std::string& ca_pem() const { return ca_pem_; }
  std::string ca_file() const;  // DIR/ca.pem

  // A leaf for these DNS names (lower-cased; a leading "*." label is allowed)
  // and IP addresses (text): all are SANs, CN is the first DNS name (or IP),
  // serverAuth, digitalSignature, CA:FALSE, valid from an hour ago for 397
  // days. Reused per (sorted, deduplicated) name set from memory, and from
  // DIR/leaf-<16 hex of sha256 of the set>.pem (cert + key, 0600) across
  // restarts while it has more than 30 days left and this CA signed it. The
  // CN of a reused leaf is the one of the call that made it. Thread-safe.
  Result<Issued> issue(const std::vector<std::string>& dns_names, const std::vector<std::string>& ips = {});

  // A server boost::asio::ssl::context (TLS 1.2 or later, no compression)
  // holding issue()'s leaf for these names: what pierd's HTTPS listeners use.
  Result<std::shared_ptr<boost::asio::ssl::context>> server_context(const std::vector<std::string>& dns_names,
                                                                    const std::vector<std::string>& ips = {});

  struct KeyFree {
    void operator()(EVP_PKEY* k) const;
  };
  struct CertFree {
    void operator()(X509* c) const;
  };
  using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
  using CertPtr = std::unique_ptr<X509, CertFree>;

 private:
  struct Cached {
    Issued issued;
    std::time_t not_after = 0;
  };

  Authority(std::string dir, std::string ca_pem, KeyPtr key, CertPtr cert);

  std::string dir_;
  std::string ca_pem_;
  KeyPtr key_;
  CertPtr cert_;
  std::mutex mu_;                         // guards cache_ and the leaf files
  std::map<std::string, Cached> cache_;  // by canonical name set
};

}  // namespace pier::tls
