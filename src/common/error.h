// pier::Error and pier::Result: how anything that can fail for a reason outside
// the program reports it. An Error carries a category (what kind of failure), the
// AWS error code when AWS has a specific one, and a message for the caller. The
// mapping of categories and codes to HTTP status lives in aws/errors.cc only.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace pier {

enum class ErrorKind {
  kInvalid,          // the caller's input is wrong (4xx)
  kNotFound,         // the named thing does not exist
  kConflict,         // exists already, or in use
  kDenied,           // authenticated, but not allowed
  kUnauthenticated,  // credentials or signature are wrong or missing
  kLimit,            // too large, too many
  kUnavailable,      // try again later
  kInternal,         // a bug or a broken host; 5xx
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string code;     // AWS error code, e.g. "ClusterNotFoundException"
  std::string message;  // text for the caller; never holds a secret

  static Error invalid(std::string code, std::string message) {
    return {ErrorKind::kInvalid, std::move(code), std::move(message)};
  }
  static Error not_found(std::string code, std::string message) {
    return {ErrorKind::kNotFound, std::move(code), std::move(message)};
  }
  static Error conflict(std::string code, std::string message) {
    return {ErrorKind::kConflict, std::move(code), std::move(message)};
  }
  static Error denied(std::string code, std::string message) {
    return {ErrorKind::kDenied, std::move(code), std::move(message)};
  }
  static Error unauthenticated(std::string code, std::string message) {
    return {ErrorKind::kUnauthenticated, std::move(code), std::move(message)};
  }
  static Error internal(std::string message) {
    return {ErrorKind::kInternal, "InternalFailure", std::move(message)};
  }
};

// A minimal expected<T, Error>. Kept tiny on purpose: std::expected replaces it
// once the project moves to C++23.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());  // callers check ok() first; reading a failed result is a bug
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const& {
    assert(failed_);
    return error_;
  }
  Error&& error() && {
    assert(failed_);
    return std::move(error_);
  }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace pier

// PIER_TRY(expr): return the error of a failed Result from the enclosing function.
#define PIER_TRY(expr)                                   \
  do {                                                   \
    auto pier_try_r_ = (expr);                           \
    if (!pier_try_r_.ok()) return std::move(pier_try_r_).error(); \
  } while (0)

// PIER_ASSIGN(decl, expr): declare decl from a successful Result, else return its error.
#define PIER_CONCAT_INNER_(a, b) a##b
#define PIER_CONCAT_(a, b) PIER_CONCAT_INNER_(a, b)
#define PIER_ASSIGN(decl, expr) PIER_ASSIGN_IMPL_(PIER_CONCAT_(pier_r_, __LINE__), decl, expr)
#define PIER_ASSIGN_IMPL_(tmp, decl, expr)        \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).error();   \
  decl = std::move(tmp).value()
