// CloudWatch Logs (JSON 1.1, target prefix `Logs_20140328`): log groups,
// streams and events, kept in the store. The awslogs driver of the task
// controller writes through append_events(). Thread-safe: all state is in
// the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

// ---- pieces exposed for the unit tests

// The retention periods PutRetentionPolicy accepts.
bool valid_retention(int64_t days);
// logGroupName: 1–512 of [.-_/#A-Za-z0-9]; logStreamName: 1–512, no ':' or '*'.
bool valid_group_name(std::string_view s);
bool valid_stream_name(std::string_view s);

// A FilterLogEvents pattern (the term subset): empty matches everything;
// space-separated terms must all appear (case-sensitive substrings);
// "quoted phrases" are one term; -term must not appear; when any ?term is
// given, at least one of them must appear. JSON ({…}) and space-delimited
// ([…]) patterns are refused.
struct FilterPattern {
  std::vector<std::string> all, none, any;
  bool matches(std::string_view message) const;
};
Result<FilterPattern> parse_filter_pattern(std::string_view text);

// A position between two events of a stream, ordered by (timestamp, seq):
// GetLogEvents' tokens. "f/…" reads forward from after `key`, "b/…" reads
// backward from before it.
struct EventKey {
  int64_t ts = 0;
  int64_t seq = 0;
  auto operator<=>(const EventKey&) const = default;
};
struct StreamToken {
  bool forward = true;
  EventKey key;
};
std::string format_stream_token(const StreamToken& t);
std::optional<StreamToken> parse_stream_token(std::string_view text);

// What PutLogEvents does with a batch whose events are in order: the index
// ranges too old (more than 14 days before now, or past the retention), too
// new (more than 2 hours after now); events in between are kept.
struct Rejected {
  std::optional<int64_t> too_old_end, expired_end, too_new_start;
  size_t first_kept = 0, end_kept = 0;  // [first_kept, end_kept)
};
Rejected classify_batch(const std::vector<Event>& events, int64_t now_ms,
                        std::optional<int64_t> retention_days);

}  // namespace pier::svc::logs
