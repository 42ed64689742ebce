// The broker's session records in the store (table ssm_sessions).
//
// record() only queues: one writer thread of the journal's own writes them in
// order, so that no network thread waits for an fsync while it relays a
// session. A record reaches the disk within milliseconds; a crash in that
// window loses only the newest status or byte counts of a session.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "exec/broker.h"
#include "store/store.h"

namespace pier::svc::ssm {

class StoreJournal : public exec::SessionJournal {
 public:
  explicit StoreJournal(store::Store& store);
  ~StoreJournal() override;  // writes what is queued, then stops
  void record(const exec::SessionInfo& s) override;
  std::vector<exec::SessionInfo> load() override;
  // Blocks until everything queued so far is written (tests, shutdown).
  void flush();

 private:
  void run();
  void write(const exec::SessionInfo& s);

  store::Store& store_;
  std::mutex mu_;
  std::condition_variable cv_, drained_;
  std::deque<exec::SessionInfo> queue_;
  bool busy_ = false, stop_ = false;
  std::thread writer_;
};

}  // namespace pier::svc::ssm
