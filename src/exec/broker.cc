#include "exec/broker.h"

#include <boost/asio/as_tuple.hpp>
#include <fmt/format.h>

#include <atomic>
#include <deque>
#include <optional>

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
  Channel(http::WsStream& ws, Liveness liveness)
      : ws_(ws), ex_(ws.get_executor()), liveness_(liveness) { heard(); }

  void send(std::string frame) {
    asio::post(ex_, [self = shared_from_this(), f = std::move(frame)]() mutable {
      self->enqueue(std::move(f), false);
    });
  }

  // Liveness (§6.4): a ping every liveness.ping; the channel is closed when
  // nothing came from the peer for liveness.silence. Beast's own idle timeout
  // cannot say this: without its keep-alive pings it counts only messages,
  // not pongs, and would drop every idle control channel.
  void start_pings() {
    ws_.on_control([w = weak_from_this()](beast::websocket::frame_type) {
      if (auto self = w.lock()) self->heard();
    });
    asio::co_spawn(ex_, watch(shared_from_this()), asio::detached);
  }
  // Something came from the peer (the channel's reader calls this for every
  // message; pings and pongs are seen through on_control).
  void heard() {
    last_heard_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
  }

  void close() {
    asio::post(ex_, [self = shared_from_this()] {
      if (self->dead_) return;
      self->ws_.close_socket();
    });
  }

  // Called by the channel's own coroutine as it ends: no write may touch the
  // stream after this returns.
  asio::awaitable<void> retire() {
    dead_ = true;
    ws_.on_control(nullptr);
    ws_.close_socket();
    asio::steady_timer t(ex_);
    while (writing_) {
      t.expires_after(1ms);
      co_await t.async_wait(kTuple);
    }
  }

 private:
  static asio::awaitable<void> watch(std::shared_ptr<Channel> self) {
    asio::steady_timer t(self->ex_);
    auto tick = std::min<std::chrono::milliseconds>(self->liveness_.ping, 1s);
    auto next_ping = std::chrono::steady_clock::now() + self->liveness_.ping;
    for (;;) {
      t.expires_after(tick);
      co_await t.async_wait(kTuple);
      if (self->dead_) co_return;
      auto now = std::chrono::steady_clock::now();
      auto heard = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(self->last_heard_ns_));
      if (now - heard > self->liveness_.silence) {
        log::get("exec")->info("channel silent for {} ms: closed",
                               std::chrono::duration_cast<std::chrono::milliseconds>(now - heard).count());
        self->ws_.close_socket();
        co_return;
      }
      if (now >= next_ping) {
        self->enqueue({}, true);
        next_ping = now + self->liveness_.ping;
      }
    }
  }

  void enqueue(std::string frame, bool ping) {
    if (dead_) return;
    queue_.emplace_back(std::move(frame), ping);
    if (!writing_) asio::co_spawn(ex_, drain(), asio::detached);
  }

  asio::awaitable<void> drain() {
    writing_ = true;
    while (!queue_.empty() && !dead_) {
      auto [f, ping] = std::move(queue_.front());
      queue_.pop_front();
      boost::system::error_code ec;
      if (ping) {
        ec = co_await ws_.ping();
      } else {
        ec = co_await ws_.write(asio::buffer(f), true);
      }
      if (ec) break;
    }
    writing_ = false;
  }

  http::WsStream& ws_;
  asio::any_io_executor ex_;
  Liveness liveness_;
  std::atomic<int64_t> last_heard_ns_{0};
  std::deque<std::pair<std::string, bool>> queue_;  // frame, is-ping
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

// Beast's idle timeout bounds the wait for the first frame only; after it,
// silence is the Channel's to judge (Channel::start_pings).
void configure(http::WsStream& ws, std::optional<std::chrono::seconds> idle) {
  websocket::stream_base::timeout t;
  t.handshake_timeout = 30s;
  t.idle_timeout = idle ? *idle : websocket::stream_base::none();
  t.keep_alive_pings = false;
  ws.set_timeouts(t, 64 * 1024 * 1024);
}

// The first (text) frame of a channel: its token, within 30 s.
asio::awaitable<Result<OpenChannel>> read_open(http::WsStream& ws) {
  configure(ws, 30s);
  beast::flat_buffer buf;
  auto [ec, n] = co_await ws.read(buf);
  configure(ws, std::nullopt);
  if (ec) co_return Error::invalid("ChannelClosed", ec.message());
  co_return parse_open_channel(beast::buffers_to_string(buf.data()));
}

}  // namespace

Broker::Broker(std::string public_url, std::chrono::milliseconds token_lifetime,
               SessionJournal* journal, std::chrono::milliseconds orphan_grace)
    : public_url_(std::move(public_url)), token_lifetime_(token_lifetime), journal_(journal) {
  if (!journal_) return;
  auto deadline = std::chrono::steady_clock::now() + orphan_grace;
  for (auto& info : journal_->load()) {
    Session s;
    s.info = std::move(info);
    if (s.info.end == 0) {
      // Its channels went with the previous broker; both ends reconnect.
      s.info.status = "Disconnected";
      s.orphan_deadline = deadline;
    }
    std::string id = s.info.session_id;
    sessions_[id] = std::move(s);
  }
}

void Broker::record_one(const SessionInfo& info) {
  if (journal_) journal_->record(info);
}

void Broker::record(const std::vector<SessionInfo>& infos) {
  if (journal_)
    for (const auto& i : infos) journal_->record(i);
}

void Broker::reap_orphans(std::vector<SessionInfo>& to_record) {
  auto now = std::chrono::steady_clock::now();
  for (auto& [id, s] : sessions_) {
    if (!s.orphan_deadline || s.info.end != 0 || s.agent || now < *s.orphan_deadline) continue;
    s.orphan_deadline.reset();
    s.info.end = time::epoch(std::chrono::system_clock::now());
    s.info.status = "Failed";
    close_client(s, "The session's agent did not reconnect.");
    end_transcript(s);
    to_record.push_back(s.info);
  }
}
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

// A token stays until a bind with it succeeds (the stock plugin retries its
// first open with the same token), or it expires.
std::map<std::string, Broker::Token>::iterator Broker::usable_token(const std::string& token,
                                                                    const std::string& subject, bool control) {
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return it;
  if (it->second.expires < std::chrono::steady_clock::now()) {
    tokens_.erase(it);
    return tokens_.end();
  }
  const Token& t = it->second;
  if (t.subject != subject || (t.kind == Token::Kind::kControl) != control) return tokens_.end();
  return it;
}

std::string Broker::control_channel_token(const std::string& target) {
  return new_token(Token::Kind::kControl, target);
}

Result<std::string> Broker::data_channel_token(const std::string& session_id) {
  std::vector<SessionInfo> ended;
  bool live;
  {
    std::lock_guard lock(mu_);
    reap_orphans(ended);
    auto it = sessions_.find(session_id);
    live = it != sessions_.end() && it->second.info.end == 0;
  }
  record(ended);
  if (!live) return Error::invalid("BadRequest", "Session is already terminated");
  return new_token(Token::Kind::kAgentData, session_id);
}

bool Broker::target_connected(const std::string& target) const {
  std::lock_guard lock(mu_);
  return controls_.count(target) > 0;
}

std::vector<ControlInfo> Broker::controls() const {
  std::lock_guard lock(mu_);
  std::vector<ControlInfo> out;
  for (const auto& [t, i] : control_info_) out.push_back(i);
  return out;
}

Result<Broker::Started> Broker::start_session(const std::string& target,
                                              const std::string& document_name,
                                              const json::object& document_content,
                                              const std::string& owner, const std::string& id_prefix,
                                              std::optional<Transcript> transcript) {
  std::shared_ptr<Channel> control;
  Started st;
  st.session_id = id_prefix + "-" + ids::hex_id(17);
  SessionInfo created;
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
    if (transcript && !transcript->log_group.empty() && transcripts_) s.transcript = std::move(transcript);
    created = s.info;
    sessions_[st.session_id] = std::move(s);
  }
  record({created});
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
  std::vector<SessionInfo> ended;
  {
    std::lock_guard lock(mu_);
    reap_orphans(ended);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end())
      return Error::not_found("DoesNotExistException", fmt::format("Session {} does not exist.", session_id));
    // A session that ended moments ago is still resumable, so that a client
    // cut off just then learns how it ended (its channel_closed) instead of
    // hearing that the session timed out. Later, AWS's answer: no token.
    double end = it->second.info.end;
    if (end != 0 && time::epoch(std::chrono::system_clock::now()) - end > 30)
      return Started{session_id, "", ""};
  }
  record(ended);
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
  SessionInfo info;
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
    end_transcript(s);
    info = s.info;
    agent = s.agent;
    if (auto c = controls_.find(s.info.target); c != controls_.end()) control = c->second;
  }
  record({info});
  std::string cc = channel_closed_frame(session_id, "", "");
  if (agent) agent->send(cc);
  if (control) control->send(cc);
  return {};
}

void Broker::on_agent_task_complete(const std::string& session_id, const std::string& output,
                                    const std::string& status) {
  SessionInfo info;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.info.end != 0) return;
    Session& s = it->second;
    s.info.end = time::epoch(std::chrono::system_clock::now());
    s.info.status = status == "Success" ? "Terminated" : "Failed";
    close_client(s, status == "Success" ? "" : output);
    end_transcript(s);
    info = s.info;
  }
  record({info});
}

std::vector<SessionInfo> Broker::sessions(bool active) {
  std::vector<SessionInfo> out, ended;
  {
    std::lock_guard lock(mu_);
    reap_orphans(ended);
    for (const auto& [id, s] : sessions_)
      if ((s.info.end == 0) == active) out.push_back(s.info);
  }
  record(ended);
  return out;
}

void Broker::end_transcript(Session& s) {
  if (!s.transcript || !transcripts_) return;
  // What came out of order and never had its gap filled, in order still.
  for (auto& [seq, bytes] : s.early_output) transcripts_->append(*s.transcript, s.info.session_id, std::move(bytes));
  s.early_output.clear();
  transcripts_->close(*s.transcript, s.info.session_id);
  s.transcript.reset();
}

// The agent's output_stream_data, once each and in order (retransmissions
// and reordering are the two ends' business; the transcript sees the stream
// as the client does).
void Broker::transcribe(const std::string& session_id, const std::string& bytes) {
  auto m = parse(bytes);
  if (!m.ok() || m->type != message_type::kOutputStreamData) return;
  if (m->payload_type != PayloadType::kOutput && m->payload_type != PayloadType::kStdErr) return;
  std::vector<std::string> out;
  Transcript t;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || !it->second.transcript) return;
    Session& s = it->second;
    t = *s.transcript;
    int64_t seq = m->sequence;
    if (s.next_output < 0) s.next_output = seq;  // (a broker restarted mid-session starts where it is)
    if (seq < s.next_output) return;             // a retransmission
    if (seq > s.next_output) {
      if (s.early_output.size() < 4096) s.early_output.emplace(seq, std::move(m->payload));
      return;
    }
    out.push_back(std::move(m->payload));
    ++s.next_output;
    for (auto e = s.early_output.begin(); e != s.early_output.end() && e->first == s.next_output;) {
      out.push_back(std::move(e->second));
      ++s.next_output;
      e = s.early_output.erase(e);
    }
    s.early_output.erase(s.early_output.begin(), s.early_output.lower_bound(s.next_output));
  }
  for (auto& o : out) transcripts_->append(t, session_id, std::move(o));
}

asio::awaitable<void> Broker::run_control(http::WsStream& ws, std::string target, ControlInfo info) {
  auto open = co_await read_open(ws);
  if (!open.ok()) co_return;
  auto self = std::make_shared<Channel>(ws, liveness_);
  std::shared_ptr<Channel> previous;
  {
    std::lock_guard lock(mu_);
    auto tok = usable_token(open->token_value, target, /*control=*/true);
    if (tok == tokens_.end()) {
      log::get("exec")->warn("control channel for {}: bad token", target);
      co_return;
    }
    tokens_.erase(tok);
    auto& slot = controls_[target];
    previous = slot;
    slot = self;
    info.target = target;
    info.since = time::epoch(std::chrono::system_clock::now());
    control_info_[target] = info;
  }
  if (previous) previous->close();
  self->start_pings();
  log::get("exec")->info("control channel up: {}", target);
  for (;;) {
    beast::flat_buffer buf;
    auto [ec, n] = co_await ws.read(buf);
    if (ec) break;
    self->heard();
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
    if (auto it = controls_.find(target); it != controls_.end() && it->second == self) {
      controls_.erase(it);
      control_info_.erase(target);
    }
  }
  log::get("exec")->info("control channel down: {}", target);
  co_await self->retire();
}

// Binds a data channel to its session's slot. Returns the frame to send
// instead when the session has ended (a client learns how), "" when bound;
// nullopt when there is nothing to bind to.
std::optional<std::string> Broker::bind_data(const std::string& session_id, const std::string& token,
                                             const std::shared_ptr<Channel>& self, bool& is_agent) {
  std::shared_ptr<Channel> previous;
  SessionInfo bound;
  {
    std::lock_guard lock(mu_);
    auto tok = usable_token(token, session_id, /*control=*/false);
    if (tok == tokens_.end()) return std::nullopt;
    is_agent = tok->second.kind == Token::Kind::kAgentData;
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return std::nullopt;
    Session& s = it->second;
    if (s.info.end != 0 && is_agent) return std::nullopt;
    tokens_.erase(tok);  // spent: bound, or told the session ended
    if (s.info.end != 0) return channel_closed_frame(session_id, s.info.owner, "");
    auto& slot = is_agent ? s.agent : s.client;
    previous = slot;
    slot = self;
    if (is_agent) {
      s.info.status = "Connected";
      s.orphan_deadline.reset();
      bound = s.info;
    }
    // The agent sends only while a client listens: resume it when one binds.
    if (!is_agent && s.agent)
      s.agent->send(frame(message_type::kStartPublication, PayloadType::kNone, "", kFlagSyn | kFlagFin));
    if (is_agent && s.client)
      self->send(frame(message_type::kStartPublication, PayloadType::kNone, "", kFlagSyn | kFlagFin));
  }
  if (previous) previous->close();
  if (is_agent) record_one(bound);
  return std::string();
}

void Broker::unbind_data(const std::string& session_id, const std::shared_ptr<Channel>& self,
                         bool is_agent) {
  SessionInfo unbound;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    auto& slot = is_agent ? s.agent : s.client;
    if (slot != self) return;
    slot.reset();
    unbound = s.info;  // its byte counts, at least
    // No one to deliver to: pause the agent rather than let it resend into the void.
    if (!is_agent && s.agent && s.info.end == 0)
      s.agent->send(frame(message_type::kPausePublication, PayloadType::kNone, "", kFlagSyn | kFlagFin));
  }
  record_one(unbound);
}

std::shared_ptr<Channel> Broker::data_peer(const std::string& session_id, bool is_agent, size_t bytes) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return nullptr;
  (is_agent ? it->second.info.bytes_out : it->second.info.bytes_in) += bytes;
  return is_agent ? it->second.client : it->second.agent;
}

asio::awaitable<void> Broker::run_data(http::WsStream& ws, std::string session_id) {
  auto open = co_await read_open(ws);
  if (!open.ok()) co_return;
  bool is_agent = false;
  auto self = std::make_shared<Channel>(ws, liveness_);
  auto bound = bind_data(session_id, open->token_value, self, is_agent);
  if (!bound) {
    log::get("exec")->warn("data channel for {}: bad token, or no such session", session_id);
    co_return;
  }
  if (!bound->empty()) {
    // The session ended while this client was away: tell it so, and done.
    co_await ws.write(asio::buffer(*bound), true);
    co_return;
  }
  self->start_pings();
  bool recording = false;
  if (is_agent && transcripts_) {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session_id);
    recording = it != sessions_.end() && it->second.transcript.has_value();
  }
  for (;;) {
    beast::flat_buffer buf;
    auto [ec, n] = co_await ws.read(buf);
    if (ec) break;
    self->heard();
    std::string bytes = beast::buffers_to_string(buf.data());
    if (is_agent && bytes.size() >= kMinFrame) {
      // agent_session_state is for the service, not the client.
      std::string_view type(bytes.data() + 4, 32);
      if (str::trim(type) == message_type::kAgentSessionState) continue;
    }
    if (recording) transcribe(session_id, bytes);
    // No peer yet: dropped; the sender's retransmission delivers it later.
    if (auto peer = data_peer(session_id, is_agent, bytes.size())) peer->send(std::move(bytes));
  }
  unbind_data(session_id, self, is_agent);
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
    ControlInfo info;
    info.listener = peer.listener;
    info.source = peer.address;
    info.local = peer.local_address;
    up.run = [this, t = *id, info](http::WsStream& ws) { return run_control(ws, t, info); };
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
