#include "services/logs/logs.h"
#include "services/ssm/transcript.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace pier::svc::logs {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr int64_t kNow = 1700000000000;  // the requests' clock, ms
constexpr int64_t kDay = 86400000;

// A store in a temporary directory and the service's actions, called the
// way the dispatcher calls them (after the model's validation).
class LogsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pier-logs-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter_++));
    fs::remove_all(dir_);
    auto s = store::Store::open(dir_.string());
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    svc_ = std::make_unique<LogsService>(*store_);
    for (auto& a : svc_->definition().actions) actions_[a.name] = a.handler;
  }
  void TearDown() override {
    svc_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  Result<json::object> call(const std::string& action, json::object in) {
    aws::RequestContext ctx;
    ctx.region = "us-east-1";
    ctx.principal.account = "000000000000";
    ctx.now = static_cast<double>(now_) / 1000.0;
    auto it = actions_.find(action);
    if (it == actions_.end() || !it->second) return Error::internal("no action " + action);
    return it->second(ctx, in);
  }
  json::object ok(const std::string& action, json::object in) {
    auto r = call(action, std::move(in));
    EXPECT_TRUE(r.ok()) << action << ": " << (r.ok() ? "" : r.error().code + " " + r.error().message);
    return r.ok() ? *r : json::object();
  }
  std::string fails(const std::string& action, json::object in) {
    auto r = call(action, std::move(in));
    EXPECT_FALSE(r.ok()) << action << " succeeded";
    return r.ok() ? "" : r.error().code + ": " + r.error().message;
  }
  void group_and_stream(const std::string& g = "g", const std::string& s = "s") {
    ok("CreateLogGroup", {{"logGroupName", g}});
    ok("CreateLogStream", {{"logGroupName", g}, {"logStreamName", s}});
  }
  json::object put(const std::vector<std::pair<int64_t, std::string>>& evs, const std::string& s = "s") {
    json::array a;
    for (const auto& [ts, m] : evs) a.push_back(json::object{{"timestamp", ts}, {"message", m}});
    return ok("PutLogEvents", {{"logGroupName", "g"}, {"logStreamName", s}, {"logEvents", a}});
  }
  static std::vector<std::string> messages(const json::object& out) {
    std::vector<std::string> m;
    for (const auto& e : out.at("events").as_array()) m.emplace_back(e.as_object().at("message").as_string());
    return m;
  }

  int64_t now_ = kNow;
  std::unique_ptr<store::Store> store_;

 private:
  fs::path dir_;
  std::unique_ptr<LogsService> svc_;
  std::map<std::string, aws::Handler> actions_;
  static inline int counter_ = 0;
};

TEST(LogsNames, GroupAndStreamNameRules) {
  EXPECT_TRUE(valid_group_name("/ecs/web-app_1.x#2"));
  EXPECT_FALSE(valid_group_name(""));
  EXPECT_FALSE(valid_group_name("bad name"));
  EXPECT_FALSE(valid_group_name("a:b"));
  EXPECT_TRUE(valid_group_name(std::string(512, 'a')));
  EXPECT_FALSE(valid_group_name(std::string(513, 'a')));
  EXPECT_TRUE(valid_stream_name("web/app/0123 with spaces"));
  EXPECT_FALSE(valid_stream_name("a:b"));
  EXPECT_FALSE(valid_stream_name("a*"));
}

TEST(LogsRetention, OnlyTheListedPeriods) {
  for (int d : {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                2922, 3288, 3653})
    EXPECT_TRUE(valid_retention(d)) << d;
  for (int d : {0, 2, 4, 10, 366, 3654, -1}) EXPECT_FALSE(valid_retention(d)) << d;
}

TEST(LogsFilterPattern, TermsPhrasesExclusionsAndOptionals) {
  auto p = parse_filter_pattern("");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->matches("anything"));

  p = parse_filter_pattern("ERROR db");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->matches("ERROR: db down"));
  EXPECT_FALSE(p->matches("ERROR: cache down"));
  EXPECT_FALSE(p->matches("error: db down"));  // case-sensitive

  p = parse_filter_pattern("\"connection refused\"");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->matches("dial: connection refused (tcp)"));
  EXPECT_FALSE(p->matches("connection was refused"));

  p = parse_filter_pattern("ERROR -timeout");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->matches("ERROR disk"));
  EXPECT_FALSE(p->matches("ERROR timeout"));

  p = parse_filter_pattern("?ERROR ?WARN");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->matches("WARN low disk"));
  EXPECT_TRUE(p->matches("ERROR x"));
  EXPECT_FALSE(p->matches("INFO x"));

  p = parse_filter_pattern("app -\"health check\"");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->matches("app started"));
  EXPECT_FALSE(p->matches("app health check ok"));

  EXPECT_FALSE(parse_filter_pattern("\"unbalanced").ok());
  EXPECT_FALSE(parse_filter_pattern("{ $.level = \"ERROR\" }").ok());
}

TEST(LogsTokens, StreamTokensRoundTripAndLookLikeAws) {
  StreamToken t{true, {1700000000123, 42}};
  std::string s = format_stream_token(t);
  EXPECT_EQ(s.size(), 58u);
  EXPECT_EQ(s.substr(0, 2), "f/");
  auto back = parse_stream_token(s);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->forward);
  EXPECT_EQ(back->key, t.key);
  StreamToken b{false, {5, -1}};
  auto bb = parse_stream_token(format_stream_token(b));
  ASSERT_TRUE(bb);
  EXPECT_FALSE(bb->forward);
  EXPECT_EQ(bb->key, b.key);
  EXPECT_FALSE(parse_stream_token("f/123"));
  EXPECT_FALSE(parse_stream_token("x/" + std::string(56, '0')));
  EXPECT_FALSE(parse_stream_token("f/" + std::string(55, '0') + "a"));
}

TEST(LogsBatch, TooOldTooNewAndExpired) {
  std::vector<Event> ev = {{kNow - 20 * kDay, "a"}, {kNow - 15 * kDay, "b"}, {kNow - 3 * kDay, "c"},
                           {kNow, "d"},             {kNow + 3 * 3600000, "e"}};
  auto r = classify_batch(ev, kNow, std::nullopt);
  EXPECT_EQ(r.too_old_end, 1);
  EXPECT_EQ(r.too_new_start, 4);
  EXPECT_FALSE(r.expired_end);
  EXPECT_EQ(r.first_kept, 2u);
  EXPECT_EQ(r.end_kept, 4u);
  r = classify_batch(ev, kNow, 1);
  EXPECT_EQ(r.expired_end, 2);
  EXPECT_EQ(r.first_kept, 3u);
  EXPECT_EQ(r.end_kept, 4u);
  // All too new: nothing kept.
  r = classify_batch({{kNow + kDay, "x"}}, kNow, std::nullopt);
  EXPECT_EQ(r.too_new_start, 0);
  EXPECT_EQ(r.first_kept, r.end_kept);
}

// ECS Exec transcripts (services/ssm/transcript.h): whole lines while the
// session goes on, the rest at its end, a stream per session; a session still
// open when pierd stops is written as far as it got, and stopping never hangs.
TEST_F(LogsFixture, LogsTranscriptsAreLinesPerSessionAndStopCleanly) {
  ok("CreateLogGroup", {{"logGroupName", "/audit"}});
  exec::Transcript where{"000000000000", "us-east-1", "/audit"};
  {
    ssm::StoreTranscripts t(*store_);
    t.append(where, "ecs-execute-command-1", "$ echo $((6*7))\r\n4");
    t.append(where, "ecs-execute-command-1", "2\r\n$ exi");
    t.flush();
    auto mid = ok("GetLogEvents", {{"logGroupName", "/audit"}, {"logStreamName", "ecs-execute-command-1"},
                                   {"startFromHead", true}});
    EXPECT_EQ(messages(mid), (std::vector<std::string>{"$ echo $((6*7))", "42"}));
    t.append(where, "ecs-execute-command-1", "t\r\n");
    t.close(where, "ecs-execute-command-1");
    t.append(where, "ecs-execute-command-2", "left open");
    t.flush();
    auto done = ok("GetLogEvents", {{"logGroupName", "/audit"}, {"logStreamName", "ecs-execute-command-1"},
                                    {"startFromHead", true}});
    EXPECT_EQ(messages(done), (std::vector<std::string>{"$ echo $((6*7))", "42", "$ exit"}));
    t.append(where, "ecs-execute-command-3", "never closed\nhalf");
  }  // stops with sessions 2 and 3 open
  for (const char* s : {"ecs-execute-command-2", "ecs-execute-command-3"}) {
    auto got = ok("GetLogEvents", {{"logGroupName", "/audit"}, {"logStreamName", s}, {"startFromHead", true}});
    EXPECT_FALSE(messages(got).empty()) << s;
  }
}

TEST_F(LogsFixture, LogsGroupsCreateDescribeDelete) {
  ok("CreateLogGroup", {{"logGroupName", "/ecs/web"}, {"kmsKeyId", "arn:aws:kms:us-east-1:000000000000:key/k"},
                        {"tags", json::object{{"team", "a"}}}});
  ok("CreateLogGroup", {{"logGroupName", "/ecs/api"}});
  ok("CreateLogGroup", {{"logGroupName", "other"}});
  EXPECT_EQ(fails("CreateLogGroup", {{"logGroupName", "/ecs/web"}}),
            "ResourceAlreadyExistsException: The specified log group already exists");
  EXPECT_EQ(fails("CreateLogGroup", {{"logGroupName", "bad name"}}).substr(0, 26), "InvalidParameterException:");

  auto out = ok("DescribeLogGroups", {{"logGroupNamePrefix", "/ecs/"}});
  auto& groups = out.at("logGroups").as_array();
  ASSERT_EQ(groups.size(), 2u);
  const auto& api = groups[0].as_object();
  EXPECT_EQ(api.at("logGroupName").as_string(), "/ecs/api");
  EXPECT_EQ(api.at("arn").as_string(), "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/api:*");
  EXPECT_EQ(api.at("logGroupArn").as_string(), "arn:aws:logs:us-east-1:000000000000:log-group:/ecs/api");
  EXPECT_EQ(api.at("creationTime").as_int64(), kNow);
  EXPECT_EQ(api.at("metricFilterCount").as_int64(), 0);
  EXPECT_EQ(api.at("storedBytes").as_int64(), 0);
  EXPECT_EQ(api.at("logGroupClass").as_string(), "STANDARD");
  EXPECT_EQ(groups[1].as_object().at("kmsKeyId").as_string(), "arn:aws:kms:us-east-1:000000000000:key/k");

  out = ok("DescribeLogGroups", {{"logGroupNamePattern", "web"}});
  ASSERT_EQ(out.at("logGroups").as_array().size(), 1u);

  auto tags = ok("ListTagsLogGroup", {{"logGroupName", "/ecs/web"}});
  EXPECT_EQ(json::serialize(tags.at("tags")), R"({"team":"a"})");

  ok("DeleteLogGroup", {{"logGroupName", "/ecs/web"}});
  EXPECT_EQ(fails("DeleteLogGroup", {{"logGroupName", "/ecs/web"}}),
            "ResourceNotFoundException: The specified log group does not exist.");
  // Its tags went with it.
  ok("CreateLogGroup", {{"logGroupName", "/ecs/web"}});
  tags = ok("ListTagsLogGroup", {{"logGroupName", "/ecs/web"}});
  EXPECT_TRUE(tags.at("tags").as_object().empty());
}

TEST_F(LogsFixture, LogsDescribeLogGroupsPages) {
  for (int i = 0; i < 5; ++i) ok("CreateLogGroup", {{"logGroupName", "g" + std::to_string(i)}});
  std::vector<std::string> seen;
  std::string token;
  for (int pages = 0; pages < 10; ++pages) {
    json::object in{{"limit", 2}};
    if (!token.empty()) in["nextToken"] = token;
    auto out = ok("DescribeLogGroups", in);
    for (const auto& g : out.at("logGroups").as_array())
      seen.emplace_back(g.as_object().at("logGroupName").as_string());
    if (!out.contains("nextToken")) break;
    token = std::string(out.at("nextToken").as_string());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"g0", "g1", "g2", "g3", "g4"}));
  EXPECT_EQ(fails("DescribeLogGroups", {{"nextToken", "junk"}}).substr(0, 26), "InvalidParameterException:");
  EXPECT_EQ(fails("DescribeLogGroups", {{"limit", 51}}).substr(0, 26), "InvalidParameterException:");
}

TEST_F(LogsFixture, LogsPutLogEventsOrderingRules) {
  group_and_stream();
  EXPECT_EQ(fails("PutLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"},
                                   {"logEvents", json::array{json::object{{"timestamp", kNow}, {"message", "b"}},
                                                             json::object{{"timestamp", kNow - 1}, {"message", "a"}}}}}),
            "InvalidParameterException: Log events in a single PutLogEvents request must be in chronological order.");
  // The refused batch stored nothing.
  auto got = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}});
  EXPECT_TRUE(got.at("events").as_array().empty());
  auto s = ok("DescribeLogStreams", {{"logGroupName", "g"}}).at("logStreams").as_array()[0].as_object();
  EXPECT_FALSE(s.contains("lastEventTimestamp"));

  // Equal timestamps are in order.
  auto out = put({{kNow - 10, "a"}, {kNow - 10, "b"}, {kNow, "c"}});
  EXPECT_TRUE(out.contains("nextSequenceToken"));
  EXPECT_FALSE(out.contains("rejectedLogEventsInfo"));

  // Too old and too new are rejected by index, not by an error.
  out = put({{kNow - 14 * kDay - 3600000, "old"}, {kNow - 14 * kDay + 3600000, "oldish"}});
  ASSERT_TRUE(out.contains("rejectedLogEventsInfo"));
  EXPECT_EQ(out.at("rejectedLogEventsInfo").as_object().at("tooOldLogEventEndIndex").as_int64(), 0);
  EXPECT_FALSE(out.at("rejectedLogEventsInfo").as_object().contains("tooNewLogEventStartIndex"));
  out = put({{kNow + 1, "ok"}, {kNow + 3 * 3600000, "new"}});
  ASSERT_TRUE(out.contains("rejectedLogEventsInfo"));
  EXPECT_EQ(out.at("rejectedLogEventsInfo").as_object().at("tooNewLogEventStartIndex").as_int64(), 1);
  got = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"startFromHead", true}});
  EXPECT_EQ(messages(got), (std::vector<std::string>{"oldish", "a", "b", "c", "ok"}));

  // The stream's times and bytes follow.
  s = ok("DescribeLogStreams", {{"logGroupName", "g"}}).at("logStreams").as_array()[0].as_object();
  EXPECT_EQ(s.at("firstEventTimestamp").as_int64(), kNow - 14 * kDay + 3600000);
  EXPECT_EQ(s.at("lastEventTimestamp").as_int64(), kNow + 1);
  EXPECT_EQ(s.at("lastIngestionTime").as_int64(), kNow);
  EXPECT_EQ(s.at("storedBytes").as_int64(), 11);
  EXPECT_EQ(s.at("arn").as_string(), "arn:aws:logs:us-east-1:000000000000:log-group:g:log-stream:s");
  EXPECT_EQ(s.at("uploadSequenceToken").as_string(), out.at("nextSequenceToken").as_string());
  auto g = ok("DescribeLogGroups", {}).at("logGroups").as_array()[0].as_object();
  EXPECT_EQ(g.at("storedBytes").as_int64(), 11);

  // A batch may not span more than a day, nor name a missing stream or group.
  EXPECT_EQ(fails("PutLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"},
                                   {"logEvents", json::array{json::object{{"timestamp", kNow - 2 * kDay}, {"message", "a"}},
                                                             json::object{{"timestamp", kNow}, {"message", "b"}}}}})
                .substr(0, 26),
            "InvalidParameterException:");
  EXPECT_EQ(fails("PutLogEvents", {{"logGroupName", "g"}, {"logStreamName", "nope"},
                                   {"logEvents", json::array{json::object{{"timestamp", kNow}, {"message", "a"}}}}}),
            "ResourceNotFoundException: The specified log stream does not exist.");
  EXPECT_EQ(fails("PutLogEvents", {{"logGroupName", "nope"}, {"logStreamName", "s"},
                                   {"logEvents", json::array{json::object{{"timestamp", kNow}, {"message", "a"}}}}}),
            "ResourceNotFoundException: The specified log group does not exist.");
}

TEST_F(LogsFixture, LogsGetLogEventsTokensPageAndRepeatAtTheEnd) {
  group_and_stream();
  std::vector<std::pair<int64_t, std::string>> evs;
  for (int i = 0; i < 7; ++i) evs.push_back({kNow - 100 + i, "m" + std::to_string(i)});
  put(evs);

  // From the head, 3 at a time, until the forward token repeats.
  std::vector<std::string> seen;
  std::string token;
  int calls = 0;
  for (; calls < 10; ++calls) {
    json::object in{{"logGroupName", "g"}, {"logStreamName", "s"}, {"limit", 3}, {"startFromHead", true}};
    if (!token.empty()) in["nextToken"] = token;
    auto out = ok("GetLogEvents", in);
    for (auto& m : messages(out)) seen.push_back(m);
    std::string next(out.at("nextForwardToken").as_string());
    EXPECT_EQ(next.substr(0, 2), "f/");
    EXPECT_EQ(std::string(out.at("nextBackwardToken").as_string()).substr(0, 2), "b/");
    if (next == token) break;
    token = next;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5", "m6"}));
  EXPECT_EQ(calls, 3);  // 3 + 3 + 1, then an empty page with the same token

  // New events show up behind the last forward token.
  put({{kNow, "m7"}});
  auto out = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", token}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"m7"}));

  // From the tail (the default), then backward until the token repeats.
  out = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"limit", 3}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"m5", "m6", "m7"}));
  std::vector<std::string> back = messages(out);
  token = std::string(out.at("nextBackwardToken").as_string());
  for (int i = 0; i < 10; ++i) {
    out = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"limit", 3}, {"nextToken", token}});
    auto m = messages(out);
    back.insert(back.begin(), m.begin(), m.end());
    std::string next(out.at("nextBackwardToken").as_string());
    if (next == token) break;
    token = next;
  }
  EXPECT_EQ(back.size(), 8u);
  EXPECT_EQ(back.front(), "m0");

  // The time window: [startTime, endTime).
  out = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"startTime", kNow - 98},
                            {"endTime", kNow - 96}, {"startFromHead", true}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"m2", "m3"}));

  EXPECT_EQ(fails("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", "f/zz"}}),
            "InvalidParameterException: The specified nextToken is invalid.");
  EXPECT_EQ(fails("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "x"}}),
            "ResourceNotFoundException: The specified log stream does not exist.");
}

TEST_F(LogsFixture, LogsGetLogEventsOnAnEmptyStreamStops) {
  group_and_stream();
  auto out = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}});
  EXPECT_TRUE(out.at("events").as_array().empty());
  std::string f(out.at("nextForwardToken").as_string());
  auto again = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", f}});
  EXPECT_EQ(std::string(again.at("nextForwardToken").as_string()), f);
  // And events written later are found from that token.
  put({{kNow, "late"}});
  again = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"nextToken", f}});
  EXPECT_EQ(messages(again), (std::vector<std::string>{"late"}));
}

TEST_F(LogsFixture, LogsFilterLogEventsPatternsStreamsAndPages) {
  group_and_stream("g", "web/1");
  ok("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "web/2"}});
  ok("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "db"}});
  put({{kNow - 50, "ERROR connection refused"}, {kNow - 40, "INFO ok"}}, "web/1");
  put({{kNow - 45, "ERROR timeout"}, {kNow - 30, "WARN slow"}}, "web/2");
  put({{kNow - 44, "ERROR disk full"}}, "db");

  auto out = ok("FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "ERROR"}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"ERROR connection refused", "ERROR timeout", "ERROR disk full"}));
  const auto& e0 = out.at("events").as_array()[0].as_object();
  EXPECT_EQ(e0.at("logStreamName").as_string(), "web/1");
  EXPECT_EQ(e0.at("timestamp").as_int64(), kNow - 50);
  EXPECT_EQ(e0.at("ingestionTime").as_int64(), kNow);
  EXPECT_EQ(e0.at("eventId").as_string().size(), 56u);
  EXPECT_EQ(out.at("searchedLogStreams").as_array().size(), 3u);

  out = ok("FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "\"connection refused\""}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"ERROR connection refused"}));
  out = ok("FilterLogEvents", {{"logGroupName", "g"}, {"filterPattern", "ERROR -timeout"},
                               {"logStreamNamePrefix", "web/"}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"ERROR connection refused"}));
  out = ok("FilterLogEvents", {{"logGroupIdentifier", "arn:aws:logs:us-east-1:000000000000:log-group:g:*"},
                               {"logStreamNames", json::array{"web/2", "db"}}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"ERROR timeout", "ERROR disk full", "WARN slow"}));
  out = ok("FilterLogEvents", {{"logGroupName", "g"}, {"startTime", kNow - 45}, {"endTime", kNow - 40}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"ERROR timeout", "ERROR disk full", "INFO ok"}));

  // Pages of 2, until there is no nextToken.
  std::vector<std::string> seen;
  std::string token;
  for (int i = 0; i < 10; ++i) {
    json::object in{{"logGroupName", "g"}, {"limit", 2}};
    if (!token.empty()) in["nextToken"] = token;
    out = ok("FilterLogEvents", in);
    for (auto& m : messages(out)) seen.push_back(m);
    if (!out.contains("nextToken")) break;
    token = std::string(out.at("nextToken").as_string());
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen.back(), "WARN slow");

  EXPECT_EQ(fails("FilterLogEvents", {{"logGroupName", "nope"}}),
            "ResourceNotFoundException: The specified log group does not exist.");
  EXPECT_EQ(fails("FilterLogEvents", {{"logGroupName", "g"}, {"logGroupIdentifier", "g"}}).substr(0, 26),
            "InvalidParameterException:");
}

TEST_F(LogsFixture, LogsRetentionHidesOldEvents) {
  group_and_stream();
  put({{kNow - 5 * kDay, "five days"}});
  put({{kNow - 2 * kDay, "two days"}});
  put({{kNow, "now"}});
  EXPECT_EQ(fails("PutRetentionPolicy", {{"logGroupName", "g"}, {"retentionInDays", 2}}).substr(0, 26),
            "InvalidParameterException:");
  EXPECT_EQ(fails("PutRetentionPolicy", {{"logGroupName", "nope"}, {"retentionInDays", 3}}),
            "ResourceNotFoundException: The specified log group does not exist.");
  ok("PutRetentionPolicy", {{"logGroupName", "g"}, {"retentionInDays", 3}});
  auto g = ok("DescribeLogGroups", {}).at("logGroups").as_array()[0].as_object();
  EXPECT_EQ(g.at("retentionInDays").as_int64(), 3);
  auto out = ok("GetLogEvents", {{"logGroupName", "g"}, {"logStreamName", "s"}, {"startFromHead", true}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"two days", "now"}));
  out = ok("FilterLogEvents", {{"logGroupName", "g"}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"two days", "now"}));
  // Time passes: "two days" expires too.
  now_ += 2 * kDay;
  out = ok("FilterLogEvents", {{"logGroupName", "g"}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"now"}));
  // Events already past the retention are rejected as expired.
  auto put_out = put({{now_ - 4 * kDay, "late"}, {now_ - 4 * kDay + 1, "late too"}});
  EXPECT_EQ(put_out.at("rejectedLogEventsInfo").as_object().at("expiredLogEventEndIndex").as_int64(), 1);
  put({{now_, "fresh"}});
  ok("DeleteRetentionPolicy", {{"logGroupName", "g"}});
  g = ok("DescribeLogGroups", {}).at("logGroups").as_array()[0].as_object();
  EXPECT_FALSE(g.contains("retentionInDays"));
  out = ok("FilterLogEvents", {{"logGroupName", "g"}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"five days", "two days", "now", "fresh"}));
}

TEST_F(LogsFixture, LogsDescribeLogStreamsOrderAndPages) {
  group_and_stream("g", "b");
  ok("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "a"}});
  ok("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "c"}});
  EXPECT_EQ(fails("CreateLogStream", {{"logGroupName", "g"}, {"logStreamName", "a"}}),
            "ResourceAlreadyExistsException: The specified log stream already exists");
  EXPECT_EQ(fails("CreateLogStream", {{"logGroupName", "nope"}, {"logStreamName", "a"}}),
            "ResourceNotFoundException: The specified log group does not exist.");
  put({{kNow - 10, "x"}}, "c");
  put({{kNow - 5, "y"}}, "a");
  auto names = [](const json::object& out) {
    std::vector<std::string> n;
    for (const auto& s : out.at("logStreams").as_array()) n.emplace_back(s.as_object().at("logStreamName").as_string());
    return n;
  };
  EXPECT_EQ(names(ok("DescribeLogStreams", {{"logGroupName", "g"}})), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(names(ok("DescribeLogStreams", {{"logGroupName", "g"}, {"orderBy", "LastEventTime"}, {"descending", true}})),
            (std::vector<std::string>{"a", "c", "b"}));
  auto page = ok("DescribeLogStreams", {{"logGroupName", "g"}, {"limit", 2}});
  EXPECT_EQ(names(page), (std::vector<std::string>{"a", "b"}));
  page = ok("DescribeLogStreams", {{"logGroupName", "g"}, {"limit", 2}, {"nextToken", page.at("nextToken")}});
  EXPECT_EQ(names(page), (std::vector<std::string>{"c"}));
  EXPECT_FALSE(page.contains("nextToken"));
  EXPECT_EQ(fails("DescribeLogStreams", {{"logGroupName", "g"}, {"orderBy", "LastEventTime"}, {"logStreamNamePrefix", "a"}}),
            "InvalidParameterException: Cannot order by LastEventTime with a logStreamNamePrefix.");
  ok("DeleteLogStream", {{"logGroupName", "g"}, {"logStreamName", "a"}});
  EXPECT_EQ(names(ok("DescribeLogStreams", {{"logGroupName", "g"}, {"logStreamNamePrefix", "a"}})),
            std::vector<std::string>{});
  EXPECT_EQ(fails("DeleteLogStream", {{"logGroupName", "g"}, {"logStreamName", "a"}}),
            "ResourceNotFoundException: The specified log stream does not exist.");
}

TEST_F(LogsFixture, LogsTagsByNameAndByArn) {
  ok("CreateLogGroup", {{"logGroupName", "g"}});
  std::string arn = "arn:aws:logs:us-east-1:000000000000:log-group:g";
  ok("TagResource", {{"resourceArn", arn}, {"tags", json::object{{"a", "1"}, {"b", "2"}}}});
  ok("TagLogGroup", {{"logGroupName", "g"}, {"tags", json::object{{"c", "3"}}}});
  ok("UntagResource", {{"resourceArn", arn + ":*"}, {"tagKeys", json::array{"a"}}});
  ok("UntagLogGroup", {{"logGroupName", "g"}, {"tags", json::array{"c"}}});
  EXPECT_EQ(json::serialize(ok("ListTagsForResource", {{"resourceArn", arn}}).at("tags")), R"({"b":"2"})");
  EXPECT_EQ(json::serialize(ok("ListTagsLogGroup", {{"logGroupName", "g"}}).at("tags")), R"({"b":"2"})");
  EXPECT_EQ(fails("TagResource", {{"resourceArn", "arn:aws:logs:us-east-1:000000000000:log-group:nope"},
                                  {"tags", json::object{{"a", "1"}}}}),
            "ResourceNotFoundException: The specified log group does not exist.");
  json::object many;
  for (int i = 0; i < 50; ++i) many["k" + std::to_string(i)] = "v";
  EXPECT_EQ(fails("TagResource", {{"resourceArn", arn}, {"tags", many}}).substr(0, 21), "TooManyTagsException:");
}

TEST_F(LogsFixture, LogsAppendEventsMakesTheStreamAndKeepsItsTimes) {
  auto w = [&](const std::string& g, bool create, std::vector<Event> ev) {
    return store_->write([&](store::Db& db) {
      return append_events(db, "000000000000", "us-east-1", g, "task/1", ev, create);
    });
  };
  auto st = w("drv", false, {{kNow, "x"}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "ResourceNotFoundException");
  EXPECT_EQ(st.error().message, "The specified log group does not exist.");

  int64_t t = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count();
  now_ = t;
  st = w("drv", true, {{t - 2000, "one"}, {t - 3000, "zero"}, {t - 1000, "two"}});
  ASSERT_TRUE(st.ok()) << st.error().message;
  auto ex = store_->read([&](store::Db& db) { return group_exists(db, "000000000000", "us-east-1", "drv"); });
  ASSERT_TRUE(ex.ok());
  EXPECT_TRUE(*ex);
  auto s = ok("DescribeLogStreams", {{"logGroupName", "drv"}}).at("logStreams").as_array()[0].as_object();
  EXPECT_EQ(s.at("logStreamName").as_string(), "task/1");
  EXPECT_EQ(s.at("firstEventTimestamp").as_int64(), t - 3000);
  EXPECT_EQ(s.at("lastEventTimestamp").as_int64(), t - 1000);
  EXPECT_GE(s.at("lastIngestionTime").as_int64(), t);
  EXPECT_EQ(s.at("storedBytes").as_int64(), 10);
  auto out = ok("GetLogEvents", {{"logGroupName", "drv"}, {"logStreamName", "task/1"}, {"startFromHead", true}});
  EXPECT_EQ(messages(out), (std::vector<std::string>{"zero", "one", "two"}));
  st = w("drv", false, {{t, "three"}});
  ASSERT_TRUE(st.ok());
  s = ok("DescribeLogStreams", {{"logGroupName", "drv"}}).at("logStreams").as_array()[0].as_object();
  EXPECT_EQ(s.at("firstEventTimestamp").as_int64(), t - 3000);
  EXPECT_EQ(s.at("lastEventTimestamp").as_int64(), t);
}

}  // namespace
}  // namespace pier::svc::logs
