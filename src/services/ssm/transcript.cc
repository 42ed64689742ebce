#include "services/ssm/transcript.h"

#include <chrono>
#include <vector>

#include "common/log.h"
#include "services/logs/logs.h"

namespace pier::svc::ssm {

namespace {
constexpr size_t kMaxEvent = 256 * 1024 - 26;  // CloudWatch's event size, less its overhead
}

StoreTranscripts::StoreTranscripts(store::Store& store) : store_(store), writer_([this] { run(); }) {}

StoreTranscripts::~StoreTranscripts() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void StoreTranscripts::append(const exec::Transcript& t, const std::string& session_id, std::string bytes) {
  std::lock_guard lock(mu_);
  auto& p = pending_[session_id];
  p.where = t;
  p.text += bytes;
  if (p.text.size() > 1024 * 1024) {
    urgent_ = true;
    cv_.notify_one();
  }
}

void StoreTranscripts::close(const exec::Transcript& t, const std::string& session_id) {
  {
    std::lock_guard lock(mu_);
    auto& p = pending_[session_id];
    p.where = t;
    p.closed = true;
    urgent_ = true;
  }
  cv_.notify_one();
}

void StoreTranscripts::flush() {
  std::unique_lock lock(mu_);
  // A whole pass that starts after this call.
  uint64_t want = passes_ + (busy_ ? 2 : 1);
  urgent_ = true;
  cv_.notify_one();
  drained_.wait(lock, [&] { return passes_ >= want || stop_; });
}

void StoreTranscripts::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_ || urgent_; });
    urgent_ = false;
    std::map<std::string, Pending> batch;
    for (auto it = pending_.begin(); it != pending_.end();) {
      auto& p = it->second;
      // Whole lines only while the session goes on; the rest at its end.
      size_t cut = p.closed || stop_ ? p.text.size() : p.text.rfind('\n');
      if (cut == std::string::npos) cut = p.text.size() > kMaxEvent ? p.text.size() : 0;
      else if (!p.closed && !stop_) ++cut;
      if (cut > 0 || p.closed) {
        Pending out{p.where, p.text.substr(0, cut), p.closed};
        p.text.erase(0, cut);
        batch.emplace(it->first, std::move(out));
      }
      // Stopping: what is left of sessions still open is written now, and they go.
      it = p.closed || stop_ ? pending_.erase(it) : std::next(it);
    }
    busy_ = true;  // (a pass in progress: its snapshot may predate a flush())
    lock.unlock();
    for (auto& [id, p] : batch) write(id, p);
    lock.lock();
    busy_ = false;
    ++passes_;
    drained_.notify_all();
    if (stop_ && pending_.empty()) break;
  }
}

void StoreTranscripts::write(const std::string& session_id, Pending& p) {
  if (p.text.empty()) return;
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<logs::Event> events;
  size_t pos = 0;
  while (pos < p.text.size()) {
    size_t nl = p.text.find('\n', pos);
    size_t end = nl == std::string::npos ? p.text.size() : nl;
    std::string line = p.text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    pos = nl == std::string::npos ? p.text.size() : nl + 1;
    for (size_t i = 0; i < line.size() || i == 0; i += kMaxEvent) {
      std::string part = line.substr(i, kMaxEvent);
      if (!part.empty()) events.push_back(logs::Event{now, std::move(part)});
      if (line.empty()) break;
    }
  }
  if (events.empty()) return;
  auto s = store_.write([&](store::Db& db) {
    return logs::append_events(db, p.where.account, p.where.region, p.where.log_group, session_id, events, false);
  });
  if (!s.ok())
    log::get("ssm")->warn("session {}: transcript to {}: {}", session_id, p.where.log_group, s.error().message);
}

}  // namespace pier::svc::ssm
