#include "services/ssm/journal.h"

#include <algorithm>

#include "common/log.h"

namespace pier::svc::ssm {

using store::Db;

StoreJournal::StoreJournal(store::Store& store) : store_(store), writer_([this] { run(); }) {}

StoreJournal::~StoreJournal() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void StoreJournal::record(const exec::SessionInfo& s) {
  {
    std::lock_guard lock(mu_);
    // A newer record of the same session replaces one still waiting.
    for (auto& q : queue_)
      if (q.session_id == s.session_id) {
        exec::SessionInfo merged = s;
        if (q.end != 0 && s.end == 0) merged.end = q.end, merged.status = q.status;
        merged.bytes_in = std::max(q.bytes_in, s.bytes_in);
        merged.bytes_out = std::max(q.bytes_out, s.bytes_out);
        q = merged;
        return;
      }
    queue_.push_back(s);
  }
  cv_.notify_one();
}

void StoreJournal::flush() {
  std::unique_lock lock(mu_);
  drained_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void StoreJournal::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    exec::SessionInfo s = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    write(s);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) drained_.notify_all();
  }
  drained_.notify_all();
}

void StoreJournal::write(const exec::SessionInfo& s) {
  auto r = store_.write([&](Db& db) -> Status {
    PIER_ASSIGN(auto* st, db.prepare(
        "INSERT INTO ssm_sessions (session_id, target, document, owner, start, end, status, bytes_in, bytes_out) "
        "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (session_id) DO UPDATE SET "
        // An ended session stays ended: a snapshot taken before its end may arrive after it.
        "end=CASE WHEN ssm_sessions.end != 0 THEN ssm_sessions.end ELSE excluded.end END, "
        "status=CASE WHEN ssm_sessions.end != 0 THEN ssm_sessions.status ELSE excluded.status END, "
        "bytes_in=max(ssm_sessions.bytes_in, excluded.bytes_in), bytes_out=max(ssm_sessions.bytes_out, excluded.bytes_out)"));
    return st->args(s.session_id, s.target, s.document, s.owner, s.start, s.end, s.status,
                    static_cast<int64_t>(s.bytes_in), static_cast<int64_t>(s.bytes_out))
        .run();
  });
  // The session itself goes on; only its record after a restart suffers.
  if (!r.ok()) log::get("ssm")->error("session {}: not recorded: {}", s.session_id, r.error().message);
}

std::vector<exec::SessionInfo> StoreJournal::load() {
  auto r = store_.read([&](Db& db) -> Result<std::vector<exec::SessionInfo>> {
    // Every active session, and the newest 1000 that ended (DescribeSessions' history).
    PIER_ASSIGN(auto* st, db.prepare(
        "SELECT session_id, target, document, owner, start, end, status, bytes_in, bytes_out FROM ssm_sessions "
        "WHERE end = 0 OR session_id IN (SELECT session_id FROM ssm_sessions WHERE end != 0 "
        "ORDER BY start DESC LIMIT 1000) ORDER BY start"));
    std::vector<exec::SessionInfo> out;
    for (;;) {
      PIER_ASSIGN(bool row, st->step());
      if (!row) break;
      exec::SessionInfo i;
      i.session_id = st->text(0);
      i.target = st->text(1);
      i.document = st->text(2);
      i.owner = st->text(3);
      i.start = st->real(4);
      i.end = st->real(5);
      i.status = st->text(6);
      i.bytes_in = static_cast<uint64_t>(st->integer(7));
      i.bytes_out = static_cast<uint64_t>(st->integer(8));
      out.push_back(std::move(i));
    }
    st->reset();
    return out;
  });
  if (!r.ok()) {
    log::get("ssm")->error("sessions not loaded: {}", r.error().message);
    return {};
  }
  return std::move(r).value();
}

}  // namespace pier::svc::ssm
