// pier-monitor: one per container, started detached by runtime::Runtime::start.
// It runs `runc run -d`, becomes the container's parent (child subreaper), turns
// the container's stdout/stderr into JSON lines in the bundle's log file and
// records the exit status, so that both survive pierd dying or restarting.
//
//   pier-monitor --runc PATH --root RUNCROOT --bundle DIR --id ID [--ready-fd N]
//                [--drain-ms N] [--agent PROCESS_JSON]
//
// Files it writes in DIR (all JSON unless said otherwise):
//   monitor   {"pid": P, "start": T}        itself (T: /proc/P/stat starttime), first thing
//   runc.log  runc's own log (--log-format json): runc's errors, never the container's
//   pid       runc's --pid-file (plain number)
//   started   {"pid": P, "start": T, "t": MS}  once runc has started the container
//   log       one line per container output line: {"t": MS, "s": "stdout", "m": "..."}
//   exit      {"code": N, "signal": S, "t": MS}   (code is 128+S when killed by S)
//             {"error": "runc's message", "t": MS} when the container never ran
//   agent     with --agent: the managed agent (ECS Exec's), run inside the
//             container by `runc exec -d` once it runs, and again whenever it ends:
//             {"status": "RUNNING"|"STOPPED", "pid": P, "t": MS (last start),
//              "starts": N, "reason": "..."}
//   agent.log the agent's own stdout and stderr; agent-runc.log runc's log of its execs
// `exit` is written last (tmp + fsync + rename), after the output pipes were drained,
// so a reader that sees it also sees the complete log.
//
// On --ready-fd it writes "P <pid>\n" once the container runs or "E\n" when it
// could not start, then closes it. Only libc and libstdc++: it is small (one per
// container) and single-threaded, a plain poll loop.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

constexpr size_t kMaxLine = 16 * 1024;  // a longer line is flushed in parts

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s.remove_prefix(size_t(n));
  }
  return true;
}

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return true;
}

// Writes path atomically: tmp file, optional fsync, rename, fsync of the directory.
bool write_file_atomic(const std::string& dir, const std::string& name, std::string_view data,
                       bool sync) {
  std::string tmp = dir + "/." + name + ".tmp";
  std::string path = dir + "/" + name;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write_all(fd, data);
  if (ok && sync) ok = ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  if (sync) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return true;
}

// Field 22 of /proc/PID/stat: the start time in clock ticks since boot. Together
// with the pid it names one process (pids are reused).
std::string proc_start_time(int pid) {
  std::string stat;
  if (!read_file("/proc/" + std::to_string(pid) + "/stat", stat)) return {};
  size_t p = stat.rfind(')');
  if (p == std::string::npos) return {};
  // After ") " come fields 3.. ; starttime is field 22, i.e. the 20th after ')'.
  size_t i = p + 2;
  for (int field = 3; field < 22 && i < stat.size(); ++field) {
    i = stat.find(' ', i);
    if (i == std::string::npos) return {};
    ++i;
  }
  size_t e = stat.find(' ', i);
  return stat.substr(i, e == std::string::npos ? std::string::npos : e - i);
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not valid.
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return n;
}

// A JSON string literal of s; bytes that are not UTF-8 become U+FFFD (as Docker's
// json-file driver does), so every line stays valid JSON.
void json_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_len(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += char(c);
        }
    }
    ++i;
  }
  out += '"';
}

// Decodes the JSON string starting at s[i] (just after the opening quote). Enough
// for runc's own log lines: \uXXXX outside the BMP is kept as two 3-byte halves.
std::string json_unquote(std::string_view s, size_t i) {
  std::string out;
  for (; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    char e = s[++i];
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'u': {
        if (i + 4 >= s.size()) return out;
        unsigned cp = unsigned(std::strtoul(std::string(s.substr(i + 1, 4)).c_str(), nullptr, 16));
        i += 4;
        if (cp < 0x80) {
          out += char(cp);
        } else if (cp < 0x800) {
          out += char(0xC0 | (cp >> 6));
          out += char(0x80 | (cp & 0x3F));
        } else {
          out += char(0xE0 | (cp >> 12));
          out += char(0x80 | ((cp >> 6) & 0x3F));
          out += char(0x80 | (cp & 0x3F));
        }
        break;
      }
      default:
        out += e;
    }
  }
  return out;
}

// runc's error: the "msg" of every level=error line of its JSON log, joined.
std::string runc_error(const std::string& log_path, int status) {
  std::string log, msg;
  read_file(log_path, log);
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string_view line(log.data() + pos, end - pos);
    pos = end + 1;
    if (line.find("\"level\":\"error\"") == std::string_view::npos &&
        line.find("\"level\":\"fatal\"") == std::string_view::npos)
      continue;
    size_t m = line.find("\"msg\":\"");
    if (m == std::string_view::npos) continue;
    if (!msg.empty()) msg += "; ";
    msg += json_unquote(line, m + 7);
  }
  if (msg.empty()) {
    if (WIFEXITED(status)) {
      msg = WEXITSTATUS(status) == 127
                ? "cannot execute runc"
                : "runc exited with status " + std::to_string(WEXITSTATUS(status));
    } else {
      msg = "runc killed by signal " + std::to_string(WTERMSIG(status));
    }
  }
  return msg;
}

// Forks and runs `path argv…` with stdin/stdout/stderr on the given fds; -1 if
// the fork failed. What runc starts inherits our signal state: the child gets
// the defaults, as Docker gives them.
pid_t spawn(const std::string& path, const std::vector<const char*>& argv, int in, int out, int err) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGHUP, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::execv(path.c_str(), const_cast<char* const*>(argv.data()));
  ::_exit(127);
}

// One of the container's output pipes and the part of a line read so far.
struct Stream {
  const char* name;
  int fd = -1;
  std::string partial;
};

class Monitor {
 public:
  std::string runc, runc_root, bundle, id;
  int ready_fd = -1;
  int drain_ms = 2000;
  std::string agent;  // the agent's OCI process spec (runc exec --process), or ""

  int run();

 private:
  void emit(Stream& s, std::string_view line);
  void on_data(Stream& s, std::string_view data);
  bool read_stream(Stream& s);  // false at EOF or error
  void flush_partial(Stream& s);
  void reap();
  void runc_exited(int status);
  void container_exited(int status);
  void notify(std::string_view msg);
  void start_agent();
  void agent_runc_exited(int status);
  void agent_exited(int status);
  void write_agent(const char* status, const std::string& reason);

  int log_fd_ = -1;
  std::string out_;  // log lines waiting for one write
  Stream streams_[2] = {{"stdout"}, {"stderr"}};
  pid_t runc_pid_ = -1;
  bool runc_done_ = false;
  bool failed_ = false;
  pid_t container_pid_ = 0;
  bool container_done_ = false;
  int container_status_ = 0;
  int64_t exit_ms_ = 0;
  std::vector<std::pair<pid_t, int>> early_;  // reaped before the container's pid was known
  // The managed agent: `runc exec -d` (agent_runc_pid_) leaves it reparented to
  // us, a subreaper, so its end is ours to reap (agent_pid_).
  pid_t agent_runc_pid_ = 0, agent_pid_ = 0;
  std::vector<std::pair<pid_t, int>> agent_early_;  // reaped while its runc ran
  int64_t agent_next_ms_ = -1;   // mono time of the next start, -1 = none due
  int64_t agent_backoff_ms_ = 1000;
  int64_t agent_started_ms_ = 0, agent_started_mono_ = 0;
  int agent_starts_ = 0;
};

void Monitor::write_agent(const char* status, const std::string& reason) {
  std::string a = "{\"status\":\"" + std::string(status) + "\",\"pid\":" + std::to_string(agent_pid_) +
                  ",\"t\":" + std::to_string(agent_started_ms_) + ",\"starts\":" + std::to_string(agent_starts_) +
                  ",\"reason\":";
  json_string(a, reason);
  a += "}\n";
  write_file_atomic(bundle, "agent", a, false);
}

void Monitor::start_agent() {
  agent_next_ms_ = -1;
  if (container_done_ || failed_) return;
  std::string log_arg = bundle + "/agent-runc.log";
  std::string pid_arg = bundle + "/agent.pid";
  ::unlink(pid_arg.c_str());
  std::vector<const char*> argv = {runc.c_str(), "--root", runc_root.c_str(), "--log", log_arg.c_str(),
                                   "--log-format", "json", "exec", "-d", "--pid-file", pid_arg.c_str(),
                                   "--process", agent.c_str(), id.c_str(), nullptr};
  // The agent's log starts again past 4 MiB (one that cannot connect says so every few seconds).
  struct stat st{};
  bool big = ::stat((bundle + "/agent.log").c_str(), &st) == 0 && st.st_size > 4 * 1024 * 1024;
  int out = ::open((bundle + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (big ? O_TRUNC : 0), 0640);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  // runc hands its own stdio to a detached process: the agent writes agent.log.
  agent_runc_pid_ = spawn(runc, argv, devnull, out >= 0 ? out : devnull, out >= 0 ? out : devnull);
  if (out >= 0) ::close(out);
  if (devnull >= 0) ::close(devnull);
  ++agent_starts_;
  agent_started_ms_ = now_ms();
  agent_started_mono_ = mono_ms();
  if (agent_runc_pid_ < 0) {
    agent_runc_pid_ = 0;
    agent_exited(W_EXITCODE(127, 0));
  }
}

void Monitor::agent_runc_exited(int status) {
  agent_runc_pid_ = 0;
  std::string pid_text;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && read_file(bundle + "/agent.pid", pid_text))
    agent_pid_ = std::atoi(pid_text.c_str());
  if (agent_pid_ <= 0) {
    agent_pid_ = 0;
    if (container_done_) return;
    write_agent("STOPPED", "unable to start ExecuteCommandAgent [create]: " +
                               runc_error(bundle + "/agent-runc.log", status));
    agent_next_ms_ = mono_ms() + agent_backoff_ms_;
    agent_backoff_ms_ = std::min<int64_t>(agent_backoff_ms_ * 2, 30000);
    return;
  }
  write_agent("RUNNING", agent_starts_ > 1 ? "ExecuteCommandAgent restarted" : "ExecuteCommandAgent started");
  for (auto& [pid, st] : agent_early_)
    if (pid == agent_pid_) agent_exited(st);
  agent_early_.clear();
}

void Monitor::agent_exited(int status) {
  int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  agent_pid_ = 0;
  if (container_done_) return;
  // One that ran a minute was healthy: start again soon. Otherwise back off, up to 30 s.
  if (mono_ms() - agent_started_mono_ > 60000) agent_backoff_ms_ = 1000;
  write_agent("STOPPED", "ExecuteCommandAgent process exited with exit code: " + std::to_string(code));
  agent_next_ms_ = mono_ms() + agent_backoff_ms_;
  agent_backoff_ms_ = std::min<int64_t>(agent_backoff_ms_ * 2, 30000);
}

void Monitor::notify(std::string_view msg) {
  if (ready_fd < 0) return;
  write_all(ready_fd, msg);
  ::close(ready_fd);
  ready_fd = -1;
}

void Monitor::emit(Stream& s, std::string_view line) {
  out_ += "{\"t\":";
  out_ += std::to_string(now_ms());
  out_ += ",\"s\":\"";
  out_ += s.name;
  out_ += "\",\"m\":";
  json_string(out_, line);
  out_ += "}\n";
}

void Monitor::on_data(Stream& s, std::string_view data) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    bool complete = nl != std::string_view::npos;
    std::string_view seg = data.substr(0, complete ? nl : data.size());
    data.remove_prefix(complete ? nl + 1 : data.size());
    if (complete && s.partial.empty() && seg.size() <= kMaxLine) {
      emit(s, seg);
      continue;
    }
    s.partial.append(seg);
    // A line longer than kMaxLine goes out in parts, each cut at a UTF-8 boundary
    // (at most 3 bytes back) so that no character is split.
    while (s.partial.size() > kMaxLine || (!complete && s.partial.size() == kMaxLine)) {
      size_t cut = kMaxLine;
      for (size_t k = 0; k < 3 && (static_cast<unsigned char>(s.partial[cut]) & 0xC0) == 0x80; ++k)
        --cut;
      emit(s, std::string_view(s.partial).substr(0, cut));
      s.partial.erase(0, cut);
    }
    if (complete) {
      emit(s, s.partial);
      s.partial.clear();
    }
  }
}

void Monitor::flush_partial(Stream& s) {
  if (!s.partial.empty()) emit(s, s.partial);
  s.partial.clear();
}

bool Monitor::read_stream(Stream& s) {
  char buf[16384];
  for (int rounds = 0; rounds < 8; ++rounds) {
    ssize_t n = ::read(s.fd, buf, sizeof buf);
    if (n > 0) {
      on_data(s, std::string_view(buf, size_t(n)));
      if (size_t(n) < sizeof buf) return true;
      continue;
    }
    if (n < 0 && (errno == EINTR)) continue;
    if (n < 0 && errno == EAGAIN) return true;
    flush_partial(s);
    ::close(s.fd);
    s.fd = -1;
    return false;
  }
  return true;
}

void Monitor::container_exited(int status) {
  container_done_ = true;
  container_status_ = status;
  exit_ms_ = now_ms();
  if (!agent.empty()) {
    agent_next_ms_ = -1;
    write_agent("STOPPED", "Received Container Stopped event");
  }
}

void Monitor::runc_exited(int status) {
  runc_done_ = true;
  std::string pid_text;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && read_file(bundle + "/pid", pid_text)) {
    container_pid_ = std::atoi(pid_text.c_str());
  }
  if (container_pid_ <= 0) {
    failed_ = true;
    std::string exit = "{\"error\":";
    json_string(exit, runc_error(bundle + "/runc.log", status));
    exit += ",\"t\":" + std::to_string(now_ms()) + "}\n";
    write_file_atomic(bundle, "exit", exit, true);
    notify("E\n");
    return;
  }
  std::string start = proc_start_time(container_pid_);
  std::string started = "{\"pid\":" + std::to_string(container_pid_) +
                        ",\"start\":" + (start.empty() ? "0" : start) +
                        ",\"t\":" + std::to_string(now_ms()) + "}\n";
  write_file_atomic(bundle, "started", started, false);
  for (auto& [pid, st] : early_) {
    if (pid == container_pid_) container_exited(st);
  }
  early_.clear();
  notify("P " + std::to_string(container_pid_) + "\n");
  if (!agent.empty() && !container_done_) start_agent();
}

void Monitor::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == runc_pid_) {
      runc_exited(status);
    } else if (agent_runc_pid_ > 0 && pid == agent_runc_pid_) {
      agent_runc_exited(status);
    } else if (agent_pid_ > 0 && pid == agent_pid_) {
      agent_exited(status);
    } else if (agent_runc_pid_ > 0 && container_pid_ > 0 && pid != container_pid_) {
      agent_early_.emplace_back(pid, status);  // the agent, reparented before its runc exited
    } else if (container_pid_ > 0 && pid == container_pid_) {
      container_exited(status);
    } else if (container_pid_ == 0 && !runc_done_) {
      // The container's init may exit (and be reparented to us) before runc does.
      early_.emplace_back(pid, status);
    }
  }
}

int Monitor::run() {
  if (::chdir("/") != 0) return 1;
  std::string self = "{\"pid\":" + std::to_string(::getpid()) +
                     ",\"start\":" + proc_start_time(::getpid()) + "}\n";
  write_file_atomic(bundle, "monitor", self, false);

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  log_fd_ = ::open((bundle + "/log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int out[2], err[2];
  if (sfd < 0 || log_fd_ < 0 || devnull < 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(err, O_CLOEXEC) != 0) {
    std::string exit = "{\"error\":";
    json_string(exit, std::string("pier-monitor: ") + std::strerror(errno));
    exit += ",\"t\":" + std::to_string(now_ms()) + "}\n";
    write_file_atomic(bundle, "exit", exit, true);
    notify("E\n");
    return 1;
  }

  std::string log_arg = bundle + "/runc.log";
  std::string pid_arg = bundle + "/pid";
  std::vector<const char*> argv = {runc.c_str(),   "--root",        runc_root.c_str(),
                                   "--log",        log_arg.c_str(), "--log-format",
                                   "json",         "run",           "-d",
                                   "--pid-file",   pid_arg.c_str(), "--bundle",
                                   bundle.c_str(), id.c_str(),      nullptr};
  runc_pid_ = spawn(runc, argv, devnull, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  ::close(devnull);
  if (runc_pid_ < 0) {
    runc_exited(W_EXITCODE(127, 0));
    return 1;
  }
  streams_[0].fd = out[0];
  streams_[1].fd = err[0];
  for (auto& s : streams_) ::fcntl(s.fd, F_SETFL, O_NONBLOCK);

  int64_t drain_deadline = -1;
  for (;;) {
    if ((container_done_ || failed_) && drain_deadline < 0) drain_deadline = mono_ms() + drain_ms;
    bool open = streams_[0].fd >= 0 || streams_[1].fd >= 0;
    if (drain_deadline >= 0 && (!open || mono_ms() >= drain_deadline)) break;

    pollfd fds[3];
    int n = 0;
    fds[n++] = {sfd, POLLIN, 0};
    for (auto& s : streams_) {
      if (s.fd >= 0) fds[n++] = {s.fd, POLLIN, 0};
    }
    if (agent_next_ms_ >= 0 && mono_ms() >= agent_next_ms_) start_agent();
    int64_t wake = drain_deadline;
    if (agent_next_ms_ >= 0 && (wake < 0 || agent_next_ms_ < wake)) wake = agent_next_ms_;
    int timeout = wake < 0 ? -1 : int(std::max<int64_t>(0, wake - mono_ms()));
    int r = ::poll(fds, nfds_t(n), timeout);
    if (r < 0 && errno != EINTR) break;
    if (r > 0) {
      for (int i = 1; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        for (auto& s : streams_) {
          if (s.fd == fds[i].fd) read_stream(s);
        }
      }
      if (fds[0].revents) {
        signalfd_siginfo si;
        while (::read(sfd, &si, sizeof si) == sizeof si) {
        }
        reap();
      }
    }
    if (!out_.empty()) {
      write_all(log_fd_, out_);
      out_.clear();
    }
  }
  for (auto& s : streams_) flush_partial(s);
  if (!out_.empty()) write_all(log_fd_, out_);
  ::close(log_fd_);
  if (failed_) return 1;

  int code, sig = 0;
  if (WIFSIGNALED(container_status_)) {
    sig = WTERMSIG(container_status_);
    code = 128 + sig;
  } else {
    code = WEXITSTATUS(container_status_);
  }
  std::string exit = "{\"code\":" + std::to_string(code) + ",\"signal\":" + std::to_string(sig) +
                     ",\"t\":" + std::to_string(exit_ms_) + "}\n";
  write_file_atomic(bundle, "exit", exit, true);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Monitor m;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--runc")
      m.runc = v;
    else if (k == "--root")
      m.runc_root = v;
    else if (k == "--bundle")
      m.bundle = v;
    else if (k == "--id")
      m.id = v;
    else if (k == "--ready-fd")
      m.ready_fd = std::atoi(v);
    else if (k == "--drain-ms")
      m.drain_ms = std::atoi(v);
    else if (k == "--agent")
      m.agent = v;
    else {
      std::fprintf(stderr, "pier-monitor: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (m.runc.empty() || m.runc_root.empty() || m.bundle.empty() || m.id.empty()) {
    std::fprintf(stderr,
                 "usage: pier-monitor --runc PATH --root RUNCROOT --bundle DIR --id ID "
                 "[--ready-fd N] [--drain-ms N] [--agent PROCESS_JSON]\n");
    return 2;
  }
  // Whatever pierd had set up: defaults, except the two that would end us when
  // pierd's session or our readers go away.
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
  }
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);

  // Detach: the process pierd spawned exits at once (pierd reaps it); the child,
  // reparented to init (or to pierd's subreaper), carries on in the new session.
  if (std::getenv("PIER_MONITOR_FOREGROUND") == nullptr) {
    pid_t pid = ::fork();
    if (pid < 0) return 1;
    if (pid > 0) ::_exit(0);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  return m.run();
}
