#include "exec/stream.h"

#include <gtest/gtest.h>

#include <random>

namespace pier::exec {
namespace {

using namespace std::chrono_literals;

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  SteadyClock fn() {
    return [this] { return now; };
  }
};

Message parsed(const std::string& frame) { return *parse(frame); }

TEST(StreamSender, NumbersFromZeroAndBuffersUntilAcked) {
  FakeClock c;
  StreamSender s(std::string(message_type::kInputStreamData), SenderPolicy::client(), c.fn());
  auto a = parsed(*s.send(PayloadType::kOutput, "a"));
  auto b = parsed(*s.send(PayloadType::kSize, R"({"cols":80,"rows":24})"));
  EXPECT_EQ(a.sequence, 0);
  EXPECT_EQ(b.sequence, 1);  // every payload type consumes a number
  EXPECT_EQ(a.flags, 0u);
  EXPECT_EQ(s.buffered(), 2u);
  EXPECT_TRUE(s.on_ack(1));
  EXPECT_FALSE(s.on_ack(1));
  EXPECT_EQ(s.buffered(), 1u);
}

TEST(StreamSender, AgentMarksItsFirstOutputSyn) {
  FakeClock c;
  StreamSender s(std::string(message_type::kOutputStreamData), SenderPolicy::agent(), c.fn());
  EXPECT_EQ(parsed(*s.send(PayloadType::kOutput, "x")).flags, kFlagSyn);
  EXPECT_EQ(parsed(*s.send(PayloadType::kOutput, "y")).flags, 0u);
}

TEST(StreamSender, ResendsOnlyTheOldestAfterTheTimeout) {
  FakeClock c;
  StreamSender s(std::string(message_type::kOutputStreamData), SenderPolicy::agent(), c.fn());
  std::string f0 = *s.send(PayloadType::kOutput, "0");
  (void)s.send(PayloadType::kOutput, "1");
  c.now += 100ms;
  EXPECT_TRUE(s.tick().empty());  // initial RTO is 200 ms
  c.now += 150ms;
  auto r = s.tick();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], f0);  // same bytes, same MessageId
  c.now += 100ms;
  EXPECT_TRUE(s.tick().empty());  // the agent waits a whole RTO again
}

TEST(StreamSender, ClientResendsEveryTickOnceLateAndGivesUp) {
  FakeClock c;
  auto p = SenderPolicy::client();
  p.max_resends = 3;
  StreamSender s(std::string(message_type::kInputStreamData), p, c.fn());
  (void)s.send(PayloadType::kOutput, "0");
  c.now += 250ms;
  EXPECT_EQ(s.tick().size(), 1u);
  c.now += 100ms;
  EXPECT_EQ(s.tick().size(), 1u);
  c.now += 100ms;
  EXPECT_EQ(s.tick().size(), 1u);
  c.now += 100ms;
  EXPECT_TRUE(s.tick().empty());
  EXPECT_TRUE(s.gave_up());
}

TEST(StreamSender, RtoFollowsTheMeasuredRoundTripAndIsCapped) {
  FakeClock c;
  StreamSender s(std::string(message_type::kOutputStreamData), SenderPolicy::agent(), c.fn());
  for (int i = 0; i < 50; ++i) {
    (void)s.send(PayloadType::kOutput, "x");
    c.now += 1ms;
    s.on_ack(i);
  }
  EXPECT_LT(s.rto(), 20ms);
  EXPECT_GE(s.rto(), 10ms);  // RTT + at least 10 ms
  for (int i = 50; i < 100; ++i) {
    (void)s.send(PayloadType::kOutput, "x");
    c.now += 5s;
    s.on_ack(i);
  }
  EXPECT_EQ(s.rto(), 1s);
}

TEST(StreamSender, FullBufferPolicies) {
  FakeClock c;
  auto cp = SenderPolicy::client();
  cp.capacity = 2;
  StreamSender client(std::string(message_type::kInputStreamData), cp, c.fn());
  for (int i = 0; i < 3; ++i) (void)client.send(PayloadType::kOutput, "x");
  EXPECT_EQ(client.buffered(), 2u);
  EXPECT_FALSE(client.on_ack(0));  // the oldest was dropped
  auto ap = SenderPolicy::agent();
  ap.capacity = 2;
  StreamSender agent(std::string(message_type::kOutputStreamData), ap, c.fn());
  for (int i = 0; i < 3; ++i) (void)agent.send(PayloadType::kOutput, "x");
  EXPECT_EQ(agent.buffered(), 2u);
  EXPECT_TRUE(agent.on_ack(0));
  EXPECT_FALSE(agent.on_ack(2));  // sent once, never buffered
  EXPECT_EQ(agent.next_sequence(), 3);
}

Message msg(int64_t seq, std::string payload = "p") {
  return make_message(message_type::kOutputStreamData, seq, 0, PayloadType::kOutput, std::move(payload));
}

TEST(StreamReceiver, DeliversInOrderAndDrainsTheBuffer) {
  StreamReceiver r(ReceiverPolicy::client());
  auto o2 = r.on_message(msg(2));
  EXPECT_TRUE(o2.ack);
  EXPECT_TRUE(o2.deliver.empty());
  auto o1 = r.on_message(msg(1));
  EXPECT_TRUE(o1.ack);
  auto o0 = r.on_message(msg(0));
  ASSERT_EQ(o0.deliver.size(), 3u);
  EXPECT_EQ(o0.deliver[0].sequence, 0);
  EXPECT_EQ(o0.deliver[2].sequence, 2);
  EXPECT_EQ(r.expected(), 3);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(StreamReceiver, DuplicatesAreReackedButNotDelivered) {
  StreamReceiver r(ReceiverPolicy::agent());
  (void)r.on_message(msg(0));
  auto dup = r.on_message(msg(0));
  EXPECT_TRUE(dup.ack);
  EXPECT_TRUE(dup.deliver.empty());
}

TEST(StreamReceiver, NotReadyMeansNotConsumed) {
  StreamReceiver r(ReceiverPolicy::agent());
  auto o = r.on_message(msg(0), /*ready=*/false);
  EXPECT_FALSE(o.ack);
  EXPECT_EQ(r.expected(), 0);
  EXPECT_EQ(r.on_message(msg(0)).deliver.size(), 1u);
}

TEST(StreamReceiver, FullBufferDropsWithoutAck) {
  auto p = ReceiverPolicy::client();
  p.capacity = 1;
  StreamReceiver r(p);
  EXPECT_TRUE(r.on_message(msg(5)).ack);
  EXPECT_FALSE(r.on_message(msg(6)).ack);
}

// A lossy, reordering, duplicating channel between a sender and a receiver:
// every payload arrives exactly once, in order.
TEST(StreamEndToEnd, ExactlyOnceInOrderOverAnUnreliableChannel) {
  FakeClock c;
  StreamSender s(std::string(message_type::kOutputStreamData), SenderPolicy::agent(), c.fn());
  StreamReceiver r(ReceiverPolicy::client());
  std::mt19937 rng(42);
  std::vector<std::string> wire, got;
  const int kCount = 2000;
  int sent = 0;
  for (int step = 0; step < 200000 && static_cast<int>(got.size()) < kCount; ++step) {
    if (sent < kCount && rng() % 3 == 0) wire.push_back(*s.send(PayloadType::kOutput, std::to_string(sent++)));
    if (!wire.empty() && rng() % 2 == 0) {
      size_t i = rng() % wire.size();  // reorder
      std::string f = wire[i];
      if (rng() % 4 != 0) wire.erase(wire.begin() + static_cast<long>(i));  // sometimes duplicate
      if (rng() % 5 != 0) {  // 20% loss
        auto out = r.on_message(*parse(f));
        for (auto& m : out.deliver) got.push_back(m.payload);
        if (out.ack && rng() % 5 != 0) s.on_ack(parse(f)->sequence);  // acks get lost too
      }
    }
    c.now += 10ms;
    if (step % 10 == 0)
      for (auto& f : s.tick()) wire.push_back(f);
  }
  ASSERT_EQ(static_cast<int>(got.size()), kCount);
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[static_cast<size_t>(i)], std::to_string(i));
}

}  // namespace
}  // namespace pier::exec
