// pier::client::CredentialsProvider: AWS credentials for a long-running
// process, found as the AWS SDKs find them and refreshed before they expire.
// Secrets never appear in errors, logs or source().
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "client/resolve.h"
#include "common/error.h"
#include "common/time.h"

namespace pier::client {

struct Credentials {
  std::string key, secret, token;
  std::optional<std::chrono::system_clock::time_point> expires;  // none: never
};

// One profile of an AWS shared credentials file (INI: [name], key = value;
// '#' and ';' comments). Keys are lower-cased. nullopt if the file cannot be
// read or has no such profile.
std::optional<std::map<std::string, std::string>> read_profile(const std::string& path,
                                                               const std::string& profile);

// The container credentials endpoint's JSON answer → Credentials.
Result<Credentials> parse_container_credentials(std::string_view json);

class CredentialsProvider {
 public:
  enum class Kind { kNone, kEnvironment, kContainer, kSharedFile };

  // Picks the source from the environment, in this order:
  //  1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
  //  2. AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: GET http://169.254.170.2 + uri;
  //     else AWS_CONTAINER_CREDENTIALS_FULL_URI (http only; its host must be a
  //     loopback address or one of the ECS/EKS agent addresses, as the SDKs
  //     require), with Authorization from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
  //     (read on every fetch) or AWS_CONTAINER_AUTHORIZATION_TOKEN;
  //  3. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
  //     $HOME/.aws/credentials), profile AWS_PROFILE or "default".
  // dns resolves the FULL_URI host.
  static CredentialsProvider from_environment(ResolverOptions dns = {});

  // Cached. Container credentials are fetched again once within 5 minutes of
  // their Expiration (if that fetch fails while the old ones are still valid,
  // the old ones are returned); the shared file is read again after
  // invalidate(). Errors: kUnauthenticated "Unable to locate credentials" when
  // there is no source or the file/profile is missing; kUnavailable when the
  // endpoint cannot be reached; kUnauthenticated for its 4xx answers.
  boost::asio::awaitable<Result<Credentials>> get();
  // Forget the cached credentials (e.g. after an ExpiredToken answer).
  void invalidate();
  // Where credentials come from, without secrets: "environment", "container
  // endpoint http://…", "shared file profile NAME (PATH)", "none".
  std::string source() const;
  Kind kind() const { return kind_; }
  // For tests: the clock that decides when credentials are near expiry.
  void set_clock(time::Clock clock) { clock_ = std::move(clock); }
  // How many times the endpoint or file has been consulted (tests, metrics).
  int fetches() const { return fetches_; }

 private:
  boost::asio::awaitable<Result<Credentials>> fetch();
  boost::asio::awaitable<Result<Credentials>> fetch_container();
  Result<Credentials> read_shared_file();

  Kind kind_ = Kind::kNone;
  Credentials static_;                  // kEnvironment
  std::string url_;                     // kContainer: the full URL
  std::string auth_token_, auth_token_file_;
  std::string file_, profile_;          // kSharedFile
  ResolverOptions dns_;
  time::Clock clock_ = time::system_clock();
  std::optional<Credentials> cached_;
  int fetches_ = 0;
};

}  // namespace pier::client
