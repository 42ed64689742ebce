#include "exec/broker.h"

#include <boost/asio/as_tuple.hpp>
#include <fmt/format.h>

#include <deque>

#include "common/crypto.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time.h"
#include "exec/message.h"
#include "exec/payloads.h"

namespace pier::exec {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// One WebSocket as the broker sees it: a write queue drained by one writer
// coroutine on the socket's executor. send() may be called from any thread.
class Channel : public std::enable_shared_from_this<Channel> {
 public:
  explicit Channel(http::WsStream& ws) : ws_(ws), ex_(ws.get_executor()) {}

  void send(std::string frame) {
    asio::post(ex_, [self = shared_from_this(), f = std::move(frame)]() mutable {
      if (self->dead_) return;
      self->queue_.push_back(std::move(f));
      if (!self->writing_) asio::co_spawn(self->ex_, self->drain(), asio::detached);
    });
  }

  void close() {
    asio::post(ex_, [self = shared_from_this()] {
      if (self->dead_) return;
      boost::system::error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
    });
  }

  // Called by the channel's own coroutine as it ends: no write may touch the
  // stream after this returns.
  asio::awaitable<void> retire() {
    dead_ = true;
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    asio::steady_timer t(ex_);
    while (writing_) {
      t.expires_after(1ms);
      co_await t.async_wait(kTuple);
    }
  }

 private:
  asio::awaitable<void> drain() {
    writing_ = true;
    while (!queue_.empty() && !dead_) {
      std::string f = std::move(queue_.front());
      queue_.pop_front();
      ws_.binary(true);
      auto [ec, n] = co_await ws_.async_write(asio::buffer(f), kTuple);
      if (ec) break;
    }
    writing_ = false;
  }

  http::WsStream& ws_;
  asio::any_io_executor ex_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool dead_ = false;
};

namespace {

std::string ws_base(const std::string& public_url) {
  if (public_url.starts_with("https://")) return "wss://" + public_url.substr(8);
  if (public_url.starts_with("http://")) return "ws://" + public_url.substr(7);
  return public_url;
}

std::string frame(std::string_view type, PayloadType pt, std::string payload, uint64_t flags) {
  auto f = serialize(make_message(type, 0, flags, pt, std::move(payload)));
  return f.ok() ? std::move(f).value() : std::string();
}

std::string channel_closed_frame(const std::string& session_id, const std::string& destination,
                                 const std::string& output) {
  ChannelClosed c;
  c.message_id = Uuid::random().str();
  c.created_date = time::iso8601(time::epoch(std::chrono::system_clock::now()));
  c.destination_id = destination;
  c.session_id = session_id;
  c.output = output;
  return frame(message_type::kChannelClosed, PayloadType::kNone, to_json(c), kFlagSyn | kFlagFin);
}

void configure(http::WsStream& ws) {
  // A ping after 5 s of silence; gone after 10 s without an answer — so a
  // vanished agent is refused well within 20 s.
  websocket::stream_base::timeout t;
  t.handshake_timeout = 30s;
  t.idle_timeout = 10s;
  t.keep_alive_pings = true;
  ws.set_option(t);
  ws.read_message_max(64 * 1024 * 1024);
}

// The first (text) frame of a channel: its token.
asio::awaitable<Result<OpenChannel>> read_open(http::WsStream& ws) {
  beast::flat_buffer buf;
  auto [ec, n] = co_await ws.async_read(buf, kTuple);
  if (ec) co_return Error::invalid("ChannelClosed", ec.message());
  co_return parse_open_channel(beast::buffers_to_string(buf.data()));
}

}  // namespace

Broker::Broker(std::string public_url, std::chrono::milliseconds token_lifetime)
    : public_url_(std::move(public_url)), token_lifetime_(token_lifetime) {}
Broker::~Broker() = default;

std::string Broker::new_token(Token::Kind kind, const std::string& subject) {
  std::string t = str::base64_encode(crypto::random_bytes(32));
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  for (auto it = tokens_.begin(); it != tokens_.end();)
    it = it->second.expires < now ? tokens_.erase(it) : std::next(it);
  tokens_[t] = Token{kind, subject, now + token_lifetime_};
  return t;
}

std::optional<Broker::Token> Broker::consume(const std::string& token) {
  std::lock_guard lock(mu_);
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return std::nullopt;
  Token t = it->second;
  tokens_.erase(it);
  if (t.expires < std::chrono::steady_clock::now()) return std::nullopt;
  return t;
}

std::string Broker::control_channel_token(const std::string& target) {
  return new_token(Token::Kind::kControl, target);
}

Result<std::string> Broker::data_channel_token(const std::string& session_id) {
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.info.end != 0)
      return Error::invalid("BadRequest", "Session is already terminated");
  }
  return new_token(Token::Kind::kAgentData, session_id);
}

bool Broker::target_connected(const std::string& target) const {
  std::lock_guard lock(mu_);
  return controls_.count(target) > 0;
}

Result<Broker::Started> Broker::start_session(const std::string& target,
                                              const std::string& document_name,
                                              const json::object& document_content,
                                              const std::string& owner) {
  std::shared_ptr<Channel> control;
  Started st;
  st.session_id = "pier-" + ids::hex_id(17);
  {
    std::lock_guard lock(mu_);
    auto it = controls_.find(target);
    if (it == controls_.end())
      return Error::invalid("TargetNotConnected", fmt::format("{} is not connected.", target));
    control = it->second;
    Session s;
    s.info.session_id = st.session_id;
    s.info.target = target;
    s.info.document = document_name;
    s.info.owner = owner;
    s.info.start = time::epoch(std::chrono::system_clock::now());
    s.info.status = "Connecting";
    sessions_[st.session_id] = std::move(s);
  }
  st.token = new_token(Token::Kind::kClientData, st.session_id);
  st.stream_url = fmt::format("{}/v1/data-channel/{}?role=publish_subscribe", ws_base(public_url_),
                              st.session_id);
  // The agent's task (§6.6): the document and the session, double-encoded.
  json::object task{{"DocumentName", document_name},
                    {"DocumentContent", document_content},
                    {"SessionId", st.session_id},
                    {"Parameters", json::object()},
                    {"RunAsUser", ""},
                    {"SessionOwner", owner}};
  json::object mgs{{"Content", json::serialize(task)},
                   {"TaskId", st.session_id},
                   {"Topic", "aws.ssm.sessionManager"},
                   {"SchemaVersion", 1}};
  control->send(frame(message_type::kInteractiveShell, PayloadType::kNone, json::serialize(mgs), 0));
  return st;
}

Result<Broker::Started> Broker::resume_session(const std::string& session_id) {
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end())
      return Error::not_found("DoesNotExistException", fmt::format("Session {} does not exist.", session_id));
    // A session that ended moments ago is still resumable, so that a client
    // cut off just then learns how it ended (its channel_closed) instead of
    // hearing that the session timed out. Later, AWS's answer: no token.
    double ended = it->second.info.end;
    if (ended != 0 && time::epoch(std::chrono::system_clock::now()) - ended > 30)
      return Started{session_id, "", ""};
  }
  Started st;
  st.session_id = session_id;
  st.token = new_token(Token::Kind::kClientData, session_id);
  st.stream_url = fmt::format("{}/v1/data-channel/{}?role=publish_subscribe", ws_base(public_url_), session_id);
  return st;
}

void Broker::close_client(Session& s, const std::string& output) {
  if (s.client) s.client->send(channel_closed_frame(s.info.session_id, s.info.owner, output));
}

Status Broker::terminate_session(const std::string& session_id) {
  std::shared_ptr<Channel> control, agent;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end())
      return Error::not_found("DoesNotExistException", fmt::format("Session {} does not exist.", session_id));
    Session& s = it->second;
    if (s.info.end != 0) return {};
    s.info.end = time::epoch(std::chrono::system_clock::now());
    s.info.status = "Terminated";
    close_client(s, "");
    agent = s.agent;
    if (auto c = controls_.find(s.info.target); c != controls_.end()) control = c->second;
  }
  std::string cc = channel_closed_frame(session_id, "", "");
  if (agent) agent->send(cc);
  if (control) control->send(cc);
  return {};
}

void Broker::on_agent_task_complete(const std::string& session_id, const std::string& output,
                                    const std::string& status) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second.info.end != 0) return;
  Session& s = it->second;
  s.info.end = time::epoch(std::chrono::system_clock::now());
  s.info.status = status == "Success" ? "Terminated" : "Failed";
  close_client(s, status == "Success" ? "" : output);
}

std::vector<SessionInfo> Broker::sessions(bool active) const {
  std::lock_guard lock(mu_);
  std::vector<SessionInfo> out;
  for (const auto& [id, s] : sessions_)
    if ((s.info.end == 0) == active) out.push_back(s.info);
  return out;
}

asio::awaitable<void> Broker::run_control(http::WsStream& ws, std::string target) {
  configure(ws);
  auto open = co_await read_open(ws);
  if (!open.ok()) co_return;
  auto tok = consume(open->token_value);
  if (!tok || tok->kind != Token::Kind::kControl || tok->subject != target) {
    log::get("exec")->warn("control channel for {}: bad token", target);
    co_return;
  }
  auto self = std::make_shared<Channel>(ws);
  std::shared_ptr<Channel> previous;
  {
    std::lock_guard lock(mu_);
    auto& slot = controls_[target];
    previous = slot;
    slot = self;
  }
  if (previous) previous->close();
  log::get("exec")->info("control channel up: {}", target);
  for (;;) {
    beast::flat_buffer buf;
    auto [ec, n] = co_await ws.async_read(buf, kTuple);
    if (ec) break;
    auto m = parse(beast::buffers_to_string(buf.data()));
    if (!m.ok()) continue;
    if (m->type == message_type::kAgentTaskComplete) {
      boost::system::error_code jec;
      auto v = json::parse(m->payload, jec);
      if (jec || !v.is_object()) continue;
      auto& o = v.as_object();
      std::string task = o.contains("TaskId") && o["TaskId"].is_string() ? std::string(o["TaskId"].as_string()) : "";
      std::string status = o.contains("FinalTaskStatus") && o["FinalTaskStatus"].is_string() ? std::string(o["FinalTaskStatus"].as_string()) : "";
      std::string output = o.contains("Output") && o["Output"].is_string() ? std::string(o["Output"].as_string()) : "";
      json::object ack{{"SchemaVersion", 1}, {"MessageId", m->id.str()}, {"TaskId", task},
                       {"Topic", "agent_task_complete"}};
      self->send(frame(message_type::kAgentTaskAcknowledge, PayloadType::kNone, json::serialize(ack), 0));
      on_agent_task_complete(task, output, status);
    }
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = controls_.find(target); it != controls_.end() && it->second == self) controls_.erase(it);
  }
  log::get("exec")->info("control channel down: {}", target);
  co_await self->retire();
}

asio::awaitable<void> Broker::run_data(http::WsStream& ws, std::string session_id) {
  configure(ws);
  auto open = co_await read_open(ws);
  if (!open.ok()) co_return;
  auto tok = consume(open->token_value);
  if (!tok || tok->subject != session_id || tok->kind == Token::Kind::kControl) {
    log::get("exec")->warn("data channel for {}: bad token", session_id);
    co_return;
  }
  bool is_agent = tok->kind == Token::Kind::kAgentData;
  auto self = std::make_shared<Channel>(ws);
  std::shared_ptr<Channel> previous;
  std::string closed;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) co_return;
    if (it->second.info.end != 0) {
      if (!is_agent) closed = channel_closed_frame(session_id, it->second.info.owner, "");
    }
  }
  if (!closed.empty()) {
    // The session ended while this client was away: tell it so, and done.
    ws.binary(true);
    co_await ws.async_write(asio::buffer(closed), kTuple);
    co_return;
  }
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.info.end != 0) co_return;
    auto& slot = is_agent ? it->second.agent : it->second.client;
    previous = slot;
    slot = self;
    if (is_agent) it->second.info.status = "Connected";
    // The agent sends only while a client listens: resume it when one binds.
    if (!is_agent && it->second.agent)
      it->second.agent->send(frame(message_type::kStartPublication, PayloadType::kNone, "", kFlagSyn | kFlagFin));
    if (is_agent && it->second.client)
      self->send(frame(message_type::kStartPublication, PayloadType::kNone, "", kFlagSyn | kFlagFin));
  }
  if (previous) previous->close();
  for (;;) {
    beast::flat_buffer buf;
    auto [ec, n] = co_await ws.async_read(buf, kTuple);
    if (ec) break;
    std::string bytes = beast::buffers_to_string(buf.data());
    if (is_agent && bytes.size() >= kMinFrame) {
      // agent_session_state is for the service, not the client.
      std::string_view type(bytes.data() + 4, 32);
      if (str::trim(type) == message_type::kAgentSessionState) continue;
    }
    std::shared_ptr<Channel> peer;
    {
      std::lock_guard lock(mu_);
      auto it = sessions_.find(session_id);
      if (it == sessions_.end()) break;
      peer = is_agent ? it->second.client : it->second.agent;
      (is_agent ? it->second.info.bytes_out : it->second.info.bytes_in) += bytes.size();
    }
    // No peer yet: dropped; the sender's retransmission delivers it later.
    if (peer) peer->send(std::move(bytes));
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = sessions_.find(session_id); it != sessions_.end()) {
      auto& slot = is_agent ? it->second.agent : it->second.client;
      if (slot == self) {
        slot.reset();
        // No one to deliver to: pause the agent rather than let it resend into the void.
        if (!is_agent && it->second.agent && it->second.info.end == 0)
          it->second.agent->send(frame(message_type::kPausePublication, PayloadType::kNone, "", kFlagSyn | kFlagFin));
      }
    }
  }
  co_await self->retire();
}

http::Upgrade Broker::upgrade(http::Request& req, const http::Peer& peer, const Authenticate& auth) {
  namespace bhttp = beast::http;
  http::Upgrade up;
  std::string_view target = req.target();
  std::string_view path = target.substr(0, target.find('?'));
  auto refuse = [&](bhttp::status st, std::string msg) {
    up.refuse = http::make_response(req.version(), st, "text/plain", std::move(msg) + "\n");
    return up;
  };
  constexpr std::string_view kControl = "/v1/control-channel/";
  constexpr std::string_view kData = "/v1/data-channel/";
  if (path.starts_with(kControl)) {
    auto id = str::uri_decode(path.substr(kControl.size()));
    if (!id || id->empty()) return refuse(bhttp::status::bad_request, "no target");
    if (auto a = auth(req, peer, "ssmmessages:OpenControlChannel"); !a.ok())
      return refuse(bhttp::status::forbidden, a.error().message);
    up.run = [this, t = *id](http::WsStream& ws) { return run_control(ws, t); };
    return up;
  }
  if (path.starts_with(kData)) {
    auto id = str::uri_decode(path.substr(kData.size()));
    if (!id || id->empty()) return refuse(bhttp::status::bad_request, "no session");
    // The agent signs its upgrade; the client's token is its only credential.
    if (req.find(bhttp::field::authorization) != req.end())
      if (auto a = auth(req, peer, "ssmmessages:OpenDataChannel"); !a.ok())
        return refuse(bhttp::status::forbidden, a.error().message);
    up.run = [this, s = *id](http::WsStream& ws) { return run_data(ws, s); };
    return up;
  }
  return refuse(bhttp::status::not_found, "no such channel");
}

}  // namespace pier::exec
