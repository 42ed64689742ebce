// session-manager-plugin: pier's drop-in for AWS's plugin. The AWS CLI runs it
// for `aws ssm start-session` and `aws ecs execute-command` with the argv and
// environment contract of the spec's §8.2; it speaks the data channel
// protocol (§5) with our stream layer and runs a shell session: raw terminal,
// keystrokes and signals to the remote side, terminal size, output to stdout.
//
// Not yet (issue 3): wss:// (TLS), reconnect + ResumeSession, Port sessions, KMS.
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "common/strings.h"
#include "exec/message.h"
#include "exec/payloads.h"
#include "exec/stream.h"
#include "exec/ws_writer.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using namespace pier;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr const char* kVersion = "1.2.677.0";

// The terminal as it was, restored on every way out.
struct Terminal {
  bool saved = false;
  termios original{};
  void raw() {
    if (!isatty(0) || tcgetattr(0, &original) != 0) return;
    saved = true;
    termios t = original;
    // As the real plugin's `stty cbreak -echo`: no line editing, no echo;
    // ISIG, ICRNL and OPOST stay on.
    t.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &t);
  }
  void restore() {
    if (saved) tcsetattr(0, TCSANOW, &original);
    saved = false;
  }
};
Terminal g_term;

struct SessionArgs {
  std::string session_id, stream_url, token;
};

const json::value* ifield(const json::object& o, std::string_view key) {
  for (const auto& [k, v] : o)
    if (str::iequals(k, key)) return &v;
  return nullptr;
}

std::optional<SessionArgs> parse_session(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  SessionArgs a;
  auto get = [&](std::string_view k) {
    const auto* f = ifield(v.as_object(), k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  a.session_id = get("SessionId");
  a.stream_url = get("StreamUrl");
  a.token = get("TokenValue");
  if (a.session_id.empty() || a.stream_url.empty() || a.token.empty()) return std::nullopt;
  return a;
}

struct State {
  std::shared_ptr<exec::WsWriter> writer;
  exec::StreamSender sender{std::string(exec::message_type::kInputStreamData),
                            exec::SenderPolicy::client(), exec::steady_clock()};
  exec::StreamReceiver receiver{exec::ReceiverPolicy::client()};
  bool started = false;  // the first Output from the agent decides the session type (§5.8)
  bool done = false;
  exec::TerminalSize last{0, 0};
};

void send_input(State& st, exec::PayloadType pt, std::string payload) {
  auto f = st.sender.send(pt, std::move(payload));
  if (f.ok()) st.writer->send(std::move(f).value());
}

asio::awaitable<void> keyboard(std::shared_ptr<State> st) {
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor in(ex, dup(0));
  std::string buf(1024, '\0');
  for (;;) {
    auto [ec, n] = co_await in.async_read_some(asio::buffer(buf), kTuple);
    if (ec || n == 0) {
      if (st->done) co_return;
      std::fprintf(stdout, "Cannot perform start session: EOF\n");
      std::fflush(stdout);
      g_term.restore();
      std::_Exit(0);
    }
    std::string data = buf.substr(0, n);
    if (data == "\n") data = "\r";  // Enter arrives as \n with ICRNL on
    if (st->started) send_input(*st, exec::PayloadType::kOutput, std::move(data));
  }
}

asio::awaitable<void> resize_and_resend(std::shared_ptr<State> st) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  int ticks = 0;
  while (!st->done) {
    t.expires_after(100ms);
    co_await t.async_wait(kTuple);
    for (auto& f : st->sender.tick()) st->writer->send(std::move(f));
    // The size as soon as the session starts, then every 500 ms.
    if (!st->started || (++ticks % 5 != 0 && st->last.cols != 0)) continue;
    winsize w{};
    exec::TerminalSize sz{300, 100};
    if (ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) sz = {w.ws_col, w.ws_row};
    if (sz.cols != st->last.cols || sz.rows != st->last.rows) {
      st->last = sz;
      send_input(*st, exec::PayloadType::kSize, exec::to_json(sz));
    }
  }
}

asio::awaitable<void> signals(std::shared_ptr<State> st) {
  // The CLI starts us with these ignored; installing handlers undoes that,
  // and each becomes the control byte the remote terminal expects.
  asio::signal_set set(co_await asio::this_coro::executor, SIGINT, SIGQUIT, SIGTSTP);
  for (;;) {
    auto [ec, sig] = co_await set.async_wait(kTuple);
    if (ec) co_return;
    char c = sig == SIGINT ? '\x03' : sig == SIGQUIT ? '\x1c' : '\x1a';
    if (st->started) send_input(*st, exec::PayloadType::kOutput, std::string(1, c));
  }
}

asio::awaitable<int> session(SessionArgs args) {
  auto ex = co_await asio::this_coro::executor;
  std::string url = args.stream_url;
  if (!url.starts_with("ws://")) {
    std::fprintf(stdout, "Cannot perform start session: only ws:// stream URLs are supported yet\n");
    co_return 0;
  }
  std::string rest = url.substr(5);
  std::string hostport = rest.substr(0, rest.find('/'));
  std::string path = rest.substr(hostport.size());
  auto colon = hostport.rfind(':');
  asio::ip::tcp::resolver resolver(ex);
  exec::ClientWs ws(ex);
  boost::system::error_code ec;
  auto redirect = asio::redirect_error(asio::use_awaitable, ec);
  std::string host = hostport.substr(0, colon);
  std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  auto eps = co_await resolver.async_resolve(host, port, redirect);
  if (!ec) co_await beast::get_lowest_layer(ws).async_connect(eps, redirect);
  if (!ec) beast::get_lowest_layer(ws).socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if (!ec) co_await ws.async_handshake(hostport, path, redirect);
  if (ec) {
    std::fprintf(stdout, "Cannot perform start session: %s\n", ec.message().c_str());
    co_return 0;
  }
  ws.read_message_max(64 * 1024 * 1024);
  auto st = std::make_shared<State>();
  st->writer = std::make_shared<exec::WsWriter>(ws);
  exec::ClientOpenDataChannel open{"1.0", exec::Uuid::random().str(), args.token,
                                   exec::Uuid::random().str(), std::string(kVersion)};
  st->writer->send(exec::to_json(open), true);
  g_term.raw();
  asio::co_spawn(ex, keyboard(st), asio::detached);
  asio::co_spawn(ex, resize_and_resend(st), asio::detached);
  asio::co_spawn(ex, signals(st), asio::detached);
  for (;;) {
    beast::flat_buffer buf;
    auto [ec, n] = co_await ws.async_read(buf, kTuple);
    if (ec) break;  // TODO(#3): reconnect with ResumeSession
    auto m = exec::parse(beast::buffers_to_string(buf.data()));
    if (!m.ok() || !exec::validate(*m, exec::Receiver::kClient).ok()) continue;
    if (m->type == exec::message_type::kChannelClosed) {
      auto c = exec::parse_channel_closed(m->payload);
      g_term.restore();
      if (c.ok() && !c->output.empty())
        std::fprintf(stdout, "\n\nSessionId: %s : %s\n\n", args.session_id.c_str(), c->output.c_str());
      else
        std::fprintf(stdout, "\n\nExiting session with sessionId: %s.\n\n", args.session_id.c_str());
      std::fflush(stdout);
      break;
    }
    if (m->type == exec::message_type::kAcknowledge) {
      if (auto a = exec::parse_acknowledge(m->payload); a.ok()) st->sender.on_ack(a->sequence);
      continue;
    }
    if (m->type != exec::message_type::kOutputStreamData) continue;
    if (!st->started && m->sequence == st->receiver.expected() &&
        m->payload_type == exec::PayloadType::kOutput)
      st->started = true;
    auto out = st->receiver.on_message(*m);
    if (out.ack) {
      auto ack = exec::serialize(exec::make_ack(*m));
      if (ack.ok()) st->writer->send(std::move(ack).value());
    }
    for (const auto& d : out.deliver) {
      if (d.payload_type == exec::PayloadType::kHandshakeRequest ||
          d.payload_type == exec::PayloadType::kHandshakeComplete ||
          d.payload_type == exec::PayloadType::kEncChallengeRequest)
        continue;
      (void)!::write(1, d.payload.data(), d.payload.size());
    }
  }
  st->done = true;
  g_term.restore();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 1) {
    std::fputs("\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n\n",
               stdout);
    return 0;
  }
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::printf("%s\n", kVersion);
    return 0;
  }
  if (argc < 4) {
    std::printf("\nUnknown operation %s. \nUse session-manager-plugin --version to check the version.\n\n", argv[1]);
    return 0;
  }
  std::string response = argv[1];
  if (response.starts_with("AWS_SSM_START_SESSION_RESPONSE")) {
    const char* e = std::getenv("AWS_SSM_START_SESSION_RESPONSE");
    response = e ? e : "";
    unsetenv("AWS_SSM_START_SESSION_RESPONSE");
  }
  if (std::string_view(argv[3]) != "StartSession") {
    std::printf("Invalid Operation\n");
    return 0;
  }
  auto args = parse_session(response);
  if (!args) {
    std::printf("Cannot perform start session: the session response lacks SessionId, StreamUrl or TokenValue\n");
    return 0;
  }
  std::printf("\nStarting session with SessionId: %s\n", args->session_id.c_str());
  std::fflush(stdout);
  signal(SIGPIPE, SIG_IGN);
  asio::io_context ioc{1};
  int rc = 0;
  asio::co_spawn(ioc, session(*args), [&](std::exception_ptr, int r) {
    rc = r;
    ioc.stop();
  });
  ioc.run();
  g_term.restore();
  return rc;
}
