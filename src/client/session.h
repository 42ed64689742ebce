// The client end of a Session Manager data channel (§5), shared by our
// session-manager-plugin and `pier exec`: opens the stream URL with the
// token, acknowledges and orders the agent's output, sends input with
// retransmission, and when the WebSocket drops asks for a fresh token
// (ResumeSession) and carries on where it was — sequence numbers and
// unacknowledged input survive the reconnect (§5.12).
#pragma once

#include <functional>
#include <string>

#include "client/transport.h"

namespace pier::client {

struct SessionTicket {
  std::string session_id, stream_url, token;
};

struct SessionOptions {
  // A terminal session: stdin forwarded (raw mode when it is a tty), the
  // terminal's size at start and on change, Ctrl-C / Ctrl-\ / Ctrl-Z as
  // their control bytes. Otherwise stdin is not read at all.
  bool terminal = true;
  int out_fd = 1, err_fd = 2;  // Output and StdErr payloads
  // A fresh ticket for the same session (ResumeSession); an empty token
  // means the session is over. Unset: no reconnects.
  std::function<boost::asio::awaitable<Result<SessionTicket>>()> resume;
  ConnectOptions connect;
  std::string client_version = "1.2.677.0";
  // How many reconnects in a row before giving up (backoff 150 ms doubling,
  // capped at 5 s).
  int max_attempts = 8;
};

struct SessionEnd {
  bool closed = false;      // the service closed the channel (channel_closed)
  std::string output;       // channel_closed's Output (why, when it failed)
  int exit_code = 0;        // ExitCode payload of non-interactive sessions
  std::string error;        // set when the session was lost instead
};

// Runs the session to its end on the caller's executor.
boost::asio::awaitable<SessionEnd> run_session(SessionTicket ticket, SessionOptions opts);

// Restores the terminal if run_session changed it (safe to call any time,
// e.g. from an exit path).
void restore_terminal();

}  // namespace pier::client
