#include "services/logs/logs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <limits>

#include "aws/arn.h"
#include "common/strings.h"
#include "services/util.h"

namespace pier::svc::logs {

using aws::RequestContext;
using store::Db;
using store::Stmt;
namespace json = boost::json;

namespace {

constexpr int64_t kHourMs = 3600LL * 1000;
constexpr int64_t kDayMs = 24 * kHourMs;
constexpr int64_t kEventOverhead = 26;          // bytes AWS adds to each event's size
constexpr int64_t kMaxBatchBytes = 1048576;     // PutLogEvents: the whole batch
constexpr int64_t kMaxEventBytes = 262144;      // one event, overhead included
constexpr int64_t kMaxBatchEvents = 10000;
constexpr int64_t kTimeMax = std::numeric_limits<int64_t>::max();

constexpr int64_t kRetentions[] = {1,   3,   5,   7,   14,   30,   60,   90,   120,  150,  180,
                                   365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653};

Error invalid(std::string msg) { return Error::invalid("InvalidParameterException", std::move(msg)); }
Error group_not_found() {
  return Error::not_found("ResourceNotFoundException", "The specified log group does not exist.");
}
Error stream_not_found() {
  return Error::not_found("ResourceNotFoundException", "The specified log stream does not exist.");
}
Error bad_token() { return invalid("The specified nextToken is invalid."); }

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The request's time (the dispatcher's clock), else the wall clock.
int64_t now_ms(const RequestContext& ctx) {
  return ctx.now > 0 ? static_cast<int64_t>(std::llround(ctx.now * 1000)) : wall_ms();
}

std::string group_arn(std::string_view region, std::string_view account, std::string_view group) {
  return aws::make_arn("logs", region, account, fmt::format("log-group:{}", group));
}
std::string stream_arn(std::string_view region, std::string_view account, std::string_view group,
                       std::string_view stream) {
  return aws::make_arn("logs", region, account, fmt::format("log-group:{}:log-stream:{}", group, stream));
}

std::string sequence_token(int64_t n) { return fmt::format("{:056d}", n); }
std::string event_id(int64_t seq) { return fmt::format("{:056d}", seq); }

int64_t event_bytes(std::string_view message) {
  return static_cast<int64_t>(message.size()) + kEventOverhead;
}

Status check_group_name(std::string_view name, std::string_view member = "logGroupName") {
  if (!valid_group_name(name))
    return invalid(fmt::format(
        "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: Member "
        "must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        name, member));
  return {};
}

Status check_stream_name(std::string_view name) {
  if (!valid_stream_name(name))
    return invalid(fmt::format(
        "1 validation error detected: Value '{}' at 'logStreamName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [^:*]*",
        name));
  return {};
}

// ---------------------------------------------------------------- rows

struct Group {
  std::string name;
  int64_t created = 0;
  json::object doc;  // retentionInDays, kmsKeyId, logGroupClass, deletionProtectionEnabled
};

struct Stream {
  std::string name;
  int64_t created = 0;
  // firstEventTimestamp, lastEventTimestamp, lastIngestionTime, storedBytes, sequence
  json::object doc;
};

Result<std::optional<Group>> load_group(Db& db, std::string_view account, std::string_view region,
                                        std::string_view name) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT created, doc FROM logs_groups WHERE account=? AND region=? AND name=?"));
  st->args(account, region, name);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<Group>();
  Group g;
  g.name = std::string(name);
  g.created = st->integer(0);
  PIER_ASSIGN(g.doc, parse_object(st->text(1)));
  st->reset();
  return std::optional<Group>(std::move(g));
}

Result<Group> require_group(Db& db, std::string_view account, std::string_view region,
                            std::string_view name) {
  PIER_ASSIGN(auto g, load_group(db, account, region, name));
  if (!g) return group_not_found();
  return std::move(*g);
}

Status insert_group(Db& db, std::string_view account, std::string_view region, const Group& g) {
  PIER_ASSIGN(auto* st, db.prepare("INSERT INTO logs_groups(account, region, name, created, doc) VALUES(?,?,?,?,?)"));
  st->args(account, region, g.name, g.created, json::serialize(g.doc));
  return st->run();
}

Status update_group(Db& db, std::string_view account, std::string_view region, const Group& g) {
  PIER_ASSIGN(auto* st, db.prepare("UPDATE logs_groups SET doc=? WHERE account=? AND region=? AND name=?"));
  st->args(json::serialize(g.doc), account, region, g.name);
  return st->run();
}

Result<std::optional<Stream>> load_stream(Db& db, std::string_view account, std::string_view region,
                                          std::string_view group, std::string_view name) {
  PIER_ASSIGN(auto* st, db.prepare(
      "SELECT created, doc FROM logs_streams WHERE account=? AND region=? AND grp=? AND name=?"));
  st->args(account, region, group, name);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<Stream>();
  Stream s;
  s.name = std::string(name);
  s.created = st->integer(0);
  PIER_ASSIGN(s.doc, parse_object(st->text(1)));
  st->reset();
  return std::optional<Stream>(std::move(s));
}

Status insert_stream(Db& db, std::string_view account, std::string_view region, std::string_view group,
                     const Stream& s) {
  PIER_ASSIGN(auto* st, db.prepare(
      "INSERT INTO logs_streams(account, region, grp, name, created, doc) VALUES(?,?,?,?,?,?)"));
  st->args(account, region, group, s.name, s.created, json::serialize(s.doc));
  return st->run();
}

Status update_stream(Db& db, std::string_view account, std::string_view region, std::string_view group,
                     const Stream& s) {
  PIER_ASSIGN(auto* st, db.prepare(
      "UPDATE logs_streams SET doc=? WHERE account=? AND region=? AND grp=? AND name=?"));
  st->args(json::serialize(s.doc), account, region, group, s.name);
  return st->run();
}

Stream new_stream(std::string name, int64_t now) {
  Stream s;
  s.name = std::move(name);
  s.created = now;
  s.doc["storedBytes"] = 0;
  s.doc["sequence"] = 1;
  return s;
}

Group new_group(std::string name, int64_t now) {
  Group g;
  g.name = std::move(name);
  g.created = now;
  g.doc["logGroupClass"] = "STANDARD";
  return g;
}

std::optional<int64_t> retention_of(const Group& g) { return get_int(g.doc, "retentionInDays"); }

// The oldest timestamp a read returns under the group's retention.
int64_t retention_cutoff(const Group& g, int64_t now) {
  auto r = retention_of(g);
  return r ? now - *r * kDayMs : 0;
}

Result<int64_t> group_stored_bytes(Db& db, std::string_view account, std::string_view region,
                                   std::string_view group) {
  PIER_ASSIGN(auto* st, db.prepare(
      "SELECT COALESCE(SUM(json_extract(doc, '$.storedBytes')), 0) FROM logs_streams "
      "WHERE account=? AND region=? AND grp=?"));
  st->args(account, region, group);
  PIER_ASSIGN(bool row, st->step());
  int64_t n = row ? st->integer(0) : 0;
  st->reset();
  return n;
}

Result<json::object> view_group(Db& db, std::string_view account, std::string_view region,
                                const Group& g) {
  std::string arn = group_arn(region, account, g.name);
  json::object o;
  o["logGroupName"] = g.name;
  o["creationTime"] = g.created;
  if (auto r = retention_of(g)) o["retentionInDays"] = *r;
  o["metricFilterCount"] = 0;
  o["arn"] = arn + ":*";
  PIER_ASSIGN(int64_t bytes, group_stored_bytes(db, account, region, g.name));
  o["storedBytes"] = bytes;
  if (auto k = get_string(g.doc, "kmsKeyId"); !k.empty()) o["kmsKeyId"] = k;
  o["logGroupClass"] = get_string(g.doc, "logGroupClass", "STANDARD");
  o["logGroupArn"] = arn;
  if (auto* d = g.doc.if_contains("deletionProtectionEnabled"); d && d->is_bool())
    o["deletionProtectionEnabled"] = d->as_bool();
  return o;
}

json::object view_stream(std::string_view account, std::string_view region, std::string_view group,
                         const Stream& s) {
  json::object o;
  o["logStreamName"] = s.name;
  o["creationTime"] = s.created;
  for (const char* k : {"firstEventTimestamp", "lastEventTimestamp", "lastIngestionTime"})
    if (auto v = get_int(s.doc, k)) o[k] = *v;
  o["uploadSequenceToken"] = sequence_token(get_int(s.doc, "sequence").value_or(1));
  o["arn"] = stream_arn(region, account, group, s.name);
  o["storedBytes"] = get_int(s.doc, "storedBytes").value_or(0);
  return o;
}

// ---------------------------------------------------------------- appending

struct Appended {
  Rejected rejected;
  std::string next_token;
};

// The one write path for events (PutLogEvents and the awslogs driver):
// events are in chronological order; too old / too new / expired ones are
// dropped as AWS rejects them; the stream's timestamps, ingestion time,
// storedBytes and sequence token follow.
Result<Appended> append_sorted(Db& db, std::string_view account, std::string_view region,
                               std::string_view group, std::string_view stream,
                               const std::vector<Event>& events, int64_t now, bool make_group,
                               bool make_stream) {
  PIER_ASSIGN(auto g, load_group(db, account, region, group));
  if (!g) {
    if (!make_group) return group_not_found();
    g = new_group(std::string(group), now);
    PIER_TRY(insert_group(db, account, region, *g));
  }
  PIER_ASSIGN(auto s, load_stream(db, account, region, group, stream));
  if (!s) {
    if (!make_stream) return stream_not_found();
    s = new_stream(std::string(stream), now);
    PIER_TRY(insert_stream(db, account, region, group, *s));
  }
  Appended out;
  out.rejected = classify_batch(events, now, retention_of(*g));
  const Rejected& r = out.rejected;
  if (r.first_kept < r.end_kept) {
    PIER_ASSIGN(auto* ins, db.prepare(
        "INSERT INTO logs_events(account, region, grp, stream, ts, ingested, message) VALUES(?,?,?,?,?,?,?)"));
    int64_t bytes = 0;
    for (size_t i = r.first_kept; i < r.end_kept; ++i) {
      ins->args(account, region, group, stream, events[i].timestamp_ms, now, events[i].message);
      PIER_TRY(ins->run());
      bytes += static_cast<int64_t>(events[i].message.size());
    }
    int64_t first = events[r.first_kept].timestamp_ms;
    int64_t last = events[r.end_kept - 1].timestamp_ms;
    auto& d = s->doc;
    if (auto f = get_int(d, "firstEventTimestamp")) first = std::min(first, *f);
    if (auto l = get_int(d, "lastEventTimestamp")) last = std::max(last, *l);
    d["firstEventTimestamp"] = first;
    d["lastEventTimestamp"] = last;
    d["lastIngestionTime"] = now;
    d["storedBytes"] = get_int(d, "storedBytes").value_or(0) + bytes;
  }
  int64_t seq = get_int(s->doc, "sequence").value_or(1) + 1;
  s->doc["sequence"] = seq;
  PIER_TRY(update_stream(db, account, region, group, *s));
  out.next_token = sequence_token(seq);
  return out;
}

// ---------------------------------------------------------------- requests

// The group a request names: logGroupName, or logGroupIdentifier (a name or
// an ARN, with or without the trailing ":*"). nullopt: an ARN of another
// account or region (so: not found).
Result<std::optional<std::string>> group_ref(const RequestContext& ctx, const json::object& in,
                                             bool required = true) {
  std::string name = get_string(in, "logGroupName");
  std::string ident = get_string(in, "logGroupIdentifier");
  if (!name.empty() && !ident.empty())
    return invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.");
  if (name.empty() && ident.empty()) {
    if (!required) return std::optional<std::string>(std::string());
    return invalid("Should provide either a LogGroup name or a LogGroup ARN.");
  }
  if (!name.empty()) return std::optional<std::string>(name);
  if (!ident.starts_with("arn:")) return std::optional<std::string>(ident);
  auto a = aws::Arn::parse(ident);
  if (!a || a->service != "logs" || !a->resource.starts_with("log-group:"))
    return invalid(fmt::format("Invalid log group identifier: {}", ident));
  std::string g = a->resource.substr(10);
  if (g.ends_with(":*")) g.resize(g.size() - 2);
  if (a->region != ctx.region || a->account != ctx.principal.account) return std::optional<std::string>();
  return std::optional<std::string>(g);
}

// A log group ARN (TagResource & co.) as the group's name; nullopt when it
// names another kind of resource, account or region.
Result<std::optional<std::string>> group_of_arn(const RequestContext& ctx, std::string_view arn) {
  auto a = aws::Arn::parse(arn);
  if (!a || a->service != "logs") return invalid(fmt::format("Invalid resource ARN: {}", arn));
  if (!a->resource.starts_with("log-group:") || a->region != ctx.region ||
      a->account != ctx.principal.account)
    return std::optional<std::string>();
  std::string g = a->resource.substr(10);
  if (g.ends_with(":*")) g.resize(g.size() - 2);
  if (g.empty() || g.find(':') != std::string::npos) return std::optional<std::string>();
  return std::optional<std::string>(g);
}

Result<size_t> read_offset(const json::object& in) {
  auto tok = get_string(in, "nextToken");
  if (tok.empty()) return size_t{0};
  auto o = parse_page_token(tok);
  if (!o) return bad_token();
  return *o;
}

Result<int64_t> read_limit(const json::object& in, int64_t dflt, int64_t max) {
  auto l = get_int(in, "limit").value_or(dflt);
  if (l < 1 || l > max)
    return invalid(fmt::format(
        "1 validation error detected: Value '{}' at 'limit' failed to satisfy constraint: Member "
        "must have value {} {}",
        l, l < 1 ? "greater than or equal to" : "less than or equal to", l < 1 ? 1 : max));
  return l;
}

// Tags as the map the service spells ({"k": "v"}), into and out of the
// shared table (kept by the group's ARN, without ":*").
json::array tag_rows(const json::object& map) {
  json::array a;
  for (const auto& [k, v] : map)
    if (v.is_string()) a.push_back(json::object{{"key", k}, {"value", v}});
  return a;
}

Result<json::object> tag_map(Db& db, std::string_view arn) {
  PIER_ASSIGN(auto rows, list_tags(db, arn, "key", "value"));
  json::object m;
  for (const auto& r : rows) m[get_string(r.as_object(), "key")] = get_string(r.as_object(), "value");
  return m;
}

Status add_tags(Db& db, std::string_view arn, const json::object& tags) {
  PIER_ASSIGN(auto have, tag_map(db, arn));
  size_t total = have.size();
  for (const auto& kv : tags)
    if (!have.contains(kv.key())) ++total;
  if (total > 50)
    return Error::invalid("TooManyTagsException", "A resource can have no more than 50 tags.");
  return put_tags(db, arn, tag_rows(tags), "key", "value");
}

Status delete_group_rows(Db& db, std::string_view account, std::string_view region, std::string_view group) {
  for (const char* sql : {"DELETE FROM logs_events WHERE account=? AND region=? AND grp=?",
                          "DELETE FROM logs_streams WHERE account=? AND region=? AND grp=?",
                          "DELETE FROM logs_groups WHERE account=? AND region=? AND name=?"}) {
    PIER_ASSIGN(auto* st, db.prepare(sql));
    st->args(account, region, group);
    PIER_TRY(st->run());
  }
  return drop_tags(db, group_arn(region, account, group));
}

struct Row {
  int64_t seq = 0, ts = 0, ingested = 0;
  std::string message, stream;
};

Row read_row(Stmt* st, bool with_stream) {
  Row r;
  r.seq = st->integer(0);
  r.ts = st->integer(1);
  r.ingested = st->integer(2);
  r.message = st->text(3);
  if (with_stream) r.stream = st->text(4);
  return r;
}

std::string filter_token(const EventKey& k) {
  return str::base64_encode(fmt::format("e:{}:{}", k.ts, k.seq));
}

std::optional<EventKey> parse_filter_token(std::string_view tok) {
  auto d = str::base64_decode(tok);
  if (!d || !d->starts_with("e:")) return std::nullopt;
  auto parts = str::split(std::string_view(*d).substr(2), ':');
  if (parts.size() != 2) return std::nullopt;
  try {
    return EventKey{std::stoll(std::string(parts[0])), std::stoll(std::string(parts[1]))};
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

// ---------------------------------------------------------------- public helpers

bool valid_retention(int64_t days) {
  return std::find(std::begin(kRetentions), std::end(kRetentions), days) != std::end(kRetentions);
}

bool valid_group_name(std::string_view s) {
  if (s.empty() || s.size() > 512) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != '/' && c != '#')
      return false;
  return true;
}

bool valid_stream_name(std::string_view s) {
  if (s.empty() || s.size() > 512) return false;
  return s.find_first_of(":*") == std::string_view::npos;
}

bool FilterPattern::matches(std::string_view m) const {
  for (const auto& t : all)
    if (m.find(t) == std::string_view::npos) return false;
  for (const auto& t : none)
    if (m.find(t) != std::string_view::npos) return false;
  if (any.empty()) return true;
  for (const auto& t : any)
    if (m.find(t) != std::string_view::npos) return true;
  return false;
}

Result<FilterPattern> parse_filter_pattern(std::string_view text) {
  FilterPattern p;
  std::string_view s = str::trim(text);
  if (s.starts_with("{") || s.starts_with("["))
    return invalid("pier: JSON and space-delimited filter patterns are not supported; use terms");
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    if (i >= s.size()) break;
    char kind = 0;
    if (s[i] == '-' || s[i] == '?') {
      kind = s[i];
      ++i;
    }
    std::string term;
    if (i < s.size() && s[i] == '"') {
      size_t end = s.find('"', i + 1);
      if (end == std::string_view::npos) return invalid("Invalid filter pattern: unbalanced quotes");
      term = std::string(s.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      size_t end = s.find(' ', i);
      if (end == std::string_view::npos) end = s.size();
      term = std::string(s.substr(i, end - i));
      i = end;
    }
    if (term.empty()) {
      if (kind) return invalid("Invalid filter pattern");
      continue;  // "" matches everything
    }
    (kind == '-' ? p.none : kind == '?' ? p.any : p.all).push_back(std::move(term));
  }
  return p;
}

std::string format_stream_token(const StreamToken& t) {
  // AWS's shape: "f/" or "b/" and 56 digits. Here: timestamp (20), seq + 1 (20), zeros (16).
  return fmt::format("{}/{:020d}{:020d}{:016d}", t.forward ? 'f' : 'b', t.key.ts, t.key.seq + 1, 0);
}

std::optional<StreamToken> parse_stream_token(std::string_view text) {
  if (text.size() != 58 || (text[0] != 'f' && text[0] != 'b') || text[1] != '/') return std::nullopt;
  for (char c : text.substr(2))
    if (c < '0' || c > '9') return std::nullopt;
  StreamToken t;
  t.forward = text[0] == 'f';
  try {
    t.key.ts = static_cast<int64_t>(std::stoull(std::string(text.substr(2, 20))));
    t.key.seq = static_cast<int64_t>(std::stoull(std::string(text.substr(22, 20)))) - 1;
  } catch (...) {
    return std::nullopt;
  }
  return t;
}

Rejected classify_batch(const std::vector<Event>& events, int64_t now_ms,
                        std::optional<int64_t> retention_days) {
  Rejected r;
  size_t n = events.size();
  int64_t old_limit = now_ms - 14 * kDayMs;
  int64_t new_limit = now_ms + 2 * kHourMs;
  size_t first = 0;
  for (size_t i = 0; i < n; ++i)
    if (events[i].timestamp_ms < old_limit) {
      r.too_old_end = static_cast<int64_t>(i);
      first = i + 1;
    }
  if (retention_days) {
    int64_t exp_limit = now_ms - *retention_days * kDayMs;
    for (size_t i = 0; i < n; ++i)
      if (events[i].timestamp_ms < exp_limit) {
        r.expired_end = static_cast<int64_t>(i);
        first = std::max(first, i + 1);
      }
  }
  size_t end = n;
  for (size_t i = n; i > first; --i)
    if (events[i - 1].timestamp_ms > new_limit) {
      r.too_new_start = static_cast<int64_t>(i - 1);
      end = i - 1;
    }
  r.first_kept = first;
  r.end_kept = std::max(first, end);
  return r;
}

Status append_events(store::Db& db, const std::string& account, const std::string& region,
                     const std::string& group, const std::string& stream,
                     const std::vector<Event>& events, bool create_group) {
  if (!valid_group_name(group)) return check_group_name(group);
  if (!valid_stream_name(stream)) return check_stream_name(stream);
  // The driver's events in time order (Docker's awslogs driver sorts its
  // batches too); equal timestamps keep their order.
  std::vector<Event> sorted = events;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Event& a, const Event& b) { return a.timestamp_ms < b.timestamp_ms; });
  PIER_ASSIGN(auto r, append_sorted(db, account, region, group, stream, sorted, wall_ms(), create_group, true));
  (void)r;
  return {};
}

Result<bool> group_exists(store::Db& db, const std::string& account, const std::string& region,
                          const std::string& group) {
  PIER_ASSIGN(auto g, load_group(db, account, region, group));
  return g.has_value();
}

// ---------------------------------------------------------------- the service

LogsService::LogsService(store::Store& store) : store_(store) {}

aws::ServiceDef LogsService::definition() {
  aws::ServiceDef def;
  def.model_id = "logs";

  // IAM: CloudWatch Logs authorizes group actions against
  // "…:log-group:NAME:log-stream:" and stream actions against
  // "…:log-group:NAME:log-stream:STREAM" (so "log-group:NAME:*" covers both).
  auto group_resource = [](const RequestContext& ctx, const json::object& in) {
    aws::Authz a;
    auto g = group_ref(ctx, in, false);
    std::string name = g.ok() && *g ? **g : "";
    a.resource = stream_arn(ctx.region, ctx.principal.account, name, "");
    return a;
  };
  auto stream_resource = [](const RequestContext& ctx, const json::object& in) {
    aws::Authz a;
    auto g = group_ref(ctx, in, false);
    std::string name = g.ok() && *g ? **g : "";
    a.resource = stream_arn(ctx.region, ctx.principal.account, name, get_string(in, "logStreamName"));
    return a;
  };
  auto arn_resource = [](const RequestContext&, const json::object& in) {
    aws::Authz a;
    a.resource = get_string(in, "resourceArn");
    return a;
  };
  auto add = [&](std::string name, aws::Handler h, aws::ResourceFn r) {
    aws::Action a;
    a.name = std::move(name);
    a.handler = std::move(h);
    a.resource = std::move(r);
    def.actions.push_back(std::move(a));
  };

  // ---- groups

  add("CreateLogGroup", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    PIER_TRY(check_group_name(name));
    Group g = new_group(name, now_ms(ctx));
    if (auto k = get_string(in, "kmsKeyId"); !k.empty()) g.doc["kmsKeyId"] = k;
    if (auto c = get_string(in, "logGroupClass"); !c.empty()) g.doc["logGroupClass"] = c;
    if (auto* d = in.if_contains("deletionProtectionEnabled"); d && d->is_bool())
      g.doc["deletionProtectionEnabled"] = d->as_bool();
    const json::object* tags = nullptr;
    if (auto* t = in.if_contains("tags"); t && t->is_object()) tags = &t->as_object();
    if (tags && tags->size() > 50)
      return Error::invalid("TooManyTagsException", "A resource can have no more than 50 tags.");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto existing, load_group(db, ctx.principal.account, ctx.region, name));
      if (existing)
        return Error::conflict("ResourceAlreadyExistsException", "The specified log group already exists");
      PIER_TRY(insert_group(db, ctx.principal.account, ctx.region, g));
      std::string arn = group_arn(ctx.region, ctx.principal.account, name);
      PIER_TRY(drop_tags(db, arn));
      if (tags) PIER_TRY(put_tags(db, arn, tag_rows(*tags), "key", "value"));
      return {};
    }));
    return json::object();
  }, group_resource);

  add("DeleteLogGroup", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto g, require_group(db, ctx.principal.account, ctx.region, name));
      if (auto* d = g.doc.if_contains("deletionProtectionEnabled"); d && d->is_bool() && d->as_bool())
        return Error::invalid("ValidationException",
                              "Log group has deletion protection enabled and cannot be deleted.");
      return delete_group_rows(db, ctx.principal.account, ctx.region, name);
    }));
    return json::object();
  }, group_resource);

  add("DescribeLogGroups", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string prefix = get_string(in, "logGroupNamePrefix");
    std::string pattern = get_string(in, "logGroupNamePattern");
    std::string klass = get_string(in, "logGroupClass");
    auto idents = get_strings(in, "logGroupIdentifiers");
    if (!prefix.empty() && !pattern.empty())
      return invalid("LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.");
    if (!idents.empty() && (!prefix.empty() || !pattern.empty()))
      return invalid("LogGroup identifiers and LogGroup name prefix or pattern are mutually exclusive parameters.");
    std::vector<std::string> wanted;
    for (const auto& id : idents) {
      json::object probe{{"logGroupIdentifier", id}};
      PIER_ASSIGN(auto g, group_ref(ctx, probe));
      if (g) wanted.push_back(*g);
    }
    PIER_ASSIGN(int64_t limit, read_limit(in, 50, 50));
    PIER_ASSIGN(size_t offset, read_offset(in));
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto* st, db.prepare(
          "SELECT name, created, doc FROM logs_groups WHERE account=? AND region=? "
          "AND substr(name, 1, length(?))=? ORDER BY name"));
      st->args(ctx.principal.account, ctx.region, prefix, prefix);
      std::vector<Group> groups;
      for (;;) {
        PIER_ASSIGN(bool row, st->step());
        if (!row) break;
        Group g;
        g.name = st->text(0);
        g.created = st->integer(1);
        PIER_ASSIGN(g.doc, parse_object(st->text(2)));
        if (!pattern.empty() && g.name.find(pattern) == std::string::npos) continue;
        if (!klass.empty() && get_string(g.doc, "logGroupClass", "STANDARD") != klass) continue;
        if (!idents.empty() && std::find(wanted.begin(), wanted.end(), g.name) == wanted.end()) continue;
        groups.push_back(std::move(g));
      }
      json::array out;
      for (size_t i = offset; i < groups.size() && static_cast<int64_t>(out.size()) < limit; ++i) {
        PIER_ASSIGN(auto v, view_group(db, ctx.principal.account, ctx.region, groups[i]));
        out.push_back(std::move(v));
      }
      json::object r;
      if (offset + out.size() < groups.size()) r["nextToken"] = page_token(offset + out.size());
      r["logGroups"] = std::move(out);
      return r;
    });
  }, [](const RequestContext& ctx, const json::object&) {
    aws::Authz a;
    a.resource = stream_arn(ctx.region, ctx.principal.account, "", "");
    return a;
  });

  add("PutRetentionPolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    int64_t days = get_int(in, "retentionInDays").value_or(0);
    if (!valid_retention(days)) {
      std::string set;
      for (int64_t d : kRetentions) set += (set.empty() ? "" : ", ") + std::to_string(d);
      return invalid(fmt::format(
          "1 validation error detected: Value '{}' at 'retentionInDays' failed to satisfy "
          "constraint: Member must satisfy enum value set: [{}]",
          days, set));
    }
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto g, require_group(db, ctx.principal.account, ctx.region, name));
      g.doc["retentionInDays"] = days;
      return update_group(db, ctx.principal.account, ctx.region, g);
    }));
    return json::object();
  }, group_resource);

  add("DeleteRetentionPolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto g, require_group(db, ctx.principal.account, ctx.region, name));
      g.doc.erase("retentionInDays");
      return update_group(db, ctx.principal.account, ctx.region, g);
    }));
    return json::object();
  }, group_resource);

  // ---- streams

  add("CreateLogStream", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string group = get_string(in, "logGroupName");
    std::string name = get_string(in, "logStreamName");
    PIER_TRY(check_stream_name(name));
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_group(db, ctx.principal.account, ctx.region, group));
      PIER_ASSIGN(auto existing, load_stream(db, ctx.principal.account, ctx.region, group, name));
      if (existing)
        return Error::conflict("ResourceAlreadyExistsException", "The specified log stream already exists");
      return insert_stream(db, ctx.principal.account, ctx.region, group, new_stream(name, now_ms(ctx)));
    }));
    return json::object();
  }, stream_resource);

  add("DeleteLogStream", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string group = get_string(in, "logGroupName");
    std::string name = get_string(in, "logStreamName");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_group(db, ctx.principal.account, ctx.region, group));
      PIER_ASSIGN(auto s, load_stream(db, ctx.principal.account, ctx.region, group, name));
      if (!s) return stream_not_found();
      for (const char* sql : {"DELETE FROM logs_events WHERE account=? AND region=? AND grp=? AND stream=?",
                              "DELETE FROM logs_streams WHERE account=? AND region=? AND grp=? AND name=?"}) {
        PIER_ASSIGN(auto* st, db.prepare(sql));
        st->args(ctx.principal.account, ctx.region, group, name);
        PIER_TRY(st->run());
      }
      return {};
    }));
    return json::object();
  }, stream_resource);

  add("DescribeLogStreams", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(auto group, group_ref(ctx, in));
    std::string prefix = get_string(in, "logStreamNamePrefix");
    std::string order = get_string(in, "orderBy", "LogStreamName");
    bool desc = get_bool(in, "descending");
    if (order != "LogStreamName" && order != "LastEventTime")
      return invalid(fmt::format(
          "1 validation error detected: Value '{}' at 'orderBy' failed to satisfy constraint: "
          "Member must satisfy enum value set: [LogStreamName, LastEventTime]",
          order));
    if (order == "LastEventTime" && !prefix.empty())
      return invalid("Cannot order by LastEventTime with a logStreamNamePrefix.");
    PIER_ASSIGN(int64_t limit, read_limit(in, 50, 50));
    PIER_ASSIGN(size_t offset, read_offset(in));
    if (!group) return group_not_found();
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_TRY(require_group(db, ctx.principal.account, ctx.region, *group));
      PIER_ASSIGN(auto* st, db.prepare(
          "SELECT name, created, doc FROM logs_streams WHERE account=? AND region=? AND grp=? "
          "AND substr(name, 1, length(?))=? ORDER BY name"));
      st->args(ctx.principal.account, ctx.region, *group, prefix, prefix);
      std::vector<Stream> streams;
      for (;;) {
        PIER_ASSIGN(bool row, st->step());
        if (!row) break;
        Stream s;
        s.name = st->text(0);
        s.created = st->integer(1);
        PIER_ASSIGN(s.doc, parse_object(st->text(2)));
        streams.push_back(std::move(s));
      }
      if (order == "LastEventTime") {
        // Streams without events sort first (as their last event time is 0).
        std::stable_sort(streams.begin(), streams.end(), [](const Stream& a, const Stream& b) {
          return get_int(a.doc, "lastEventTimestamp").value_or(0) <
                 get_int(b.doc, "lastEventTimestamp").value_or(0);
        });
      }
      if (desc) std::reverse(streams.begin(), streams.end());
      json::array out;
      for (size_t i = offset; i < streams.size() && static_cast<int64_t>(out.size()) < limit; ++i)
        out.push_back(view_stream(ctx.principal.account, ctx.region, *group, streams[i]));
      json::object r;
      if (offset + out.size() < streams.size()) r["nextToken"] = page_token(offset + out.size());
      r["logStreams"] = std::move(out);
      return r;
    });
  }, group_resource);

  // ---- events

  add("PutLogEvents", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string group = get_string(in, "logGroupName");
    std::string stream = get_string(in, "logStreamName");
    std::vector<Event> events;
    if (const auto* a = get_array(in, "logEvents"))
      for (const auto& e : *a) {
        if (!e.is_object()) continue;
        events.push_back({get_int(e.as_object(), "timestamp").value_or(0), get_string(e.as_object(), "message")});
      }
    if (events.empty())
      return invalid("1 validation error detected: Value '[]' at 'logEvents' failed to satisfy "
                     "constraint: Member must have length greater than or equal to 1");
    if (static_cast<int64_t>(events.size()) > kMaxBatchEvents)
      return invalid(fmt::format(
          "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member "
          "must have length less than or equal to {}", kMaxBatchEvents));
    int64_t bytes = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      if (i && events[i].timestamp_ms < events[i - 1].timestamp_ms)
        return invalid("Log events in a single PutLogEvents request must be in chronological order.");
      int64_t b = event_bytes(events[i].message);
      if (b > kMaxEventBytes)
        return invalid(fmt::format("Log event too large: {} bytes exceeds limit of {}", b, kMaxEventBytes));
      bytes += b;
    }
    if (bytes > kMaxBatchBytes)
      return invalid(fmt::format("Upload too large: {} bytes exceeds limit of {}", bytes, kMaxBatchBytes));
    if (events.back().timestamp_ms - events.front().timestamp_ms > kDayMs)
      return invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.");
    int64_t now = now_ms(ctx);
    PIER_ASSIGN(auto r, store_.write([&](Db& db) {
      return append_sorted(db, ctx.principal.account, ctx.region, group, stream, events, now, false, false);
    }));
    json::object out{{"nextSequenceToken", r.next_token}};
    json::object rej;
    if (r.rejected.too_new_start) rej["tooNewLogEventStartIndex"] = *r.rejected.too_new_start;
    if (r.rejected.too_old_end) rej["tooOldLogEventEndIndex"] = *r.rejected.too_old_end;
    if (r.rejected.expired_end) rej["expiredLogEventEndIndex"] = *r.rejected.expired_end;
    if (!rej.empty()) out["rejectedLogEventsInfo"] = std::move(rej);
    return out;
  }, stream_resource);

  add("GetLogEvents", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(auto group, group_ref(ctx, in));
    std::string stream = get_string(in, "logStreamName");
    PIER_ASSIGN(int64_t limit, read_limit(in, 10000, 10000));
    int64_t lo = get_int(in, "startTime").value_or(0);
    int64_t hi = get_int(in, "endTime").value_or(kTimeMax);
    bool from_head = get_bool(in, "startFromHead");
    // Where to read from: the token, else the window's head or tail.
    StreamToken at;
    if (auto tok = get_string(in, "nextToken"); !tok.empty()) {
      auto t = parse_stream_token(tok);
      if (!t) return bad_token();
      at = *t;
    } else if (from_head) {
      at = {true, {lo, 0}};
    } else {
      at = {false, {hi, 0}};
    }
    if (!group) return group_not_found();
    int64_t now = now_ms(ctx);
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto g, require_group(db, ctx.principal.account, ctx.region, *group));
      PIER_ASSIGN(auto s, load_stream(db, ctx.principal.account, ctx.region, *group, stream));
      if (!s) return stream_not_found();
      int64_t from = std::max(lo, retention_cutoff(g, now));
      PIER_ASSIGN(auto* st, db.prepare(at.forward
          ? "SELECT seq, ts, ingested, message FROM logs_events WHERE account=? AND region=? AND grp=? "
            "AND stream=? AND ts>=? AND ts<? AND (ts>? OR (ts=? AND seq>?)) ORDER BY ts, seq LIMIT ?"
          : "SELECT seq, ts, ingested, message FROM logs_events WHERE account=? AND region=? AND grp=? "
            "AND stream=? AND ts>=? AND ts<? AND (ts<? OR (ts=? AND seq<?)) ORDER BY ts DESC, seq DESC LIMIT ?"));
      st->args(ctx.principal.account, ctx.region, *group, stream, from, hi, at.key.ts, at.key.ts,
               at.key.seq, limit);
      std::vector<Row> rows;
      for (;;) {
        PIER_ASSIGN(bool row, st->step());
        if (!row) break;
        rows.push_back(read_row(st, false));
      }
      if (!at.forward) std::reverse(rows.begin(), rows.end());
      json::array events;
      for (const auto& r : rows)
        events.push_back(json::object{{"timestamp", r.ts}, {"message", r.message}, {"ingestionTime", r.ingested}});
      StreamToken fwd{true, {}}, back{false, {}};
      if (!rows.empty()) {
        fwd.key = {rows.back().ts, rows.back().seq};
        back.key = {rows.front().ts, rows.front().seq};
      } else if (at.forward) {
        // Nothing after the position: the same forward token (the end, as
        // AWS says it), and a backward one that includes the position.
        fwd.key = at.key;
        back.key = {at.key.ts, at.key.seq + 1};
      } else {
        // Nothing before the position: the same backward token, and a
        // forward one from the window's head.
        back.key = at.key;
        fwd.key = {lo, 0};
      }
      return json::object{{"events", std::move(events)},
                          {"nextForwardToken", format_stream_token(fwd)},
                          {"nextBackwardToken", format_stream_token(back)}};
    });
  }, stream_resource);

  add("FilterLogEvents", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    PIER_ASSIGN(auto group, group_ref(ctx, in));
    auto names = get_strings(in, "logStreamNames");
    std::string prefix = get_string(in, "logStreamNamePrefix");
    if (!names.empty() && !prefix.empty())
      return invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.");
    PIER_ASSIGN(int64_t limit, read_limit(in, 10000, 10000));
    PIER_ASSIGN(FilterPattern pattern, parse_filter_pattern(get_string(in, "filterPattern")));
    int64_t lo = get_int(in, "startTime").value_or(0);
    int64_t hi = get_int(in, "endTime").value_or(kTimeMax);
    EventKey after{-1, 0};
    if (auto tok = get_string(in, "nextToken"); !tok.empty()) {
      auto k = parse_filter_token(tok);
      if (!k) return bad_token();
      after = *k;
    }
    if (!group) return group_not_found();
    int64_t now = now_ms(ctx);
    json::array name_list;
    for (const auto& n : names) name_list.push_back(json::string(n));
    std::string names_json = json::serialize(name_list);
    int64_t use_names = names.empty() ? 0 : 1;
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto g, require_group(db, ctx.principal.account, ctx.region, *group));
      int64_t from = std::max(lo, retention_cutoff(g, now));
      // The streams searched.
      PIER_ASSIGN(auto* ss, db.prepare(
          "SELECT name FROM logs_streams WHERE account=? AND region=? AND grp=? "
          "AND (?=0 OR name IN (SELECT value FROM json_each(?))) AND substr(name, 1, length(?))=? ORDER BY name"));
      ss->args(ctx.principal.account, ctx.region, *group, use_names, names_json, prefix, prefix);
      PIER_ASSIGN(auto searched_names, ss->strings());
      json::array searched;
      for (const auto& n : searched_names)
        searched.push_back(json::object{{"logStreamName", n}, {"searchedCompletely", true}});

      PIER_ASSIGN(auto* st, db.prepare(
          "SELECT seq, ts, ingested, message, stream FROM logs_events WHERE account=? AND region=? AND grp=? "
          "AND ts>=? AND ts<=? AND (ts>? OR (ts=? AND seq>?)) "
          "AND (?=0 OR stream IN (SELECT value FROM json_each(?))) AND substr(stream, 1, length(?))=? "
          "ORDER BY ts, seq"));
      st->args(ctx.principal.account, ctx.region, *group, from, hi, after.ts, after.ts, after.seq,
               use_names, names_json, prefix, prefix);
      json::array events;
      EventKey last;
      bool more = false;
      for (;;) {
        PIER_ASSIGN(bool row, st->step());
        if (!row) break;
        Row r = read_row(st, true);
        if (!pattern.matches(r.message)) continue;
        if (static_cast<int64_t>(events.size()) == limit) {
          more = true;
          break;
        }
        last = {r.ts, r.seq};
        events.push_back(json::object{{"logStreamName", r.stream}, {"timestamp", r.ts},
                                      {"message", r.message}, {"ingestionTime", r.ingested},
                                      {"eventId", event_id(r.seq)}});
      }
      st->reset();
      json::object out{{"events", std::move(events)}, {"searchedLogStreams", std::move(searched)}};
      if (more) out["nextToken"] = filter_token(last);
      return out;
    });
  }, group_resource);

  // ---- tags: the old API by group name, and the new by ARN

  add("TagLogGroup", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    json::object tags;
    if (auto* t = in.if_contains("tags"); t && t->is_object()) tags = t->as_object();
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_group(db, ctx.principal.account, ctx.region, name));
      return add_tags(db, group_arn(ctx.region, ctx.principal.account, name), tags);
    }));
    return json::object();
  }, group_resource);

  add("UntagLogGroup", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    auto keys = get_strings(in, "tags");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_group(db, ctx.principal.account, ctx.region, name));
      return remove_tags(db, group_arn(ctx.region, ctx.principal.account, name), keys);
    }));
    return json::object();
  }, group_resource);

  add("ListTagsLogGroup", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "logGroupName");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_TRY(require_group(db, ctx.principal.account, ctx.region, name));
      PIER_ASSIGN(auto tags, tag_map(db, group_arn(ctx.region, ctx.principal.account, name)));
      return json::object{{"tags", std::move(tags)}};
    });
  }, group_resource);

  auto arn_group = [](Db& db, const RequestContext& ctx, const std::string& arn) -> Result<std::string> {
    PIER_ASSIGN(auto name, group_of_arn(ctx, arn));
    if (!name) return Error::not_found("ResourceNotFoundException", "The specified resource does not exist.");
    PIER_TRY(require_group(db, ctx.principal.account, ctx.region, *name));
    return group_arn(ctx.region, ctx.principal.account, *name);
  };

  add("TagResource", [this, arn_group](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "resourceArn");
    json::object tags;
    if (auto* t = in.if_contains("tags"); t && t->is_object()) tags = t->as_object();
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(std::string key, arn_group(db, ctx, arn));
      return add_tags(db, key, tags);
    }));
    return json::object();
  }, arn_resource);

  add("UntagResource", [this, arn_group](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "resourceArn");
    auto keys = get_strings(in, "tagKeys");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(std::string key, arn_group(db, ctx, arn));
      return remove_tags(db, key, keys);
    }));
    return json::object();
  }, arn_resource);

  add("ListTagsForResource", [this, arn_group](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "resourceArn");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(std::string key, arn_group(db, ctx, arn));
      PIER_ASSIGN(auto tags, tag_map(db, key));
      return json::object{{"tags", std::move(tags)}};
    });
  }, arn_resource);

  return def;
}

}  // namespace pier::svc::logs
