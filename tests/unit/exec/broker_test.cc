#include "exec/broker.h"

#include <gtest/gtest.h>

#include <boost/beast/websocket.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "exec/message.h"
#include "exec/payloads.h"

namespace pier::exec {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A broker behind a real server on loopback; authentication always passes
// here (SigV4 and IAM on upgrades are covered by the e2e tests).
struct Rig {
  explicit Rig(std::chrono::milliseconds token_lifetime = 60s)
      : broker("http://127.0.0.1:0", token_lifetime),
        server({&ioc}, [](http::Request& req, const http::Peer&) {
          return http::make_response(req.version(), beast::http::status::not_found, "text/plain", "");
        }) {
    server.set_upgrade_handler([this](http::Request& req, const http::Peer& peer) {
      return broker.upgrade(req, peer, [](http::Request&, const http::Peer&, std::string_view) -> Status { return {}; });
    });
    port = server.listen("127.0.0.1", 0)->port();
    server.start();
    thread = std::thread([this] { ioc.run(); });
  }
  ~Rig() {
    server.shutdown();
    server.close_all();
    ioc.stop();
    thread.join();
  }
  asio::io_context ioc{1};
  Broker broker;
  http::Server server;
  uint16_t port = 0;
  std::thread thread;
};

struct Client {
  Client(uint16_t port, const std::string& path, const std::string& first_text) : ws(ioc) {
    ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ws.handshake("127.0.0.1", path);
    ws.text(true);
    ws.write(asio::buffer(first_text));
    ws.next_layer().set_option(asio::socket_base::receive_buffer_size(65536));
    timeval tv{3, 0};
    setsockopt(ws.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(const std::string& frame) {
    ws.binary(true);
    ws.write(asio::buffer(frame));
  }
  // The next binary message, or nullopt when the broker closed the channel.
  std::optional<Message> next() {
    beast::flat_buffer buf;
    boost::system::error_code ec;
    ws.read(buf, ec);
    if (ec) return std::nullopt;
    auto m = parse(beast::buffers_to_string(buf.data()));
    if (!m.ok()) return std::nullopt;
    return *m;
  }
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws;
};

std::string control_open(const std::string& token) {
  return to_json(AgentOpenControlChannel{"1.0", Uuid::random().str(), token, "3.3.1142.0", "linux"});
}
std::string client_open(const std::string& token) {
  return to_json(ClientOpenDataChannel{"1.0", Uuid::random().str(), token, Uuid::random().str(), std::string("1.2.677.0")});
}
std::string agent_open(const std::string& token) {
  return to_json(AgentOpenDataChannel{"1.0", Uuid::random().str(), token, "mi-1", ""});
}

void wait_connected(Broker& b, const std::string& target) {
  for (int i = 0; i < 200 && !b.target_connected(target); ++i) std::this_thread::sleep_for(5ms);
}

TEST(Broker, RelaysBothWaysAndRefusesReusedAndForeignTokens) {
  Rig rig;
  Client control(rig.port, "/v1/control-channel/mi-1", control_open(rig.broker.control_channel_token("mi-1")));
  wait_connected(rig.broker, "mi-1");
  auto s1 = rig.broker.start_session("mi-1", "AWS-StartNonInteractiveCommand", {}, "me");
  ASSERT_TRUE(s1.ok()) << s1.error().message;
  auto shell = control.next();
  ASSERT_TRUE(shell);
  EXPECT_EQ(shell->type, message_type::kInteractiveShell);
  EXPECT_NE(shell->payload.find(s1->session_id), std::string::npos);

  auto agent_token = rig.broker.data_channel_token(s1->session_id);
  ASSERT_TRUE(agent_token.ok());
  Client agent(rig.port, "/v1/data-channel/" + s1->session_id, agent_open(*agent_token));
  Client client(rig.port, "/v1/data-channel/" + s1->session_id, client_open(s1->token));

  // Until the client's channel is bound, the broker drops what the agent
  // sends (the agent would retransmit), so send until it arrives.
  std::string hi = *serialize(make_message(message_type::kOutputStreamData, 0, 1, PayloadType::kOutput, "hi"));
  std::atomic<bool> stop{false};
  std::thread pusher([&] {
    for (int i = 0; i < 60 && !stop; ++i) {
      agent.send(hi);
      std::this_thread::sleep_for(50ms);
    }
  });
  auto got = client.next();
  stop = true;
  pusher.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, "hi");
  client.send(*serialize(make_ack(*got)));
  // The agent hears start_publication when the client binds, then the ack.
  bool resumed = false;
  auto ack = agent.next();
  while (ack && ack->type == message_type::kStartPublication) {
    resumed = true;
    ack = agent.next();
  }
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->type, message_type::kAcknowledge);
  EXPECT_TRUE(resumed);

  // The client's token is spent once bound.
  Client reuse(rig.port, "/v1/data-channel/" + s1->session_id, client_open(s1->token));
  EXPECT_FALSE(reuse.next());
  // A token of another session does not open this one.
  auto s2 = rig.broker.start_session("mi-1", "AWS-StartNonInteractiveCommand", {}, "me");
  ASSERT_TRUE(s2.ok());
  Client foreign(rig.port, "/v1/data-channel/" + s1->session_id, client_open(s2->token));
  EXPECT_FALSE(foreign.next());
  // A control-channel token is no data-channel token.
  Client wrong_kind(rig.port, "/v1/data-channel/" + s2->session_id,
                    client_open(rig.broker.control_channel_token("mi-1")));
  EXPECT_FALSE(wrong_kind.next());
  // A token is spent by a bind, not by a refused attempt: s2's own still
  // opens s2 (the stock plugin retries its first open with the same token).
  Client retry(rig.port, "/v1/data-channel/" + s2->session_id, client_open(s2->token));
  ASSERT_TRUE(rig.broker.terminate_session(s2->session_id).ok());  // before or after it binds: closed either way
  auto s2_closed = retry.next();
  ASSERT_TRUE(s2_closed);
  EXPECT_EQ(s2_closed->type, message_type::kChannelClosed);

  // Terminating sends channel_closed to the client.
  ASSERT_TRUE(rig.broker.terminate_session(s1->session_id).ok());
  auto closed = client.next();
  while (closed && closed->type == message_type::kOutputStreamData) closed = client.next();  // repeats of "hi"
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->type, message_type::kChannelClosed);
}

// What the sink got, by session.
struct Recorder : TranscriptSink {
  std::mutex mu;
  std::map<std::string, std::string> text;
  std::set<std::string> closed;
  void append(const Transcript& t, const std::string& id, std::string bytes) override {
    std::lock_guard lock(mu);
    EXPECT_EQ(t.log_group, "/audit");
    text[id] += bytes;
  }
  void close(const Transcript&, const std::string& id) override {
    std::lock_guard lock(mu);
    closed.insert(id);
  }
};

// The transcript holds the agent's output once each and in order, whatever
// the agent resends or reorders; it ends with the session. The control
// channel's source is kept.
TEST(Broker, TranscriptsTakeOutputOnceInOrderAndControlSourcesAreKept) {
  Rig rig;
  Recorder rec;
  rig.broker.set_transcript_sink(&rec);
  Client control(rig.port, "/v1/control-channel/mi-3", control_open(rig.broker.control_channel_token("mi-3")));
  wait_connected(rig.broker, "mi-3");
  auto controls = rig.broker.controls();
  ASSERT_EQ(controls.size(), 1u);
  EXPECT_EQ(controls[0].target, "mi-3");
  EXPECT_EQ(controls[0].source, "127.0.0.1");
  EXPECT_GT(controls[0].since, 0);
  auto s = rig.broker.start_session("mi-3", "AWS-StartInteractiveCommand", {}, "me", "ecs-execute-command",
                                    Transcript{"000000000000", "us-east-1", "/audit"});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->session_id.starts_with("ecs-execute-command-")) << s->session_id;
  auto token = rig.broker.data_channel_token(s->session_id);
  ASSERT_TRUE(token.ok());
  Client agent(rig.port, "/v1/data-channel/" + s->session_id, agent_open(*token));
  auto out = [](int64_t seq, std::string text) {
    return *serialize(make_message(message_type::kOutputStreamData, seq, 0, PayloadType::kOutput, std::move(text)));
  };
  // 0, then 2 before 1, then 0 and 1 again (resends), an ack-less flag frame.
  for (auto f : {out(0, "a"), out(2, "c"), out(1, "b"), out(0, "a"), out(1, "b"), out(3, "d")}) agent.send(f);
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(rec.mu);
      if (rec.text[s->session_id].size() >= 4) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(rig.broker.terminate_session(s->session_id).ok());
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.text[s->session_id], "abcd");
  EXPECT_EQ(rec.closed.count(s->session_id), 1u);
}

// A channel whose peer answers pings stays however long no message comes; one
// whose peer is silent is closed after `silence` (Beast's own idle timeout
// would drop both: it does not count pongs).
TEST(Broker, ChannelsThatPongStayAndSilentOnesGo) {
  Rig rig;
  rig.broker.set_liveness({100ms, 400ms});
  Client live(rig.port, "/v1/control-channel/mi-live", control_open(rig.broker.control_channel_token("mi-live")));
  Client silent(rig.port, "/v1/control-channel/mi-silent",
                control_open(rig.broker.control_channel_token("mi-silent")));
  wait_connected(rig.broker, "mi-live");
  wait_connected(rig.broker, "mi-silent");
  ASSERT_TRUE(rig.broker.target_connected("mi-silent"));
  // Reading is what answers pings (Beast pongs from inside a read).
  std::thread reader([&] {
    while (live.next()) {
    }
  });
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(rig.broker.target_connected("mi-live"));
  EXPECT_FALSE(rig.broker.target_connected("mi-silent"));
  ::shutdown(live.ws.next_layer().native_handle(), SHUT_RDWR);
  reader.join();
}

TEST(Broker, UnusedTokensExpire) {
  Rig rig(100ms);
  std::string token = rig.broker.control_channel_token("mi-2");
  std::this_thread::sleep_for(200ms);
  Client control(rig.port, "/v1/control-channel/mi-2", control_open(token));
  EXPECT_FALSE(control.next());
  EXPECT_FALSE(rig.broker.target_connected("mi-2"));
}

TEST(Broker, ATargetWithoutControlChannelIsNotConnected) {
  Rig rig;
  auto s = rig.broker.start_session("mi-3", "", {}, "me");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "TargetNotConnected");
  EXPECT_EQ(s.error().message, "mi-3 is not connected.");
}

// The journal a restarted broker starts from, kept in memory.
struct MemJournal : SessionJournal {
  std::vector<SessionInfo> rows;
  void record(const SessionInfo& i) override {
    for (auto& r : rows)
      if (r.session_id == i.session_id) {
        r = i;
        return;
      }
    rows.push_back(i);
  }
  std::vector<SessionInfo> load() override { return rows; }
};

TEST(Broker, ARestartedBrokerResumesActiveSessionsAndReapsOrphans) {
  MemJournal j;
  SessionInfo active{"pier-active", "mi-1", "AWS-StartNonInteractiveCommand", "arn:aws:iam::000000000000:root",
                     100, 0, "Connected", 10, 20};
  SessionInfo ended{"pier-ended", "mi-1", "", "arn:aws:iam::000000000000:root", 50, 60, "Terminated", 1, 2};
  j.rows = {ended, active};
  Broker b("http://127.0.0.1:1", 60s, &j, 200ms);

  auto live = b.sessions(true);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].session_id, "pier-active");
  EXPECT_EQ(live[0].status, "Disconnected");  // until the agent binds again
  EXPECT_EQ(live[0].bytes_out, 20u);
  ASSERT_EQ(b.sessions(false).size(), 1u);

  // Both ends may come back: the client with ResumeSession, the agent with CreateDataChannel.
  auto r = b.resume_session("pier-active");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->token.empty());
  EXPECT_EQ(r->stream_url, "ws://127.0.0.1:1/v1/data-channel/pier-active?role=publish_subscribe");
  EXPECT_TRUE(b.data_channel_token("pier-active").ok());
  EXPECT_FALSE(b.data_channel_token("pier-ended").ok());

  // The agent never binds: the session ends as Failed, and the journal knows.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(b.sessions(true).empty());
  EXPECT_FALSE(b.data_channel_token("pier-active").ok());
  ASSERT_EQ(j.rows.size(), 2u);
  EXPECT_EQ(j.rows[1].status, "Failed");
  EXPECT_GT(j.rows[1].end, 0);
}

}  // namespace
}  // namespace pier::exec
