#include "client/session.h"

#include <boost/asio/as_tuple.hpp>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "client/ws_writer.h"
#include "exec/message.h"
#include "exec/payloads.h"
#include "exec/stream.h"

namespace pier::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

// The terminal as it was, restored on every way out.
struct Terminal {
  bool saved = false;
  termios original{};
  void raw() {
    if (saved || !isatty(0) || tcgetattr(0, &original) != 0) return;
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

struct State {
  SessionOptions opts;
  std::unique_ptr<WebSocket> ws;
  std::vector<std::unique_ptr<WebSocket>> retired;  // an old writer may still finish a write on one
  std::shared_ptr<WsWriter> writer;
  exec::StreamSender sender{std::string(exec::message_type::kInputStreamData), exec::SenderPolicy::client(),
                            exec::steady_clock()};
  exec::StreamReceiver receiver{exec::ReceiverPolicy::client()};
  std::string client_id = exec::Uuid::random().str();
  bool started = false;  // the first Output from the agent decides the session type (§5.8)
  bool done = false;
  bool eof = false;
  exec::TerminalSize last{0, 0};
};

void send_input(State& st, exec::PayloadType pt, std::string payload) {
  auto f = st.sender.send(pt, std::move(payload));
  if (f.ok()) st.writer->send(std::move(f).value());
}

// The terminal's size, sent when it differs from the last one sent.
void send_size(State& st) {
  winsize w{};
  exec::TerminalSize sz{300, 100};
  if (ioctl(st.opts.out_fd, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) sz = {w.ws_col, w.ws_row};
  if (sz.cols != st.last.cols || sz.rows != st.last.rows) {
    st.last = sz;
    send_input(st, exec::PayloadType::kSize, exec::to_json(sz));
  }
}

asio::awaitable<void> keyboard(std::shared_ptr<State> st) {
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor in(ex, dup(0));
  std::string buf(1024, '\0');
  for (;;) {
    auto [ec, n] = co_await in.async_read_some(asio::buffer(buf), kTuple);
    if (st->done) co_return;
    if (ec || n == 0) {
      st->eof = true;
      st->ws->close();
      co_return;
    }
    std::string data = buf.substr(0, n);
    if (data == "\n") data = "\r";  // Enter arrives as \n with ICRNL on
    if (st->started) send_input(*st, exec::PayloadType::kOutput, std::move(data));
  }
}

asio::awaitable<void> ticker(std::shared_ptr<State> st) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  int ticks = 0;
  while (!st->done) {
    t.expires_after(100ms);
    co_await t.async_wait(kTuple);
    if (st->done) co_return;
    for (auto& f : st->sender.tick()) st->writer->send(std::move(f));
    // The size when the session starts (see run_session), then every
    // 500 ms, and at once on SIGWINCH (see signals()).
    if (!st->opts.terminal || !st->started || ++ticks % 5 != 0) continue;
    send_size(*st);
  }
}

asio::awaitable<void> signals(std::shared_ptr<State> st) {
  // The AWS CLI starts the plugin with these ignored; installing handlers
  // undoes that, and each becomes the control byte the remote terminal expects.
  asio::signal_set set(co_await asio::this_coro::executor, SIGINT, SIGQUIT, SIGTSTP);
  set.add(SIGWINCH);
  for (;;) {
    auto [ec, sig] = co_await set.async_wait(kTuple);
    if (ec || st->done) co_return;
    if (sig == SIGWINCH) {
      if (st->started) send_size(*st);
      continue;
    }
    char c = sig == SIGINT ? '\x03' : sig == SIGQUIT ? '\x1c' : '\x1a';
    if (st->started) send_input(*st, exec::PayloadType::kOutput, std::string(1, c));
  }
}

// Opens (or reopens) the data channel with `token` and sends the open frame;
// then everything still unacknowledged again.
asio::awaitable<Status> open_channel(State& st, const std::string& stream_url, const std::string& token) {
  auto url = Url::parse(stream_url);
  if (!url.ok()) co_return url.error();
  auto ws = co_await WebSocket::connect(*url, {}, st.opts.connect);
  if (!ws.ok()) co_return ws.error();
  if (st.writer) st.writer->stop();
  if (st.ws) st.retired.push_back(std::move(st.ws));
  st.ws = std::move(ws).value();
  st.writer = std::make_shared<WsWriter>(*st.ws);
  exec::ClientOpenDataChannel open{"1.0", exec::Uuid::random().str(), token, st.client_id, st.opts.client_version};
  st.writer->send(exec::to_json(open), /*text=*/true);
  for (auto& f : st.sender.all_buffered()) st.writer->send(std::move(f));
  co_return Status{};
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

void restore_terminal() { g_term.restore(); }

asio::awaitable<SessionEnd> run_session(SessionTicket ticket, SessionOptions opts) {
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<State>();
  st->opts = std::move(opts);
  SessionEnd end;
  if (auto o = co_await open_channel(*st, ticket.stream_url, ticket.token); !o.ok()) {
    end.error = o.error().message;
    co_return end;
  }
  if (st->opts.terminal) {
    g_term.raw();
    asio::co_spawn(ex, keyboard(st), asio::detached);
    asio::co_spawn(ex, signals(st), asio::detached);
  }
  asio::co_spawn(ex, ticker(st), asio::detached);
  asio::steady_timer backoff(ex);
  for (;;) {
    beast::flat_buffer buf;
    auto ec = co_await st->ws->read(buf);
    if (ec) {
      if (st->eof) {
        end.error = "EOF";
        break;
      }
      if (!st->opts.resume) {
        end.error = "the data channel closed: " + ec.message();
        break;
      }
      // Reconnect: a fresh token for the same session, then the stream again.
      Status again = Error::internal("not reconnected");
      std::string why;
      for (int attempt = 0; attempt < st->opts.max_attempts && !again.ok(); ++attempt) {
        backoff.expires_after(std::min<std::chrono::milliseconds>(std::chrono::milliseconds(150 << attempt), 5s));
        co_await backoff.async_wait(kTuple);
        auto t = co_await st->opts.resume();
        if (!t.ok()) {
          why = t.error().message;
          again = t.error();
          continue;
        }
        if (t->token.empty()) {
          end.error = "Session: " + ticket.session_id + " timed out.";
          break;
        }
        again = co_await open_channel(*st, t->stream_url.empty() ? ticket.stream_url : t->stream_url, t->token);
        if (!again.ok()) why = again.error().message;
      }
      if (!end.error.empty()) break;
      if (!again.ok()) {
        end.error = "the session was lost: " + why;
        break;
      }
      continue;
    }
    auto m = exec::parse(beast::buffers_to_string(buf.data()));
    if (!m.ok() || !exec::validate(*m, exec::Receiver::kClient).ok()) continue;
    if (m->type == exec::message_type::kChannelClosed) {
      end.closed = true;
      if (auto c = exec::parse_channel_closed(m->payload); c.ok()) end.output = c->output;
      break;
    }
    if (m->type == exec::message_type::kAcknowledge) {
      if (auto a = exec::parse_acknowledge(m->payload); a.ok()) st->sender.on_ack(a->sequence);
      continue;
    }
    if (m->type != exec::message_type::kOutputStreamData) continue;
    if (!st->started && m->sequence == st->receiver.expected() && m->payload_type == exec::PayloadType::kOutput) {
      st->started = true;
      if (st->opts.terminal) send_size(*st);  // the remote pty starts at 0x0
    }
    auto out = st->receiver.on_message(*m);
    if (out.ack) {
      auto ack = exec::serialize(exec::make_ack(*m));
      if (ack.ok()) st->writer->send(std::move(ack).value());
    }
    for (const auto& d : out.deliver) {
      switch (d.payload_type) {
        case exec::PayloadType::kOutput:
          write_all(st->opts.out_fd, d.payload);
          break;
        case exec::PayloadType::kStdErr:
          write_all(st->opts.err_fd, d.payload);
          break;
        case exec::PayloadType::kExitCode:
          if (d.payload.starts_with("EXIT_CODE: ")) end.exit_code = std::atoi(d.payload.c_str() + 11);
          break;
        default:  // handshake and encryption payloads: not used by pier's agent
          break;
      }
    }
  }
  // Let the last acknowledgements go out before the socket closes.
  for (int i = 0; i < 50 && st->writer && !st->writer->idle(); ++i) {
    backoff.expires_after(10ms);
    co_await backoff.async_wait(kTuple);
  }
  st->done = true;
  st->ws->close();
  g_term.restore();
  co_return end;
}

}  // namespace pier::client
