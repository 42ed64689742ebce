// A thin RAII wrapper over one SQLite connection and its prepared statements.
// Not thread-safe: each connection is used by one thread at a time (Store hands
// them out).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace pier::store {

class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind_null(int i);
  // Binds all parameters for a fresh run (resetting a statement that ran
  // before, so that loops may reuse one statement).
  template <class... A>
  Stmt& args(const A&... a) {
    reset();
    int i = 1;
    (bind_one(i++, a), ...);
    return *this;
  }
  // Advances; true while a row is available. Errors are returned by done().
  Result<bool> step();
  // Runs to completion (for statements that return no rows).
  Status run();
  // Runs to completion, collecting one column of every row as text.
  Result<std::vector<std::string>> strings(int col = 0);
  std::string text(int col) const;
  int64_t integer(int col) const;
  double real(int col) const;
  bool is_null(int col) const;
  void reset();

 private:
  template <class T>
  void bind_one(int i, const T& v) {
    if constexpr (std::is_same_v<T, std::nullopt_t>) {
      bind_null(i);
    } else if constexpr (std::is_integral_v<T>) {
      bind(i, static_cast<int64_t>(v));
    } else if constexpr (std::is_floating_point_v<T>) {
      bind(i, static_cast<double>(v));
    } else {
      bind(i, std::string_view(v));
    }
  }
  sqlite3_stmt* s_;
};

class Db {
 public:
  static Result<std::unique_ptr<Db>> open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status exec(std::string_view sql);
  // Prepared statements are cached per connection by their SQL text.
  Result<Stmt*> prepare(std::string_view sql);
  int64_t changes() const;
  // A read transaction, through cached statements (cheaper than exec()).
  Status begin_read();
  void end_read();
  // Resets every statement still part-way through its rows (ends of transactions).
  void reset_all();
  sqlite3* raw() { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
  std::unordered_map<std::string, sqlite3_stmt*> raw_;
};

}  // namespace pier::store
