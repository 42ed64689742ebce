// CloudWatch Logs (JSON 1.1, target prefix `Logs_20140328`): log groups,
// streams and events, kept in the store. The awslogs driver of the task
// controller writes through append_events(). Thread-safe: all state is in
// the store.
#pragma once

#include <string>
#include <vector>

#include "aws/dispatcher.h"
#include "store/store.h"

namespace pier::svc::logs {

class LogsService {
 public:
  explicit LogsService(store::Store& store);
  aws::ServiceDef definition();

 private:
  store::Store& store_;
};

struct Event {
  int64_t timestamp_ms = 0;
  std::string message;
};

// The awslogs driver's write: appends events (in order) to GROUP/STREAM,
// making the stream if it does not exist. The group must exist unless
// create_group (awslogs-create-group=true); otherwise AWS's
// ResourceNotFoundException "The specified log group does not exist."
Status append_events(store::Db& db, const std::string& account, const std::string& region,
                     const std::string& group, const std::string& stream,
                     const std::vector<Event>& events, bool create_group);

// Whether the group exists (the task controller checks before it starts a
// container whose awslogs group is missing).
Result<bool> group_exists(store::Db& db, const std::string& account, const std::string& region,
                          const std::string& group);

}  // namespace pier::svc::logs
