// The state store: one SQLite database in WAL mode under the pier home.
//
// There is exactly one writer connection; write() serializes callers on it and
// runs each function in one IMMEDIATE transaction that commits only when the
// function succeeds. Readers take a connection of their own from a small pool,
// so reads never wait for a write. A committed write is durable
// (synchronous=FULL) before write() returns, so an acknowledged request
// survives kill -9 and power loss alike. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "store/db.h"

namespace pier::store {

class Store {
 public:
  // Opens (creating if needed) DIR/pier.db and applies pending migrations.
  static Result<std::unique_ptr<Store>> open(const std::string& dir);

  template <class F>
  auto write(F&& f) -> std::invoke_result_t<F, Db&> {
    std::lock_guard lock(write_mu_);
    if (auto s = writer_->exec("BEGIN IMMEDIATE"); !s.ok()) return std::move(s).error();
    // A throw inside f must not leave the one writer inside its transaction.
    struct Rollback {
      Db* db;
      ~Rollback() {
        if (db) (void)db->exec("ROLLBACK");
      }
    } guard{writer_.get()};
    auto r = f(*writer_);
    guard.db = nullptr;
    writer_->reset_all();
    if (r.ok()) {
      if (auto s = writer_->exec("COMMIT"); !s.ok()) {
        (void)writer_->exec("ROLLBACK");
        return std::move(s).error();
      }
    } else {
      (void)writer_->exec("ROLLBACK");
    }
    return r;
  }

  template <class F>
  auto read(F&& f) -> std::invoke_result_t<F, Db&> {
    Lease lease(*this);
    if (!lease.db) return Error::internal("store: no reader connection");
    if (auto s = lease.db->begin_read(); !s.ok()) return std::move(s).error();
    // A throw inside f must not leave this thread's reader inside its transaction.
    struct End {
      Db* db;
      ~End() { db->end_read(); }
    } end{lease.db};
    return f(*lease.db);
  }

  int schema_version() const { return schema_version_; }
  const std::string& path() const { return path_; }

 private:
  // Each thread keeps its own reader connection for each store (network
  // threads are long-lived), so reads take no lock at all.
  struct Lease {
    explicit Lease(Store& s);
    Db* operator->() { return db; }
    Db* db = nullptr;
  };
  Store() = default;
  Result<std::unique_ptr<Db>> open_connection();

  std::string path_;
  std::unique_ptr<Db> writer_;
  std::mutex write_mu_;
  uint64_t id_ = 0;  // distinguishes stores for the per-thread readers
  int schema_version_ = 0;
};

// The schema as an ordered list of migrations; version N is the state after
// the first N have run. Exposed for the migration tests.
const std::vector<std::string>& migrations();

}  // namespace pier::store
