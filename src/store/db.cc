#include "store/db.h"

#include <fmt/format.h>

namespace pier::store {
namespace {
Error sql_error(sqlite3* db, std::string_view what) {
  return Error::internal(fmt::format("sqlite: {}: {}", what, sqlite3_errmsg(db)));
}
}  // namespace

Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

Result<bool> Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Error e = sql_error(sqlite3_db_handle(s_), "step");
  if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT) e.kind = ErrorKind::kConflict;
  sqlite3_reset(s_);
  return e;
}

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r.ok()) return std::move(r).error();
    if (!*r) return {};
  }
}

Result<std::vector<std::string>> Stmt::strings(int col) {
  std::vector<std::string> out;
  for (;;) {
    PIER_ASSIGN(bool row, step());
    if (!row) return out;
    out.push_back(text(col));
  }
}

std::string Stmt::text(int col) const {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
  if (!p) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col)));
}
int64_t Stmt::integer(int col) const { return sqlite3_column_int64(s_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(s_, col); }
bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

Result<std::unique_ptr<Db>> Db::open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error::internal(fmt::format("sqlite: open '{}': {}", path, msg));
  }
  sqlite3_busy_timeout(db, 10000);
  return std::unique_ptr<Db>(new Db(db));
}

Db::~Db() {
  cache_.clear();
  for (auto& [_, s] : raw_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

Status Db::exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    return Error::internal(fmt::format("sqlite: exec: {}", msg));
  }
  return {};
}

Result<Stmt*> Db::prepare(std::string_view sql) {
  std::string key(sql);
  if (auto it = cache_.find(key); it != cache_.end()) {
    it->second->reset();
    return it->second.get();
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, key.c_str(), static_cast<int>(key.size()), &s, nullptr) !=
      SQLITE_OK)
    return sql_error(db_, fmt::format("prepare '{}'", key));
  raw_[key] = s;
  auto& slot = cache_[key];
  slot = std::make_unique<Stmt>(s);
  return slot.get();
}

int64_t Db::changes() const { return sqlite3_changes64(db_); }

Status Db::begin_read() {
  PIER_ASSIGN(Stmt * s, prepare("BEGIN"));
  return s->run();
}

void Db::reset_all() {
  for (sqlite3_stmt* p = sqlite3_next_stmt(db_, nullptr); p; p = sqlite3_next_stmt(db_, p))
    if (sqlite3_stmt_busy(p)) sqlite3_reset(p);
}

void Db::end_read() {
  // A statement left part-way (a lookup that took the first row only) would
  // keep this connection's snapshot: later reads would not see newer writes.
  reset_all();
  auto s = prepare("COMMIT");
  if (s.ok()) (void)(*s)->run();
}

}  // namespace pier::store
