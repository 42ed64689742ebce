// The broker's session records in the store (table ssm_sessions).
#pragma once

#include "exec/broker.h"
#include "store/store.h"

namespace pier::svc::ssm {

class StoreJournal : public exec::SessionJournal {
 public:
  explicit StoreJournal(store::Store& store) : store_(store) {}
  void record(const exec::SessionInfo& s) override;
  std::vector<exec::SessionInfo> load() override;

 private:
  store::Store& store_;
};

}  // namespace pier::svc::ssm
