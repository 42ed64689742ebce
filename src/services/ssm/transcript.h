// ECS Exec's session logging, done at the broker (exec::TranscriptSink): the
// agent's output of a session goes to CloudWatch Logs, group as the
// cluster's executeCommandConfiguration says, stream named after the session
// id, one event per line. On AWS the agent inside the container uploads it,
// so a root shell there can tamper with it; here the broker records what it
// relays, which the container cannot touch.
//
// Writes happen on a thread of their own, at most a second after the output
// (and at once when a session ends), so the network threads never wait on
// the disk. A session cut by a pierd restart loses what was not yet written.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "exec/broker.h"
#include "store/store.h"

namespace pier::svc::ssm {

class StoreTranscripts final : public exec::TranscriptSink {
 public:
  explicit StoreTranscripts(store::Store& store);
  ~StoreTranscripts() override;  // writes what is pending

  void append(const exec::Transcript& t, const std::string& session_id, std::string bytes) override;
  void close(const exec::Transcript& t, const std::string& session_id) override;
  void flush();  // (tests) what can be written of what was appended so far is written

 private:
  struct Pending {
    exec::Transcript where;
    std::string text;   // not yet written
    bool closed = false;
  };
  void run();
  void write(const std::string& session_id, Pending& p);

  store::Store& store_;
  std::mutex mu_;
  std::condition_variable cv_, drained_;
  std::map<std::string, Pending> pending_;  // by session id
  bool stop_ = false, busy_ = false, urgent_ = false;
  uint64_t passes_ = 0;
  std::thread writer_;
};

}  // namespace pier::svc::ssm
