#include "store/store.h"

#include <fmt/format.h>

#include <atomic>
#include <filesystem>
#include <unordered_map>

#include "common/log.h"

namespace pier::store {

const std::vector<std::string>& migrations() {
  // Append only: a released migration is never edited, so that every store
  // can be brought from any earlier version to the newest.
  static const std::vector<std::string> kMigrations = {
      // 1: the foundation — tags, ECS control plane, IAM, STS.
      R"sql(
CREATE TABLE tags (
  arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (arn, key));
CREATE TABLE ecs_clusters (
  account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL,
  arn TEXT NOT NULL UNIQUE, status TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (account, region, name));
CREATE TABLE ecs_task_definitions (
  account TEXT NOT NULL, region TEXT NOT NULL, family TEXT NOT NULL,
  revision INTEGER NOT NULL, arn TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
  doc TEXT NOT NULL,
  PRIMARY KEY (account, region, family, revision));
CREATE TABLE iam_roles (
  account TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, arn TEXT NOT NULL UNIQUE,
  role_id TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (account, name));
CREATE TABLE iam_role_policies (
  account TEXT NOT NULL, role TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL,
  document TEXT NOT NULL,
  PRIMARY KEY (account, role, name));
CREATE TABLE iam_policies (
  account TEXT NOT NULL, arn TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL COLLATE NOCASE,
  doc TEXT NOT NULL,
  UNIQUE (account, name));
CREATE TABLE iam_policy_versions (
  arn TEXT NOT NULL, version_id TEXT NOT NULL, document TEXT NOT NULL,
  created REAL NOT NULL,
  PRIMARY KEY (arn, version_id));
CREATE TABLE iam_role_attachments (
  account TEXT NOT NULL, role TEXT NOT NULL COLLATE NOCASE, policy_arn TEXT NOT NULL,
  PRIMARY KEY (account, role, policy_arn));
CREATE TABLE sts_credentials (
  access_key TEXT NOT NULL PRIMARY KEY, secret TEXT NOT NULL, session_token TEXT NOT NULL,
  account TEXT NOT NULL, principal_arn TEXT NOT NULL, role_arn TEXT NOT NULL,
  role_id TEXT NOT NULL, session_name TEXT NOT NULL, expires REAL NOT NULL);
)sql",
      // 2: Session Manager sessions, so that a restarted pierd resumes them.
      R"sql(
CREATE TABLE ssm_sessions (
  session_id TEXT NOT NULL PRIMARY KEY, target TEXT NOT NULL, document TEXT NOT NULL,
  owner TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL, status TEXT NOT NULL,
  bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL);
CREATE INDEX ssm_sessions_by_start ON ssm_sessions (start);
)sql",
      // 3: the EC2 VPC objects (desired state of the network) and their tags.
      R"sql(
CREATE TABLE ec2_objects (
  account TEXT NOT NULL, region TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
  vpc_id TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (account, region, id));
CREATE INDEX ec2_objects_by_type ON ec2_objects (account, region, type, vpc_id);
CREATE TABLE ec2_tags (
  account TEXT NOT NULL, region TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (account, region, id, key));
CREATE TABLE ec2_defaults (
  account TEXT NOT NULL, region TEXT NOT NULL, vpc_id TEXT NOT NULL,
  PRIMARY KEY (account, region));
)sql",
      // 4: ECS tasks and services (the task controller's desired state and
      // what it found), and CloudWatch Logs.
      R"sql(
CREATE TABLE ecs_tasks (
  account TEXT NOT NULL, region TEXT NOT NULL, id TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
  cluster TEXT NOT NULL, service TEXT NOT NULL, last_status TEXT NOT NULL,
  desired_status TEXT NOT NULL, created REAL NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (account, region, id));
CREATE INDEX ecs_tasks_by_cluster ON ecs_tasks (account, region, cluster, service);
CREATE INDEX ecs_tasks_live ON ecs_tasks (last_status);
CREATE TABLE ecs_services (
  account TEXT NOT NULL, region TEXT NOT NULL, cluster TEXT NOT NULL, name TEXT NOT NULL,
  arn TEXT NOT NULL UNIQUE, status TEXT NOT NULL, created REAL NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (account, region, cluster, name));
CREATE TABLE logs_groups (
  account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL,
  doc TEXT NOT NULL,
  PRIMARY KEY (account, region, name));
CREATE TABLE logs_streams (
  account TEXT NOT NULL, region TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL,
  created INTEGER NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (account, region, grp, name));
CREATE TABLE logs_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL, region TEXT NOT NULL, grp TEXT NOT NULL, stream TEXT NOT NULL,
  ts INTEGER NOT NULL, ingested INTEGER NOT NULL, message TEXT NOT NULL);
CREATE INDEX logs_events_by_stream ON logs_events (account, region, grp, stream, ts);
)sql",
  };
  return kMigrations;
}

namespace {

Status configure(Db& db) {
  // WAL + synchronous=FULL: a COMMIT that returned is on disk; a crash at any
  // point leaves the last committed state, and readers never block the writer.
  PIER_TRY(db.exec("PRAGMA journal_mode=WAL"));
  PIER_TRY(db.exec("PRAGMA synchronous=FULL"));
  PIER_TRY(db.exec("PRAGMA foreign_keys=ON"));
  return {};
}

Result<int> user_version(Db& db) {
  PIER_ASSIGN(Stmt * s, db.prepare("PRAGMA user_version"));
  PIER_ASSIGN(bool row, s->step());
  int v = row ? static_cast<int>(s->integer(0)) : 0;
  s->reset();
  return v;
}

}  // namespace

Result<std::unique_ptr<Db>> Store::open_connection() {
  PIER_ASSIGN(auto db, Db::open(path_));
  PIER_TRY(configure(*db));
  return db;
}

Result<std::unique_ptr<Store>> Store::open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::internal(fmt::format("store: create '{}': {}", dir, ec.message()));
  static std::atomic<uint64_t> next_id{1};
  std::unique_ptr<Store> st(new Store());
  st->id_ = next_id++;
  st->path_ = (std::filesystem::path(dir) / "pier.db").string();
  PIER_ASSIGN(st->writer_, st->open_connection());
  Db& db = *st->writer_;

  PIER_ASSIGN(int version, user_version(db));
  const auto& all = migrations();
  if (version > static_cast<int>(all.size()))
    return Error::internal(fmt::format(
        "store '{}' has schema version {}, newer than this pierd knows ({})", st->path_,
        version, all.size()));
  // Each migration and its version bump commit together, so a crash between
  // two migrations leaves a store at a well-defined version.
  for (int v = version; v < static_cast<int>(all.size()); ++v) {
    PIER_TRY(db.exec("BEGIN IMMEDIATE"));
    auto s = db.exec(all[static_cast<size_t>(v)]);
    if (s.ok()) s = db.exec(fmt::format("PRAGMA user_version={}", v + 1));
    if (!s.ok()) {
      (void)db.exec("ROLLBACK");
      return Error::internal(
          fmt::format("store: migration {} failed: {}", v + 1, s.error().message));
    }
    PIER_TRY(db.exec("COMMIT"));
    log::get("store")->info("schema migrated to version {}", v + 1);
  }
  st->schema_version_ = static_cast<int>(all.size());
  return st;
}

Store::Lease::Lease(Store& s) {
  thread_local std::unordered_map<uint64_t, std::unique_ptr<Db>> readers;
  auto& slot = readers[s.id_];
  if (!slot) {
    auto r = s.open_connection();
    // Opening another connection to an open database fails only when the
    // process is out of descriptors or memory; the caller then gets an error.
    if (!r.ok()) {
      readers.erase(s.id_);
      return;
    }
    slot = std::move(r).value();
  }
  db = slot.get();
}

}  // namespace pier::store
