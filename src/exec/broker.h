// The exec broker: pier's ssmmessages. Agents hold a control channel per
// target; each session has two data channels, the client's and the agent's,
// between which the broker relays frames unchanged (acknowledgements travel
// end to end, so reliability is the two ends' business, §5). Tokens are
// random (256 bits), bound to one channel of one session (or one target's
// control channel), and expire unused after 60 s. Thread-safe: channels live
// on the server's network threads; every write to a channel is posted to
// that channel's own executor.
#pragma once

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "http/server.h"

namespace pier::exec {

class Channel;

struct SessionInfo {
  std::string session_id;
  std::string target;
  std::string document;
  std::string owner;
  double start = 0;
  double end = 0;  // 0 while active
  std::string status;  // Connected, Connecting, Terminated, Failed
  uint64_t bytes_in = 0, bytes_out = 0;
};

// Where the broker keeps its session records, so that a restarted pierd
// still knows its sessions: the agent and the client reconnect on their own
// and the session goes on. record() must not block on the disk (it is called
// on network threads); records of one session reach the journal in order.
class SessionJournal {
 public:
  virtual ~SessionJournal() = default;
  virtual void record(const SessionInfo& s) = 0;
  // Every session, oldest first, as the broker starts.
  virtual std::vector<SessionInfo> load() = 0;
};

// Where a control channel came from, as the broker saw its connection: the
// listener (pierd's name for it: "vpce/eni-…" for an interface endpoint's
// ENI, "inet" for the public endpoint in the simulated internet, "" for
// pierd's own port) and the source address (after any NAT).
struct ControlInfo {
  std::string target;
  std::string listener, source, local;
  double since = 0;
};

// A session's transcript (ECS Exec's logging): where the agent's output goes.
struct Transcript {
  std::string account, region, log_group;
};

// Takes the output the agent sent in a session, once each and in order,
// as the broker relays it: a container cannot tamper with it. append() runs
// on network threads and must not block on the disk; close() comes once, at
// the session's end.
class TranscriptSink {
 public:
  virtual ~TranscriptSink() = default;
  virtual void append(const Transcript& t, const std::string& session_id, std::string bytes) = 0;
  virtual void close(const Transcript& t, const std::string& session_id) = 0;
};

// How the broker tells a live channel from a dead one (§6.4): it pings every
// `ping` and drops a channel from which nothing — no message, ping or pong —
// came for `silence`, so a target whose path vanished without a FIN is
// refused within silence + 1 s.
struct Liveness {
  std::chrono::milliseconds ping = std::chrono::seconds(5);
  std::chrono::milliseconds silence = std::chrono::seconds(15);
};

class Broker {
 public:
  struct Started {
    std::string session_id, token, stream_url;
  };
  // With a journal, sessions that were active when the previous broker
  // stopped are resumable again; one whose agent does not come back within
  // `orphan_grace` ends as Failed.
  explicit Broker(std::string public_url,
                  std::chrono::milliseconds token_lifetime = std::chrono::seconds(60),
                  SessionJournal* journal = nullptr,
                  std::chrono::milliseconds orphan_grace = std::chrono::seconds(60));
  ~Broker();

  // REST (CreateControlChannel / CreateDataChannel).
  std::string control_channel_token(const std::string& target);
  Result<std::string> data_channel_token(const std::string& session_id);

  // SSM: StartSession / ResumeSession / TerminateSession / DescribeSessions.
  // id_prefix: the session id's, as AWS's ("<user>-<hex>", "ecs-execute-command-<hex>").
  Result<Started> start_session(const std::string& target, const std::string& document_name,
                                const boost::json::object& document_content,
                                const std::string& owner, const std::string& id_prefix = "pier",
                                std::optional<Transcript> transcript = std::nullopt);
  Result<Started> resume_session(const std::string& session_id);
  Status terminate_session(const std::string& session_id);
  std::vector<SessionInfo> sessions(bool active);
  bool target_connected(const std::string& target) const;
  // Every live control channel and where it came from.
  std::vector<ControlInfo> controls() const;
  // Before any session starts; not owned.
  void set_transcript_sink(TranscriptSink* sink) { transcripts_ = sink; }
  // Before any channel opens (tests shorten it).
  void set_liveness(Liveness l) { liveness_ = l; }

  // WebSocket upgrades under /v1/control-channel/ and /v1/data-channel/.
  // authenticate checks SigV4 for the agent's upgrades (the client's is
  // unsigned, its token is the credential).
  using Authenticate = std::function<Status(http::Request& req, const http::Peer& peer,
                                            std::string_view iam_action)>;
  http::Upgrade upgrade(http::Request& req, const http::Peer& peer, const Authenticate& auth);

  const std::string& public_url() const { return public_url_; }

 private:
  struct Token {
    enum class Kind { kControl, kClientData, kAgentData } kind;
    std::string subject;  // target or session id
    std::chrono::steady_clock::time_point expires;
  };
  struct Session {
    SessionInfo info;
    std::shared_ptr<Channel> client, agent;
    // Restored from the journal: the agent has until then to bind again.
    std::optional<std::chrono::steady_clock::time_point> orphan_deadline;
    // The transcript: output in sequence order (-1: from the first seen).
    std::optional<Transcript> transcript;
    int64_t next_output = -1;
    std::map<int64_t, std::string> early_output;
  };

  boost::asio::awaitable<void> run_control(http::WsStream& ws, std::string target, ControlInfo info);
  void transcribe(const std::string& session_id, const std::string& frame);
  void end_transcript(Session& s);  // under mu_
  boost::asio::awaitable<void> run_data(http::WsStream& ws, std::string session_id);
  // Binds with `token`, spent only if the bind succeeds; is_agent says which
  // end the token was for.
  std::optional<std::string> bind_data(const std::string& session_id, const std::string& token,
                                       const std::shared_ptr<Channel>& self, bool& is_agent);
  void unbind_data(const std::string& session_id, const std::shared_ptr<Channel>& self, bool is_agent);
  std::shared_ptr<Channel> data_peer(const std::string& session_id, bool is_agent, size_t bytes);
  std::string new_token(Token::Kind kind, const std::string& subject);
  // Under mu_: the token, if it is live and was given for this subject and
  // kind of channel (control or data); using it is up to the caller.
  std::map<std::string, Token>::iterator usable_token(const std::string& token, const std::string& subject,
                                                      bool control);
  void on_agent_task_complete(const std::string& session_id, const std::string& output,
                              const std::string& status);
  void close_client(Session& s, const std::string& output);
  // Ends restored sessions whose agent did not come back in time. Under mu_.
  void reap_orphans(std::vector<SessionInfo>& to_record);
  void record(const std::vector<SessionInfo>& infos);
  void record_one(const SessionInfo& info);  // (coroutines: no braced temporaries, GCC 12)

  std::string public_url_;
  std::chrono::milliseconds token_lifetime_;
  Liveness liveness_;
  SessionJournal* journal_;
  mutable std::mutex mu_;
  std::map<std::string, Token> tokens_;
  std::map<std::string, std::shared_ptr<Channel>> controls_;  // by target
  std::map<std::string, ControlInfo> control_info_;          // by target, as controls_
  TranscriptSink* transcripts_ = nullptr;
  std::map<std::string, Session> sessions_;
};

}  // namespace pier::exec
