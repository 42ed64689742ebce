#include "runtime/container.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

extern char** environ;

namespace pier::runtime {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr const char* kInitPath = "/sbin/docker-init";
constexpr const char* kTiniHost = "/usr/bin/tini-static";
constexpr int kStartTimeoutMs = 60000;

std::string errno_text(int e) { return std::strerror(e); }

// Reads fd into out (at most cap bytes kept) until EOF, a newline when
// to_newline, or timeout_ms; returns whether the time ran out.
bool read_until(int fd, int timeout_ms, size_t cap, bool to_newline, std::string& out) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
                       .count());
    if (left <= 0) return true;
    pollfd pfd{fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    char buf[4096];
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    if (out.size() < cap) out.append(buf, size_t(got));
    if (to_newline && out.find('\n') != std::string::npos) return false;
  }
}

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return true;
}

Status write_file(const std::string& path, std::string_view data, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Error::internal("open '" + path + "': " + errno_text(errno));
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Error::internal("write '" + path + "': " + errno_text(e));
    }
    data.remove_prefix(size_t(n));
  }
  ::close(fd);
  return {};
}

std::optional<json::object> read_json(const std::string& path) {
  std::string text;
  if (!read_file(path, text)) return std::nullopt;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

int64_t get_int(const json::object& o, std::string_view key, int64_t def = 0) {
  auto it = o.find(key);
  if (it == o.end()) return def;
  if (it->value().is_int64()) return it->value().as_int64();
  if (it->value().is_uint64()) return int64_t(it->value().as_uint64());
  return def;
}

// Field 22 of /proc/PID/stat (start time in ticks since boot); "" if no such process.
std::string proc_start_time(int pid) {
  std::string stat;
  if (pid <= 0 || !read_file("/proc/" + std::to_string(pid) + "/stat", stat)) return {};
  size_t p = stat.rfind(')');
  if (p == std::string::npos) return {};
  size_t i = p + 2;
  for (int field = 3; field < 22 && i < stat.size(); ++field) {
    i = stat.find(' ', i);
    if (i == std::string::npos) return {};
    ++i;
  }
  size_t e = stat.find(' ', i);
  return stat.substr(i, e == std::string::npos ? std::string::npos : e - i);
}

// The process state letter of /proc/PID/stat ('Z' for a zombie); 0 if gone.
char proc_state(int pid) {
  std::string stat;
  if (pid <= 0 || !read_file("/proc/" + std::to_string(pid) + "/stat", stat)) return 0;
  size_t p = stat.rfind(')');
  return p != std::string::npos && p + 2 < stat.size() ? stat[p + 2] : 0;
}

// A process recorded as {"pid": P, "start": T}: is it still that process (and alive)?
bool same_process(int pid, int64_t start) {
  if (pid <= 0) return false;
  std::string now = proc_start_time(pid);
  if (now.empty() || (start != 0 && now != std::to_string(start))) return false;
  char st = proc_state(pid);
  return st != 0 && st != 'Z' && st != 'X';
}

int open_high(const char* path, int flags) {
  int fd = ::open(path, flags | O_CLOEXEC);
  if (fd < 0) return -1;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return high;
}

struct CommandResult {
  int status = -1;     // waitpid status
  std::string output;  // stdout and stderr
};

// Runs argv (argv[0] an absolute path) with stdin /dev/null and stdout+stderr
// captured through a pipe (fine for commands that leave no process behind).
Result<CommandResult> run_command(const std::vector<std::string>& argv, int timeout_ms = 30000) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::internal("pipe: " + errno_text(errno));
  int devnull = open_high("/dev/null", O_RDWR);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGHUP);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, cargv[0], &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(p[1]);
  if (devnull >= 0) ::close(devnull);
  if (rc != 0) {
    ::close(p[0]);
    return Error::internal("cannot run '" + argv[0] + "': " + errno_text(rc));
  }
  CommandResult r;
  bool timed_out = read_until(p[0], timeout_ms, 65536, false, r.output);
  ::close(p[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return Error::internal("'" + argv[0] + " " + (argv.size() > 1 ? argv[1] : "") + "' timed out");
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
  return s.substr(i);
}

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* d : {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"}) {
    std::string candidate = d + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

// Octal escapes of /proc/self/mountinfo (\040 for a space).
std::string unescape_mount_field(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct MountInfo {
  std::string root, mount_point, fstype, super_options;
};

std::vector<MountInfo> mountinfo() {
  std::vector<MountInfo> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mp;
    ls >> id >> parent >> devno >> root >> mp;
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream rest(line.substr(sep + 3));
    MountInfo m;
    std::string source;
    rest >> m.fstype >> source >> m.super_options;
    m.root = unescape_mount_field(root);
    m.mount_point = unescape_mount_field(mp);
    out.push_back(std::move(m));
  }
  return out;
}

bool path_under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

// This process's own cgroup directory in every mounted hierarchy (v1 and cgroup2).
std::vector<std::string> own_cgroup_dirs() {
  std::vector<std::string> dirs;
  std::vector<MountInfo> mounts = mountinfo();
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    for (const MountInfo& m : mounts) {
      bool match = false;
      if (controllers.empty()) {
        match = m.fstype == "cgroup2";
      } else if (m.fstype == "cgroup") {
        std::set<std::string> opts;
        std::stringstream ss(m.super_options);
        std::string o;
        while (std::getline(ss, o, ',')) opts.insert(o);
        match = true;
        std::stringstream cs(controllers);
        while (std::getline(cs, o, ',')) match = match && opts.count(o) > 0;
      }
      if (!match) continue;
      // The mount shows the hierarchy from m.root down.
      std::string rel = path;
      if (m.root != "/" && (rel == m.root || path_under(rel, m.root)))
        rel = rel.substr(m.root.size());
      if (rel.empty()) rel = "/";
      dirs.push_back(m.mount_point + (rel == "/" ? "" : rel));
      break;
    }
  }
  return dirs;
}

bool has_memsw() {
  static const bool yes = [] {
    for (const std::string& d : own_cgroup_dirs()) {
      if (::access((d + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) return true;
    }
    return false;
  }();
  return yes;
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 200 || id[0] == '.' || id[0] == '-') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// --- users ---------------------------------------------------------------------

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0, gid = 0;
  std::string home;
};
struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

std::optional<uint32_t> parse_id(const std::string& s) {
  if (s.empty() || s.size() > 10 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t v = std::stoull(s);
  if (v > 0xFFFFFFFFull) return std::nullopt;
  return uint32_t(v);
}

// The image's file REL (e.g. "etc/passwd"): the topmost layer that has it as a
// regular file (a symlink is not followed: it would point into the host).
std::optional<std::string> image_file(const std::vector<std::string>& lower_dirs,
                                      const std::string& rel) {
  for (auto it = lower_dirs.rbegin(); it != lower_dirs.rend(); ++it) {
    std::string path = *it + "/" + rel;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      // A whiteout of the parent or the file hides the lower layers.
      std::string wh = *it + "/etc/.wh." + rel.substr(rel.rfind('/') + 1);
      if (::lstat(wh.c_str(), &st) == 0) return std::nullopt;
      continue;
    }
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) return std::nullopt;  // overlay whiteout
    if (!S_ISREG(st.st_mode)) return std::nullopt;
    std::string text;
    if (read_file(path, text)) return text;
    return std::nullopt;
  }
  return std::nullopt;
}

std::vector<PasswdEntry> parse_passwd(const std::string& text) {
  std::vector<PasswdEntry> out;
  for (const std::string& line : split(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ':');
    if (f.size() < 4) continue;
    auto uid = parse_id(f[2]), gid = parse_id(f[3]);
    if (!uid || !gid) continue;
    out.push_back({f[0], *uid, *gid, f.size() > 5 ? f[5] : ""});
  }
  return out;
}

std::vector<GroupEntry> parse_group(const std::string& text) {
  std::vector<GroupEntry> out;
  for (const std::string& line : split(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ':');
    if (f.size() < 3) continue;
    auto gid = parse_id(f[2]);
    if (!gid) continue;
    GroupEntry g{f[0], *gid, {}};
    if (f.size() > 3 && !f[3].empty()) g.members = split(f[3], ',');
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

Result<ExecUser> resolve_user(const std::vector<std::string>& lower_dirs, const std::string& user) {
  std::string user_part = user, group_part;
  bool has_group = false;
  if (size_t c = user.find(':'); c != std::string::npos) {
    user_part = user.substr(0, c);
    group_part = user.substr(c + 1);
    has_group = true;
  }
  std::vector<PasswdEntry> passwd;
  if (auto text = image_file(lower_dirs, "etc/passwd")) passwd = parse_passwd(*text);
  std::vector<GroupEntry> groups;
  if (auto text = image_file(lower_dirs, "etc/group")) groups = parse_group(*text);

  ExecUser u;
  const PasswdEntry* entry = nullptr;
  if (user_part.empty()) user_part = "0";
  if (auto uid = parse_id(user_part)) {
    u.uid = *uid;
    for (const auto& p : passwd) {
      if (p.uid == *uid) {
        entry = &p;
        break;
      }
    }
  } else {
    for (const auto& p : passwd) {
      if (p.name == user_part) {
        entry = &p;
        break;
      }
    }
    if (!entry) {
      return Error::invalid(
          "CannotStartContainerError",
          "unable to find user " + user_part + ": no matching entries in passwd file");
    }
    u.uid = entry->uid;
  }
  if (entry) {
    u.gid = entry->gid;
    if (!entry->home.empty()) u.home = entry->home;
  }
  if (has_group && !group_part.empty()) {
    if (auto gid = parse_id(group_part)) {
      u.gid = *gid;
    } else {
      const GroupEntry* g = nullptr;
      for (const auto& e : groups) {
        if (e.name == group_part) {
          g = &e;
          break;
        }
      }
      if (!g) {
        return Error::invalid(
            "CannotStartContainerError",
            "unable to find group " + group_part + ": no matching entries in group file");
      }
      u.gid = g->gid;
    }
  } else if (entry) {
    // Supplementary groups: those listing the user as a member (as Docker does
    // when no group is given).
    for (const auto& g : groups) {
      if (g.gid == u.gid) continue;
      if (std::find(g.members.begin(), g.members.end(), entry->name) != g.members.end() &&
          std::find(u.additional_gids.begin(), u.additional_gids.end(), g.gid) ==
              u.additional_gids.end())
        u.additional_gids.push_back(g.gid);
    }
  }
  return u;
}

Result<std::string> oci_config(const ContainerSpec& spec) {
  if (spec.args.empty()) return Error::invalid("CannotStartContainerError", "no command to run");
  PIER_ASSIGN(ExecUser user, resolve_user(spec.lower_dirs, spec.user));

  json::array args;
  if (spec.init) {
    args.emplace_back(kInitPath);
    args.emplace_back("--");
  }
  for (const auto& a : spec.args) args.emplace_back(a);
  json::array env;
  bool has_home = false;
  for (const auto& e : spec.env) {
    if (e.rfind("HOME=", 0) == 0) has_home = true;
    env.emplace_back(e);
  }
  if (!has_home) env.emplace_back("HOME=" + user.home);

  json::array caps;
  for (const char* c : {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"})
    caps.emplace_back(c);

  json::array gids;
  for (uint32_t g : user.additional_gids) gids.emplace_back(g);
  json::object process{
      {"terminal", false},
      {"user", {{"uid", user.uid}, {"gid", user.gid}, {"additionalGids", gids}}},
      {"args", args},
      {"env", env},
      {"cwd", spec.cwd.empty() ? "/" : spec.cwd},
      // The inheritable set stays empty (CVE-2022-24769), as in Docker.
      {"capabilities",
       {{"bounding", caps},
        {"effective", caps},
        {"permitted", caps},
        {"inheritable", json::array()}}},
      {"noNewPrivileges", false},
  };
  if (!spec.rlimits.empty()) {
    json::array rl;
    for (const auto& r : spec.rlimits)
      rl.push_back({{"type", r.type}, {"hard", r.hard}, {"soft", r.soft}});
    process["rlimits"] = std::move(rl);
  }

  auto opts = [](std::initializer_list<const char*> l) {
    json::array a;
    for (const char* s : l) a.emplace_back(s);
    return a;
  };
  json::array mounts{
      json::object{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      json::object{{"destination", "/dev"},
                   {"type", "tmpfs"},
                   {"source", "tmpfs"},
                   {"options", opts({"nosuid", "strictatime", "mode=755", "size=65536k"})}},
      json::object{{"destination", "/dev/pts"},
                   {"type", "devpts"},
                   {"source", "devpts"},
                   {"options", opts({"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                     "mode=0620", "gid=5"})}},
      json::object{{"destination", "/dev/shm"},
                   {"type", "tmpfs"},
                   {"source", "shm"},
                   {"options", opts({"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"})}},
      json::object{{"destination", "/dev/mqueue"},
                   {"type", "mqueue"},
                   {"source", "mqueue"},
                   {"options", opts({"nosuid", "noexec", "nodev"})}},
      json::object{{"destination", "/sys"},
                   {"type", "sysfs"},
                   {"source", "sysfs"},
                   {"options", opts({"nosuid", "noexec", "nodev", "ro"})}},
      json::object{{"destination", "/sys/fs/cgroup"},
                   {"type", "cgroup"},
                   {"source", "cgroup"},
                   {"options", opts({"nosuid", "noexec", "nodev", "relatime", "ro"})}},
  };
  if (spec.init) {
    mounts.push_back({{"destination", kInitPath},
                      {"type", "bind"},
                      {"source", kTiniHost},
                      {"options", opts({"rbind", "rprivate", "ro"})}});
  }
  for (const auto& m : spec.mounts) {
    if (m.source.empty() || m.destination.empty() || m.destination[0] != '/')
      return Error::invalid("CannotStartContainerError",
                            "invalid mount '" + m.source + "' -> '" + m.destination + "'");
    mounts.push_back({{"destination", m.destination},
                      {"type", "bind"},
                      {"source", m.source},
                      {"options", opts({"rbind", "rprivate", m.readonly ? "ro" : "rw"})}});
  }

  json::object resources{
      {"devices", json::array{json::object{{"allow", false}, {"access", "rwm"}}}}};
  json::object memory;
  if (spec.memory_bytes > 0) {
    memory["limit"] = spec.memory_bytes;
    if (has_memsw()) memory["swap"] = spec.memory_bytes;  // no swap, as on Fargate
  }
  if (spec.memory_reservation_bytes > 0) memory["reservation"] = spec.memory_reservation_bytes;
  if (!memory.empty()) resources["memory"] = std::move(memory);
  json::object cpu;
  if (spec.cpu_shares > 0) cpu["shares"] = spec.cpu_shares;
  if (spec.cpu_quota_us > 0) {
    cpu["quota"] = spec.cpu_quota_us;
    cpu["period"] = spec.cpu_period_us > 0 ? spec.cpu_period_us : 100000;
  }
  if (!cpu.empty()) resources["cpu"] = std::move(cpu);
  if (spec.pids_limit > 0) resources["pids"] = {{"limit", spec.pids_limit}};

  json::array namespaces{json::object{{"type", "pid"}}, json::object{{"type", "ipc"}},
                         json::object{{"type", "uts"}}, json::object{{"type", "mount"}}};
  if (spec.netns_path.empty()) {
    namespaces.push_back(json::object{{"type", "network"}});
  } else {
    namespaces.push_back(json::object{{"type", "network"}, {"path", spec.netns_path}});
  }

  json::object linux{
      {"resources", resources},
      {"cgroupsPath", spec.cgroup_parent.empty() ? spec.id : spec.cgroup_parent + "/" + spec.id},
      {"namespaces", namespaces},
      {"maskedPaths", opts({"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"})},
      {"readonlyPaths",
       opts({"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"})},
  };

  json::object config{
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", "rootfs"}, {"readonly", spec.readonly_rootfs}}},
      {"mounts", mounts},
      {"linux", linux},
  };
  if (!spec.hostname.empty()) config["hostname"] = spec.hostname;
  return json::serialize(config);
}

namespace {

// overlayfs with lowerdir top first. mount(2)'s option string is limited to a
// page and splits on ',' and ':', so long or odd layer lists go through the new
// mount API, one "lowerdir+" per layer (kernel >= 6.8).
Status mount_overlay(const std::vector<std::string>& lower_dirs, const std::string& upper,
                     const std::string& work, const std::string& target) {
  if (lower_dirs.empty()) return Error::invalid("CannotStartContainerError", "no image layers");
  std::string lower;
  bool odd = false;
  for (auto it = lower_dirs.rbegin(); it != lower_dirs.rend(); ++it) {
    if (it->find_first_of(",:\\") != std::string::npos) odd = true;
    if (!lower.empty()) lower += ':';
    lower += *it;
  }
  std::string data = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
  if (!odd && data.size() < 4000) {
    if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) == 0) return {};
    return Error::internal("mount overlay on '" + target + "': " + errno_text(errno));
  }
  int fsfd = ::fsopen("overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0) return Error::internal("fsopen overlay: " + errno_text(errno));
  auto fail = [&](const std::string& what) {
    int e = errno;
    ::close(fsfd);
    return Error::internal("overlay " + what + " for '" + target + "': " + errno_text(e));
  };
  for (auto it = lower_dirs.rbegin(); it != lower_dirs.rend(); ++it) {
    if (::fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", it->c_str(), 0) != 0)
      return fail("lowerdir+ '" + *it + "'");
  }
  if (::fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", upper.c_str(), 0) != 0)
    return fail("upperdir");
  if (::fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", work.c_str(), 0) != 0)
    return fail("workdir");
  if (::fsconfig(fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) return fail("create");
  int mfd = ::fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
  if (mfd < 0) return fail("fsmount");
  ::close(fsfd);
  int rc = ::move_mount(mfd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH);
  int e = errno;
  ::close(mfd);
  if (rc != 0) return Error::internal("move_mount overlay to '" + target + "': " + errno_text(e));
  return {};
}

bool is_mount_point(const std::string& path) {
  struct stat a, b;
  if (::stat(path.c_str(), &a) != 0) return false;
  if (::stat((path + "/..").c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

Status unmount(const std::string& path) {
  for (int i = 0; i < 50 && is_mount_point(path); ++i) {
    if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) == 0) continue;
    if (errno == EINVAL || errno == ENOENT) break;
    if (errno == EBUSY) {
      ::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
      continue;
    }
    return Error::internal("umount '" + path + "': " + errno_text(errno));
  }
  if (is_mount_point(path)) return Error::internal("'" + path + "' is still mounted");
  return {};
}

}  // namespace

Status remove_cgroup_tree(const std::string& relative) {
  if (relative.empty() || relative[0] == '/' || relative.find("..") != std::string::npos)
    return Error::invalid("InvalidParameterException", "bad cgroup path '" + relative + "'");
  std::string failed;
  for (const std::string& base : own_cgroup_dirs()) {
    std::string top = base + "/" + relative;
    std::error_code ec;
    if (!fs::is_directory(top, ec)) continue;
    std::vector<std::string> dirs{top};
    for (auto it = fs::recursive_directory_iterator(top, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) dirs.push_back(it->path().string());
    }
    std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
      return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
    });
    for (const std::string& d : dirs) {
      if (::rmdir(d.c_str()) != 0 && errno != ENOENT && failed.empty())
        failed = "rmdir '" + d + "': " + errno_text(errno);
    }
  }
  if (!failed.empty()) return Error::internal(failed);
  return {};
}

Runtime::Runtime(std::string root, std::string tag, std::string monitor, std::string runc)
    : root_(std::move(root)),
      tag_(std::move(tag)),
      monitor_(std::move(monitor)),
      runc_(find_in_path(runc)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string Runtime::bundle_path(const std::string& id) const { return root_ + "/" + id; }
std::string Runtime::log_path(const std::string& id) const { return bundle_path(id) + "/log"; }
std::string Runtime::runc_root() const { return root_ + "/.runc"; }

Result<ContainerState> Runtime::start(const ContainerSpec& in) {
  if (!valid_id(in.id))
    return Error::invalid("InvalidParameterException", "bad container id '" + in.id + "'");
  ContainerSpec spec = in;
  if (spec.cgroup_parent.empty()) spec.cgroup_parent = "pier-" + tag_;
  PIER_ASSIGN(std::string config, oci_config(spec));

  std::error_code ec;
  fs::create_directories(root_, ec);
  if (::mkdir(runc_root().c_str(), 0700) != 0 && errno != EEXIST)
    return Error::internal("mkdir '" + runc_root() + "': " + errno_text(errno));
  const std::string bundle = bundle_path(spec.id);
  if (fs::exists(runc_root() + "/" + spec.id, ec))
    return Error::conflict("ConflictException", "container " + spec.id + " exists in runc");
  if (::mkdir(bundle.c_str(), 0700) != 0) {
    if (errno == EEXIST)
      return Error::conflict("ConflictException", "container " + spec.id + " exists");
    return Error::internal("mkdir '" + bundle + "': " + errno_text(errno));
  }
  auto fail = [&](Error e) -> Error {
    (void)cleanup(spec.id, true);
    return e;
  };
  for (const char* d : {"/rootfs", "/upper", "/work"}) {
    if (::mkdir((bundle + d).c_str(), 0755) != 0)
      return fail(Error::internal("mkdir '" + bundle + d + "': " + errno_text(errno)));
  }
  // The merged root takes the upper dir's owner and mode: those of the image's root.
  struct stat top;
  if (::stat(spec.lower_dirs.empty() ? "/" : spec.lower_dirs.back().c_str(), &top) == 0) {
    ::chmod((bundle + "/upper").c_str(), top.st_mode & 07777);
    if (::chown((bundle + "/upper").c_str(), top.st_uid, top.st_gid) != 0) {
    }
  }
  if (auto s =
          mount_overlay(spec.lower_dirs, bundle + "/upper", bundle + "/work", bundle + "/rootfs");
      !s)
    return fail(std::move(s).error());
  if (auto s = write_file(bundle + "/config.json", config); !s) return fail(std::move(s).error());
  std::string agent_spec;
  if (!spec.agent_args.empty()) {
    // The container's own process, but root, in /, running the agent (as the
    // ECS agent's `docker exec` with User "0" and no Env: the container's env).
    json::object process = json::parse(config).as_object()["process"].as_object();
    json::array args;
    for (const auto& a : spec.agent_args) args.emplace_back(a);
    process["args"] = std::move(args);
    process["user"] = json::object{{"uid", 0}, {"gid", 0}};
    process["cwd"] = "/";
    process["terminal"] = false;
    agent_spec = bundle + "/agent.json";
    if (auto s = write_file(agent_spec, json::serialize(process)); !s) return fail(std::move(s).error());
  }

  // The monitor: its own session, its fd 3 the ready pipe, nothing else of ours.
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return fail(Error::internal("pipe: " + errno_text(errno)));
  int ready_w = ::fcntl(ready[1], F_DUPFD_CLOEXEC, 10);
  ::close(ready[1]);
  int devnull = open_high("/dev/null", O_RDWR);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull, 0);
  posix_spawn_file_actions_adddup2(&fa, devnull, 1);
  posix_spawn_file_actions_adddup2(&fa, devnull, 2);
  posix_spawn_file_actions_adddup2(&fa, ready_w, 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
  std::string runc_root_arg = runc_root();
  std::vector<std::string> argv = {monitor_,      "--runc",     runc_,  "--root",
                                   runc_root_arg, "--bundle",   bundle, "--id",
                                   spec.id,       "--ready-fd", "3"};
  if (!agent_spec.empty()) {
    argv.push_back("--agent");
    argv.push_back(agent_spec);
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::string path_env = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char* cenv[] = {path_env.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, monitor_.c_str(), &fa, &attr, cargv.data(), cenv);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(ready_w);
  if (devnull >= 0) ::close(devnull);
  if (rc != 0) {
    ::close(ready[0]);
    return fail(Error::internal("cannot run '" + monitor_ + "': " + errno_text(rc)));
  }
  // It forks at once and this process exits: reap it.
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }

  std::string msg;
  bool timed_out = read_until(ready[0], kStartTimeoutMs, 4096, true, msg);
  ::close(ready[0]);
  if (msg.rfind("P ", 0) == 0) return state(spec.id);

  std::string error;
  if (auto exit = read_json(bundle + "/exit")) {
    if (auto it = exit->find("error"); it != exit->end() && it->value().is_string())
      error = std::string(it->value().as_string());
  }
  if (error.empty()) {
    error = timed_out ? "runc did not start the container within " +
                            std::to_string(kStartTimeoutMs / 1000) + " s"
                      : "pier-monitor exited without starting the container";
  }
  return fail(Error::invalid("CannotStartContainerError", error));
}

ContainerState Runtime::state(const std::string& id) const {
  ContainerState s;
  if (!valid_id(id)) {
    s.error = "bad container id";
    return s;
  }
  const std::string bundle = bundle_path(id);
  std::optional<json::object> started = read_json(bundle + "/started");
  if (started) {
    s.pid = int(get_int(*started, "pid"));
    s.started_ms = get_int(*started, "t");
  }
  if (auto a = read_json(bundle + "/agent")) {
    AgentState as;
    if (auto it = a->find("status"); it != a->end() && it->value().is_string()) as.status = it->value().as_string();
    if (auto it = a->find("reason"); it != a->end() && it->value().is_string()) as.reason = it->value().as_string();
    as.started_ms = get_int(*a, "t");
    as.starts = int(get_int(*a, "starts"));
    s.agent = std::move(as);
  }
  if (auto exit = read_json(bundle + "/exit")) {
    s.status = ContainerState::Status::kExited;
    s.finished_ms = get_int(*exit, "t");
    if (auto it = exit->find("error"); it != exit->end() && it->value().is_string()) {
      s.error = std::string(it->value().as_string());
    } else {
      s.exit_code = int(get_int(*exit, "code"));
      s.signal = int(get_int(*exit, "signal"));
    }
    return s;
  }
  auto monitor_alive = [&] {
    auto m = read_json(bundle + "/monitor");
    return m && same_process(int(get_int(*m, "pid")), get_int(*m, "start"));
  };
  if (started) {
    if (same_process(s.pid, get_int(*started, "start")) || monitor_alive()) {
      // Running, or just ended and the monitor is about to record it.
      s.status = ContainerState::Status::kRunning;
      return s;
    }
    s.error = "the container's monitor died; its exit status is lost";
    return s;
  }
  struct stat st;
  if (::stat(bundle.c_str(), &st) != 0) {
    s.error = "no such container";
    return s;
  }
  if (monitor_alive()) {
    s.status = ContainerState::Status::kCreated;
  } else {
    s.error = "the container's monitor died before it started";
  }
  return s;
}

Status Runtime::kill(const std::string& id, int signal) {
  if (!valid_id(id))
    return Error::invalid("InvalidParameterException", "bad container id '" + id + "'");
  const std::string bundle = bundle_path(id);
  struct stat st;
  if (::stat(bundle.c_str(), &st) != 0)
    return Error::not_found("ResourceNotFoundException", "no container " + id);
  if (::access((bundle + "/exit").c_str(), F_OK) == 0)
    return Error::conflict("ConflictException", "container " + id + " is not running");
  auto started = read_json(bundle + "/started");
  if (!started) return Error::conflict("ConflictException", "container " + id + " has not started");
  int pid = int(get_int(*started, "pid"));
  if (!same_process(pid, get_int(*started, "start")))
    return Error::conflict("ConflictException", "container " + id + " is not running");
  if (::kill(pid, signal) != 0)
    return Error::internal("kill " + std::to_string(pid) + " (" + id + "): " + errno_text(errno));
  return {};
}

Status Runtime::cleanup(const std::string& id, bool force) {
  const std::string bundle = bundle_path(id);
  // The monitor ends by itself once the container exited and the pipes drained.
  if (auto m = read_json(bundle + "/monitor")) {
    int pid = int(get_int(*m, "pid"));
    int64_t start = get_int(*m, "start");
    for (int i = 0; !force && i < 300 && same_process(pid, start); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (same_process(pid, start)) {
      ::kill(pid, SIGKILL);
      // Gone (or a zombie) before its directory goes: it writes there.
      for (int i = 0; i < 200 && same_process(pid, start); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  std::error_code ec;
  std::string failed;
  if (fs::exists(runc_root() + "/" + id, ec)) {
    auto r = run_command({runc_, "--root", runc_root(), "delete", id});
    if (!r.ok() || r->status != 0) {
      auto f = run_command({runc_, "--root", runc_root(), "delete", "-f", id});
      if (fs::exists(runc_root() + "/" + id, ec)) {
        failed = "runc delete " + id + ": " + (f.ok() ? trim(f->output) : f.error().message);
      }
    }
  }
  if (auto s = unmount(bundle + "/rootfs"); !s) return s;
  if (!failed.empty()) return Error::internal(failed);
  fs::remove_all(bundle, ec);
  if (ec) return Error::internal("remove '" + bundle + "': " + ec.message());
  return {};
}

Status Runtime::remove(const std::string& id) {
  if (!valid_id(id))
    return Error::invalid("InvalidParameterException", "bad container id '" + id + "'");
  ContainerState s = state(id);
  if (s.status == ContainerState::Status::kCreated)
    return Error::conflict("ConflictException", "container " + id + " is starting");
  if (s.status == ContainerState::Status::kRunning) {
    // kRunning also covers the short drain after the exit (cleanup waits for the monitor).
    // A container just sent SIGKILL takes a few ms to go: wait up to 1 s for it.
    auto started = read_json(bundle_path(id) + "/started");
    if (started) {
      int pid = int(get_int(*started, "pid"));
      int64_t start = get_int(*started, "start");
      for (int i = 0; i < 200 && same_process(pid, start); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (same_process(pid, start))
        return Error::conflict("ConflictException", "container " + id + " is running");
    }
  }
  return cleanup(id, false);
}

std::vector<std::string> Runtime::list() const {
  std::vector<std::string> ids;
  std::error_code ec;
  for (auto it = fs::directory_iterator(root_, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (valid_id(name) && it->is_directory(ec)) ids.push_back(name);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Status Runtime::destroy_all() {
  std::error_code ec;
  std::set<std::string> ids;
  for (const auto& id : list()) ids.insert(id);
  std::vector<std::string> in_runc;
  for (auto it = fs::directory_iterator(runc_root(), ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (valid_id(name)) {
      ids.insert(name);
      in_runc.push_back(name);
    }
  }
  // Monitors first (they would otherwise record the kills), then every container's init:
  // the rest of its pid namespace goes with it.
  std::vector<int> victims;
  for (const auto& id : ids) {
    if (auto m = read_json(bundle_path(id) + "/monitor")) {
      int pid = int(get_int(*m, "pid"));
      if (same_process(pid, get_int(*m, "start")) && ::kill(pid, SIGKILL) == 0)
        victims.push_back(pid);
    }
  }
  for (const auto& id : in_runc) {
    auto st = read_json(runc_root() + "/" + id + "/state.json");
    if (!st) continue;
    int pid = int(get_int(*st, "init_process_pid"));
    if (same_process(pid, get_int(*st, "init_process_start")) && ::kill(pid, SIGKILL) == 0)
      victims.push_back(pid);
  }
  for (int i = 0; i < 500; ++i) {
    bool any = false;
    for (int pid : victims) {
      char c = proc_state(pid);
      any = any || (c != 0 && c != 'Z' && c != 'X');
    }
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string failed;
  for (const auto& id : in_runc) {
    auto r = run_command({runc_, "--root", runc_root(), "delete", id});
    if (!r.ok() || r->status != 0)
      (void)run_command({runc_, "--root", runc_root(), "delete", "-f", id});
    if (fs::exists(runc_root() + "/" + id, ec) && failed.empty())
      failed = "runc delete " + id + " failed";
  }
  // Every mount under ROOT, deepest first.
  std::vector<std::string> points;
  for (const MountInfo& m : mountinfo()) {
    if (path_under(m.mount_point, root_)) points.push_back(m.mount_point);
  }
  std::sort(points.begin(), points.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& p : points) {
    if (::umount2(p.c_str(), UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT)
      ::umount2(p.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  }
  for (const MountInfo& m : mountinfo()) {
    if (path_under(m.mount_point, root_) && failed.empty())
      failed = "'" + m.mount_point + "' is still mounted";
  }
  if (auto s = remove_cgroup_tree("pier-" + tag_); !s && failed.empty()) failed = s.error().message;
  if (failed.empty()) {
    fs::remove_all(root_, ec);
    if (ec) failed = "remove '" + root_ + "': " + ec.message();
  }
  if (!failed.empty()) return Error::internal(failed);
  return {};
}

}  // namespace pier::runtime
