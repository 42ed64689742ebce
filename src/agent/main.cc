// pier-exec-agent: the agent end of the Session Manager protocol. It holds a
// control channel to ssmmessages for its target and, for each session the
// broker starts, opens the session's data channel and runs the command: in a
// pty for shell and interactive sessions, with pipes (stdout and stderr
// apart, then the exit code) for non-interactive ones.
//
// It is linked statically so that it runs in any container image: names go
// to client::resolve (c-ares, reading the image's resolv.conf and hosts), not
// to glibc's NSS; credentials come from the environment, the container
// credentials endpoint (169.254.170.2) or the shared file, and are refreshed
// before they expire; https/wss endpoints are verified against the system's
// CAs or --ca-bundle.
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <deque>
#include <map>
#include <memory>

#include "aws/xml.h"
#include "client/aws_call.h"
#include "client/credentials.h"
#include "client/transport.h"
#include "client/ws_writer.h"
#include "common/log.h"
#include "common/memory.h"
#include "common/strings.h"
#include "exec/message.h"
#include "exec/payloads.h"
#include "exec/stream.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using namespace pier;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr const char* kAgentVersion = "3.3.1142.0";

using Ws = client::WebSocket;

struct Config {
  std::string target;
  client::Endpoint endpoint;
  client::CredentialsProvider creds;
};
Config g_cfg;

std::string env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

// POST /v1/{control,data}-channel/ID → the token in the XML answer.
asio::awaitable<Result<std::string>> create_channel(const std::string& path, const std::string& body) {
  auto creds = co_await g_cfg.creds.get();
  if (!creds.ok()) co_return creds.error();
  client::Headers headers;
  headers.emplace_back(std::string("Content-Type"), std::string("application/json"));
  std::string method = "POST";
  auto res = co_await client::signed_request(g_cfg.endpoint, "ssmmessages", method, path, headers, body, *creds);
  if (!res.ok()) co_return res.error();
  if (res->status != 201) {
    if (res->status == 403) g_cfg.creds.invalidate();  // expired or replaced credentials: fetch anew
    co_return Error::denied("ChannelRefused", fmt::format("{} {}: {}", path, res->status, res->body));
  }
  auto x = aws::xml::parse(res->body);
  if (!x.ok() || !x->child("TokenValue")) co_return Error::internal("no TokenValue in the answer");
  co_return x->child("TokenValue")->text;
}

// The upgrade is signed as a plain GET of the URL (§6.2).
asio::awaitable<Result<std::unique_ptr<Ws>>> open_ws(const std::string& target) {
  auto creds = co_await g_cfg.creds.get();
  if (!creds.ok()) co_return creds.error();
  std::string method = "GET";
  auto headers = client::sign_headers(g_cfg.endpoint, "ssmmessages", method, target, {}, "", *creds);
  client::Url url = g_cfg.endpoint.url;
  url.target = target;
  co_return co_await Ws::connect(url, headers, g_cfg.endpoint.connect);
}

using Writer = client::WsWriter;

std::shared_ptr<Writer> g_control;  // the live control channel's writer, if any
// agent_task_complete frames not yet acknowledged, by MessageId: sent again
// on every reconnect of the control channel until the broker acknowledges.
std::map<std::string, std::string> g_pending_complete;

std::string frame(std::string_view type, exec::PayloadType pt, std::string payload, uint64_t flags) {
  auto f = exec::serialize(exec::make_message(type, 0, flags, pt, std::move(payload)));
  return f.ok() ? std::move(f).value() : std::string();
}

// Shell-style words: quotes and backslashes honoured, as the agent splits
// commands in container mode (§6.6).
std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == quote) quote = 0;
      else if (c == '\\' && quote == '"' && i + 1 < s.size()) cur += s[++i];
      else cur += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(std::move(cur));
  return out;
}

struct Child {
  pid_t pid = -1;
  int pty = -1, out = -1, err = -1;
};

Child spawn(const std::vector<std::string>& argv, bool use_pty, bool separate) {
  Child c;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto child_env = [] {
    setenv("TERM", "xterm-256color", 1);
    if (!std::getenv("LANG")) setenv("LANG", "C.UTF-8", 1);
    signal(SIGPIPE, SIG_DFL);
  };
  if (use_pty) {
    c.pid = forkpty(&c.pty, nullptr, nullptr, nullptr);
    if (c.pid == 0) {
      child_env();
      execvp(args[0], args.data());
      _exit(127);
    }
    return c;
  }
  int o[2], e[2], in[2];
  if (pipe(o) || pipe(e) || pipe(in)) return c;
  c.pid = fork();
  if (c.pid == 0) {
    child_env();
    dup2(in[0], 0);
    dup2(o[1], 1);
    dup2(separate ? e[1] : o[1], 2);
    close(o[0]); close(o[1]); close(e[0]); close(e[1]); close(in[0]); close(in[1]);
    execvp(args[0], args.data());
    _exit(127);
  }
  fcntl(o[0], F_SETPIPE_SZ, 1 << 20);
  fcntl(e[0], F_SETPIPE_SZ, 1 << 20);
  close(o[1]);
  close(e[1]);
  close(in[0]);
  close(in[1]);  // NonInteractiveCommands: stdin is not forwarded, as in SSM
  c.out = o[0];
  c.err = e[0];
  return c;
}

struct SessionState {
  std::string session_id;
  std::unique_ptr<Ws> ws;
  std::vector<std::unique_ptr<Ws>> retired;  // kept until the session ends: old writers may still touch them
  bool closed_by_broker = false;
  bool paused = false;  // pause_publication: no sending, no reading output (§5.6)
  std::shared_ptr<Writer> writer;
  exec::StreamSender sender{std::string(exec::message_type::kOutputStreamData),
                            exec::SenderPolicy::agent(), exec::steady_clock()};
  exec::StreamReceiver receiver{exec::ReceiverPolicy::agent()};
  Child child;
  bool done = false;
};
std::map<std::string, std::shared_ptr<SessionState>> g_sessions;

// Terminal output goes in messages of at most 1 KiB, as AWS's agent sends it;
// pipe output of non-interactive sessions in ones of up to 256 KiB, from
// pipes of 1 MiB (the protocol allows any size, and every message costs a
// digest, an ack, a relay hop and a wakeup at each end).
constexpr size_t kPipeChunk = 256 * 1024;
asio::awaitable<void> pump(std::shared_ptr<SessionState> st, int fd, exec::PayloadType pt, size_t chunk) {
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor d(ex, dup(fd));
  std::string buf(chunk, '\0');
  asio::steady_timer wait(ex);
  for (;;) {
    // Paused, or too much unacknowledged: stop reading (the child blocks on
    // a full pipe), so memory stays bounded while no client listens.
    // At most 8 MiB to send again after a cut.
    while (st->paused || st->sender.buffered() * chunk >= 8 * 1024 * 1024) {
      wait.expires_after(5ms);
      co_await wait.async_wait(kTuple);
      if (st->done || st->closed_by_broker) co_return;
    }
    auto [ec, n] = co_await d.async_read_some(asio::buffer(buf), kTuple);
    if (ec || n == 0) break;  // EOF, or EIO from a pty whose child is gone
    auto f = st->sender.send(pt, buf.substr(0, n));
    if (f.ok()) st->writer->send(std::move(f).value());
  }
}

// (Re)opens the session's data channel: a fresh CreateDataChannel token, the
// signed upgrade, the open frame; then everything still unacknowledged is sent
// again (sequence numbers and buffers survive reconnects, §5.12).
asio::awaitable<Status> connect_data(std::shared_ptr<SessionState> st) {
  std::string body = fmt::format(R"({{"MessageSchemaVersion":"1.0","RequestId":"{}","ClientId":""}})",
                                 exec::Uuid::random().str());
  auto token = co_await create_channel("/v1/data-channel/" + st->session_id, body);
  if (!token.ok()) co_return token.error();
  auto wsr = co_await open_ws("/v1/data-channel/" + st->session_id + "?role=publish_subscribe");
  if (!wsr.ok()) co_return wsr.error();
  if (st->writer) st->writer->stop();
  if (st->ws) st->retired.push_back(std::move(st->ws));
  st->ws = std::move(wsr).value();
  st->writer = std::make_shared<Writer>(*st->ws);
  exec::AgentOpenDataChannel open{"1.0", exec::Uuid::random().str(), *token, g_cfg.target, ""};
  st->writer->send(exec::to_json(open), /*text=*/true);
  for (auto& f : st->sender.all_buffered()) st->writer->send(std::move(f));
  co_return Status{};
}

asio::awaitable<void> run_session(std::string session_id, json::object task) {
  auto log = log::get("agent");
  auto ex = co_await asio::this_coro::executor;
  json::object doc = task.contains("DocumentContent") && task["DocumentContent"].is_object()
                         ? task["DocumentContent"].as_object() : json::object();
  std::string type = doc.contains("sessionType") && doc["sessionType"].is_string()
                         ? std::string(doc["sessionType"].as_string()) : "Standard_Stream";
  std::string commands;
  bool separate = false;
  if (auto* p = doc.if_contains("properties"); p && p->is_object())
    if (auto* l = p->as_object().if_contains("linux"); l && l->is_object()) {
      auto& lo = l->as_object();
      if (auto* c = lo.if_contains("commands"); c && c->is_string()) commands = std::string(c->as_string());
      if (auto* s = lo.if_contains("separateOutputStream"); s && s->is_bool()) separate = s->as_bool();
    }

  auto st = std::make_shared<SessionState>();
  st->session_id = session_id;
  // The first open, retried as the agent retries it (§5.12).
  Status opened = Error::internal("not opened");
  asio::steady_timer retry(ex);
  for (int attempt = 0; attempt < 6 && !opened.ok(); ++attempt) {
    if (attempt) {
      retry.expires_after(std::chrono::milliseconds(150 << attempt));
      co_await retry.async_wait(kTuple);
    }
    opened = co_await connect_data(st);
  }
  if (!opened.ok()) {
    log->error("session {}: {}", session_id, opened.error().message);
    co_return;
  }
  g_sessions[session_id] = st;
  st->writer->send(frame(exec::message_type::kAgentSessionState, exec::PayloadType::kNone,
                         exec::to_json(exec::AgentSessionState{1, "Connected", session_id}),
                         exec::kFlagSyn | exec::kFlagFin));

  bool interactive = type != "NonInteractiveCommands";
  auto argv = split_words(commands);
  if (argv.empty()) argv = {"sh"};
  st->child = spawn(argv, interactive, separate);
  log->info("session {}: {} pid {}", session_id, type, st->child.pid);

  // Reader of the data channel: acks, input, resizes, channel_closed; on a
  // broken channel, reconnect (up to 6 tries, backoff capped at 5 s).
  asio::co_spawn(ex, [st]() -> asio::awaitable<void> {
   for (;;) {
    for (;;) {
      beast::flat_buffer buf;
      auto ec = co_await st->ws->read(buf);
      if (ec) break;
      auto m = exec::parse(beast::buffers_to_string(buf.data()));
      if (!m.ok() || !exec::validate(*m, exec::Receiver::kAgent).ok()) continue;
      if (m->type == exec::message_type::kAcknowledge) {
        st->paused = false;  // any ack or input resumes a paused agent
        if (auto a = exec::parse_acknowledge(m->payload); a.ok()) st->sender.on_ack(a->sequence);
      } else if (m->type == exec::message_type::kInputStreamData) {
        auto out = st->receiver.on_message(*m);
        if (out.ack) {
          auto ack = exec::serialize(exec::make_ack(*m));
          if (ack.ok()) st->writer->send(std::move(ack).value());
        }
        for (auto& d : out.deliver) {
          if (d.payload_type == exec::PayloadType::kOutput && st->child.pty >= 0) {
            (void)!write(st->child.pty, d.payload.data(), d.payload.size());
          } else if (d.payload_type == exec::PayloadType::kSize && st->child.pty >= 0) {
            if (auto sz = exec::parse_size(d.payload); sz.ok()) {
              winsize wsz{static_cast<unsigned short>(sz->rows), static_cast<unsigned short>(sz->cols), 0, 0};
              ioctl(st->child.pty, TIOCSWINSZ, &wsz);
            }
          } else if (d.payload_type == exec::PayloadType::kFlag) {
            if (exec::parse_flag(d.payload) == exec::PayloadFlag::kTerminateSession && st->child.pid > 0)
              kill(st->child.pid, SIGHUP);
          }
        }
      } else if (m->type == exec::message_type::kPausePublication) {
        st->paused = true;
      } else if (m->type == exec::message_type::kStartPublication) {
        // A client is back: everything it may have missed, oldest first.
        st->paused = false;
        for (auto& f : st->sender.all_buffered()) st->writer->send(std::move(f));
      } else if (m->type == exec::message_type::kChannelClosed) {
        if (st->child.pid > 0) kill(st->child.pid, SIGHUP);
        st->closed_by_broker = true;
        break;
      }
    }
    if (st->done || st->closed_by_broker) co_return;
    asio::steady_timer t(co_await asio::this_coro::executor);
    Status again = Error::internal("not reconnected");
    for (int attempt = 0; attempt < 6 && !again.ok() && !st->done; ++attempt) {
      t.expires_after(std::min(std::chrono::milliseconds(150 << attempt), std::chrono::milliseconds(5000)));
      co_await t.async_wait(kTuple);
      again = co_await connect_data(st);
    }
    if (!again.ok()) {
      if (st->child.pid > 0) kill(st->child.pid, SIGHUP);
      co_return;
    }
   }
  }, asio::detached);

  // Retransmission: every 100 ms, the oldest unacknowledged message if late.
  asio::co_spawn(ex, [st]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (!st->done) {
      t.expires_after(100ms);
      co_await t.async_wait(kTuple);
      if (st->paused) continue;
      for (auto& f : st->sender.tick()) st->writer->send(std::move(f));
    }
  }, asio::detached);

  if (st->child.pty >= 0) {
    co_await pump(st, st->child.pty, exec::PayloadType::kOutput, 1024);
  } else {
    // stdout and stderr concurrently; the session ends when both close.
    auto both = std::make_shared<int>(2);
    asio::steady_timer wait(ex);
    for (auto [fd, pt] : {std::pair{st->child.out, exec::PayloadType::kOutput},
                          std::pair{st->child.err, exec::PayloadType::kStdErr}}) {
      asio::co_spawn(ex, [st, fd = fd, pt = pt, both]() -> asio::awaitable<void> {
        co_await pump(st, fd, pt, kPipeChunk);
        --*both;
      }, asio::detached);
    }
    while (*both > 0) {
      wait.expires_after(1ms);
      co_await wait.async_wait(kTuple);
    }
  }
  int status = 0;
  asio::steady_timer t(ex);
  while (waitpid(st->child.pid, &status, WNOHANG) == 0) {
    t.expires_after(1ms);
    co_await t.async_wait(kTuple);
  }
  for (int fd : {st->child.pty, st->child.out, st->child.err})
    if (fd >= 0) close(fd);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (!interactive) {
    auto f = st->sender.send(exec::PayloadType::kExitCode, fmt::format("EXIT_CODE: {}", code));
    if (f.ok()) st->writer->send(std::move(f).value());
  }
  // Time for the client to acknowledge what is still in flight: AWS's agent
  // gives 2 s (§5.11); pier gives 60, so that a client reconnecting again and
  // again after cuts still gets every byte.
  auto drain_until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < drain_until && st->sender.buffered() > 0 && !st->closed_by_broker) {
    t.expires_after(1ms);
    co_await t.async_wait(kTuple);
  }
  st->writer->send(frame(exec::message_type::kAgentSessionState, exec::PayloadType::kNone,
                         exec::to_json(exec::AgentSessionState{1, "Terminating", session_id}),
                         exec::kFlagSyn | exec::kFlagFin));
  for (int i = 0; i < 1000 && !st->writer->idle(); ++i) {  // at most about 1 s
    t.expires_after(1ms);
    co_await t.async_wait(kTuple);
  }
  st->done = true;
  json::object done{{"SchemaVersion", 1}, {"TaskId", session_id}, {"Topic", "agent_task_complete"},
                    {"FinalTaskStatus", "Success"}, {"IsRoutingFailure", false}, {"AwsAccountId", ""},
                    {"InstanceId", g_cfg.target}, {"Output", ""}, {"S3Bucket", ""}, {"S3UrlSuffix", ""},
                    {"CwlGroup", ""}, {"CwlStream", ""}, {"RetryNumber", 1}};
  {
    auto m = exec::make_message(exec::message_type::kAgentTaskComplete, 0, 0, exec::PayloadType::kNone,
                                json::serialize(done));
    auto f = exec::serialize(m);
    if (f.ok()) {
      g_pending_complete[m.id.str()] = *f;
      if (g_control) g_control->send(std::move(f).value());
    }
  }
  st->done = true;
  st->ws->close();
  for (int i = 0; i < 1000 && !st->writer->idle(); ++i) {  // at most about 1 s
    t.expires_after(1ms);
    co_await t.async_wait(kTuple);
  }
  t.expires_after(200ms);  // let the reader and ticker see the close
  co_await t.async_wait(kTuple);
  g_sessions.erase(session_id);
  log->info("session {}: exit {}", session_id, code);
}

asio::awaitable<void> control_loop() {
  auto log = log::get("agent");
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer t(ex);
  std::chrono::milliseconds backoff = 200ms;
  for (;;) {
    std::string body = fmt::format(R"({{"MessageSchemaVersion":"1.0","RequestId":"{}"}})",
                                   exec::Uuid::random().str());
    std::string path = "/v1/control-channel/" + g_cfg.target;
    auto token = co_await create_channel(path, body);
    Result<std::unique_ptr<Ws>> wsr = Error::internal("no token");
    if (token.ok()) wsr = co_await open_ws(path + "?role=subscribe&stream=input");
    if (!token.ok() || !wsr.ok()) {
      log->warn("control channel: {}", token.ok() ? wsr.error().message : token.error().message);
      t.expires_after(backoff);
      co_await t.async_wait(kTuple);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5000ms);  // capped at 5 s
      continue;
    }
    backoff = 200ms;
    auto ws = std::move(wsr).value();
    auto writer = std::make_shared<Writer>(*ws);
    g_control = writer;
    exec::AgentOpenControlChannel open{"1.0", exec::Uuid::random().str(), *token, kAgentVersion, "linux"};
    writer->send(exec::to_json(open), true);
    for (const auto& [id, f] : g_pending_complete) writer->send(f);
    log->info("control channel open for {}", g_cfg.target);
    std::printf("pier-exec-agent: connected as %s\n", g_cfg.target.c_str());
    std::fflush(stdout);
    for (;;) {
      beast::flat_buffer buf;
      auto ec = co_await ws->read(buf);
      if (ec) break;
      auto m = exec::parse(beast::buffers_to_string(buf.data()));
      if (!m.ok() || !exec::validate(*m, exec::Receiver::kAgent).ok()) continue;
      if (m->type == exec::message_type::kInteractiveShell) {
        boost::system::error_code jec;
        auto mgs = json::parse(m->payload, jec);
        if (jec || !mgs.is_object() || !mgs.as_object().contains("Content")) continue;
        auto content = mgs.as_object()["Content"];
        if (!content.is_string()) continue;
        auto task = json::parse(content.as_string(), jec);
        if (jec || !task.is_object()) continue;
        auto& to = task.as_object();
        std::string sid = to.contains("SessionId") && to["SessionId"].is_string() ? std::string(to["SessionId"].as_string()) : "";
        if (sid.empty()) continue;
        asio::co_spawn(ex, run_session(sid, to), asio::detached);
      } else if (m->type == exec::message_type::kAgentTaskAcknowledge) {
        boost::system::error_code jec;
        auto v = json::parse(m->payload, jec);
        if (!jec && v.is_object())
          if (auto* id = v.as_object().if_contains("MessageId"); id && id->is_string())
            g_pending_complete.erase(std::string(id->as_string()));
      } else if (m->type == exec::message_type::kChannelClosed) {
        if (auto c = exec::parse_channel_closed(m->payload); c.ok())
          if (auto it = g_sessions.find(c->session_id); it != g_sessions.end() && it->second->child.pid > 0)
            kill(it->second->child.pid, SIGHUP);
      }
    }
    g_control.reset();
    writer->stop();
    log->warn("control channel closed; reconnecting");
    t.expires_after(backoff);
    co_await t.async_wait(kTuple);
  }
}

// Container mode (ECS Exec): who this agent is comes from the task metadata
// endpoint, as AWS's agent learns it — `ecs:CLUSTER_TASKID_RUNTIMEID`, the
// region from the task's ARN. The metadata endpoint answers at once once the
// task runs; a few tries cover the moments before.
struct Identity {
  std::string target, region;
};
asio::awaitable<Result<Identity>> container_identity(const std::string& uri) {
  auto ex = co_await asio::this_coro::executor;
  auto get = [](std::string url) -> asio::awaitable<Result<json::object>> {
    auto u = client::Url::parse(url);
    if (!u.ok()) co_return u.error();
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, u->target, 11};
    client::ConnectOptions o;
    o.timeout = 2s;
    auto r = co_await client::http_request(*u, std::move(req), o);
    if (!r.ok()) co_return r.error();
    if (r->status != 200) co_return Error::internal(fmt::format("{}: HTTP {}", url, r->status));
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object()) co_return Error::internal(url + ": not a JSON object");
    co_return v.as_object();
  };
  auto last = [](const json::object& o, std::string_view k) {
    std::string v = o.contains(k) && o.at(k).is_string() ? std::string(o.at(k).as_string()) : "";
    return v.substr(v.rfind('/') + 1);
  };
  asio::steady_timer t(ex);
  Error err = Error::internal("no metadata");
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt) {
      t.expires_after(1s);
      co_await t.async_wait(kTuple);
    }
    auto task = co_await get(uri + "/task");
    if (!task.ok()) {
      err = task.error();
      continue;
    }
    auto self = co_await get(uri);
    if (!self.ok()) {
      err = self.error();
      continue;
    }
    std::string arn = task->contains("TaskARN") && task->at("TaskARN").is_string()
                          ? std::string(task->at("TaskARN").as_string()) : "";
    auto parts = str::split(arn, ':');
    if (parts.size() < 6 || last(*task, "Cluster").empty() || last(*self, "DockerId").empty())
      co_return Error::internal("failed to get identity from ECS metadata");
    co_return Identity{fmt::format("ecs:{}_{}_{}", last(*task, "Cluster"), last(*task, "TaskARN"), last(*self, "DockerId")),
                       std::string(parts[3])};
  }
  co_return err;
}

// The agent's state directory in a container, as AWS's agent's.
Status write_state_dir() {
  const std::filesystem::path dir = "/var/lib/amazon/ssm";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::internal(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  auto pid_file = dir / "pier-exec-agent.pid";
  FILE* f = std::fopen(pid_file.c_str(), "w");
  if (!f) return Error::internal(fmt::format("cannot write {}: {}", pid_file.string(), std::strerror(errno)));
  std::fprintf(f, "%d\n", static_cast<int>(getpid()));
  std::fclose(f);
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  pier::memory::keep_freed_memory();
  CLI::App app{"pier-exec-agent — serves Session Manager sessions for one target"};
  std::string region = client::region_from_environment();
  std::string endpoint = env("AWS_ENDPOINT_URL");
  std::string level = "info", ca = env("AWS_CA_BUNDLE");
  app.add_option("--target", g_cfg.target,
                 "the target id (e.g. mi-0123456789abcdef0); without it, in a task with "
                 "$ECS_CONTAINER_METADATA_URI_V4, the task's own (ECS Exec's container mode)");
  app.add_option("--endpoint", endpoint,
                 "ssmmessages endpoint URL (default $AWS_ENDPOINT_URL, else https://ssmmessages.REGION.amazonaws.com)");
  app.add_option("--ca-bundle", ca, "PEM file of the CAs to trust for https (default $AWS_CA_BUNDLE, else the system's)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  log::init(level);
  std::string metadata = env("ECS_CONTAINER_METADATA_URI_V4");
  if (metadata.empty()) metadata = env("ECS_CONTAINER_METADATA_URI");
  bool container_mode = g_cfg.target.empty();
  if (container_mode && metadata.empty()) {
    fmt::print(stderr, "pier-exec-agent: --target is required outside an ECS task\n");
    return 2;
  }
  if (container_mode) {
    // As AWS's agent in a container: the regional ssmmessages name (the
    // task's resolver says where that is) and the CA bundle mounted beside
    // the binary; the application's own endpoint settings are not ours.
    std::error_code ec;
    auto dir = std::filesystem::canonical("/proc/self/exe", ec).parent_path();
    auto bundle = dir / "certs" / "amazon-ssm-agent.crt";
    if (ca.empty() || ca == env("AWS_CA_BUNDLE")) ca = std::filesystem::exists(bundle, ec) ? bundle.string() : "";
    if (endpoint == env("AWS_ENDPOINT_URL")) endpoint.clear();
    // AWS's agent keeps its state under /var/lib/amazon/ssm in the
    // container's own filesystem and cannot run on a read-only root (ECS Exec
    // does not support one); ours keeps its pid there, and fails alike.
    if (auto st = write_state_dir(); !st.ok()) {
      fmt::print(stderr, "pier-exec-agent: {}\n", st.error().message);
      return 1;
    }
  }
  auto regional = [](const std::string& r) { return fmt::format("https://ssmmessages.{}.amazonaws.com", r); };
  // In a container without an endpoint given, the task's region names it (below).
  if (endpoint.empty() && !container_mode) endpoint = regional(region);
  if (!endpoint.empty()) {
    auto url = client::Url::parse(endpoint);
    if (!url.ok()) {
      fmt::print(stderr, "pier-exec-agent: --endpoint: {}\n", url.error().message);
      return 2;
    }
    g_cfg.endpoint.url = *url;
  }
  g_cfg.endpoint.region = region;
  g_cfg.endpoint.connect.ca_file = ca;
  g_cfg.creds = client::CredentialsProvider::from_environment();
  log::get("agent")->info("endpoint {}, credentials from {}", endpoint, g_cfg.creds.source());
  signal(SIGPIPE, SIG_IGN);
  asio::io_context ioc{1};
  asio::signal_set stop(ioc, SIGTERM, SIGINT);
  stop.async_wait([&](boost::system::error_code, int) { ioc.stop(); });
  int rc = 0;
  if (container_mode) {
    asio::co_spawn(ioc, [&, endpoint, metadata, regional]() -> asio::awaitable<void> {
      auto id = co_await container_identity(metadata);
      if (!id.ok()) {
        log::get("agent")->error("{}", id.error().message);
        rc = 1;  // the monitor starts us again
        ioc.stop();
        co_return;
      }
      g_cfg.target = id->target;
      g_cfg.endpoint.region = id->region;
      if (endpoint.empty())
        if (auto u = client::Url::parse(regional(id->region)); u.ok()) g_cfg.endpoint.url = *u;
      log::get("agent")->info("container mode: {} via {}", g_cfg.target, g_cfg.endpoint.url.host);
      co_await control_loop();
    }, asio::detached);
  } else {
    asio::co_spawn(ioc, control_loop(), asio::detached);
  }
  ioc.run();
  return rc;
}
