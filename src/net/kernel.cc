#include "net/kernel.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/crypto.h"
#include "common/strings.h"

namespace pier::net {

std::string instance_tag(const std::string& home) {
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(std::filesystem::absolute(home), ec);
  std::string path = ec ? home : abs.string();
  return str::hex(crypto::sha256(path)).substr(0, 4);
}

std::string netns_prefix(const std::string& tag) { return "pier-" + tag + "-"; }

std::vector<std::string> list_netns(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* d = opendir("/run/netns");
  if (!d) return out;
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.starts_with(prefix)) out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool netns_exists(const std::string& name) { return access(("/run/netns/" + name).c_str(), F_OK) == 0; }

namespace {

// Runs argv, stdin from `input` (a memfd), stdout collected; stderr kept
// for the error.
Result<std::string> run(const std::vector<std::string>& argv, const std::string& input = {}) {
  int in = memfd_create("pier-batch", MFD_CLOEXEC);
  if (in < 0) return Error::internal(fmt::format("memfd_create: {}", std::strerror(errno)));
  if (!input.empty() && write(in, input.data(), input.size()) != static_cast<ssize_t>(input.size())) {
    close(in);
    return Error::internal("memfd write failed");
  }
  lseek(in, 0, SEEK_SET);
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    for (int fd : {in, out[0], out[1], err[0], err[1]})
      if (fd >= 0) close(fd);
    return Error::internal(fmt::format("pipe: {}", std::strerror(errno)));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {in, out[0], out[1], err[0], err[1]}) close(fd);
    return Error::internal(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    dup2(in, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(in);
  close(out[1]);
  close(err[1]);
  std::string so, se;
  // Both pipes at once (a child filling one while we wait on the other
  // would hang), for at most 30 s: then the child is killed.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  char buf[4096];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (auto& p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(p.fd, buf, sizeof buf);
      if (got > 0) {
        (p.fd == out[0] ? so : se).append(buf, static_cast<size_t>(got));
      } else {
        p.fd = -1;
        --open_fds;
      }
    }
  }
  close(out[0]);
  close(err[0]);
  int status = 0;
  pid_t waited;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (waited < 0 || killed) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return Error::internal(fmt::format("`{}`: {}", cmd, killed ? "did not finish in 30 s" : std::strerror(errno)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return Error::internal(fmt::format("`{}` failed: {}", cmd, str::trim(se)));
  }
  return so;
}

}  // namespace

Status add_netns(const std::string& name) {
  auto r = run({"ip", "netns", "add", name});
  if (!r.ok()) return r.error();
  return {};
}

Status delete_netns(const std::string& name) {
  auto r = run({"ip", "netns", "delete", name});
  if (!r.ok()) return r.error();
  return {};
}

Status ip_batch(const std::string& netns, const std::string& commands) {
  std::vector<std::string> argv = {"ip"};
  if (!netns.empty()) argv.insert(argv.end(), {"-n", netns});
  argv.insert(argv.end(), {"-batch", "-"});
  auto r = run(argv, commands);
  if (!r.ok()) return r.error();
  return {};
}

Status ip_batch_force(const std::string& netns, const std::string& commands) {
  std::vector<std::string> argv = {"ip", "-force"};
  if (!netns.empty()) argv.insert(argv.end(), {"-n", netns});
  argv.insert(argv.end(), {"-batch", "-"});
  auto r = run(argv, commands);
  if (!r.ok()) return r.error();
  return {};
}

Status nft(const std::string& netns, const std::string& script) {
  auto r = run({"ip", "netns", "exec", netns, "nft", "-f", "-"}, script);
  if (!r.ok()) return r.error();
  return {};
}

Result<std::string> run_in(const std::string& netns, const std::vector<std::string>& argv) {
  std::vector<std::string> full;
  if (!netns.empty()) full = {"ip", "netns", "exec", netns};
  full.insert(full.end(), argv.begin(), argv.end());
  return run(full);
}

Result<std::vector<std::string>> links(const std::string& netns, const std::string& type) {
  std::vector<std::string> argv = {"ip", "-n", netns, "-o", "link", "show"};
  if (!type.empty()) argv.insert(argv.end(), {"type", type});
  PIER_ASSIGN(std::string out, run(argv));
  std::vector<std::string> names;
  // "3: pier-b1234: <BROADCAST,…" (a veth shows as "name@peer")
  size_t pos = 0;
  while (pos < out.size()) {
    auto eol = out.find('\n', pos);
    std::string line = out.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    pos = eol == std::string::npos ? out.size() : eol + 1;
    auto a = line.find(": ");
    if (a == std::string::npos) continue;
    auto b = line.find_first_of(":@", a + 2);
    names.push_back(line.substr(a + 2, b - a - 2));
  }
  return names;
}

}  // namespace pier::net
