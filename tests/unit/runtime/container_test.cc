#include "runtime/container.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace pier::runtime {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kRunc = "/usr/sbin/runc";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// pier-monitor is built into the same bin/ directory as this test binary.
std::string monitor_path() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return (exe.parent_path() / "pier-monitor").string();
}

// An image of one layer: busybox with the applets the tests use, root and "app".
void make_image(const std::string& dir) {
  fs::create_directories(dir + "/bin");
  fs::create_directories(dir + "/etc");
  fs::create_directories(dir + "/tmp");
  fs::permissions(dir + "/tmp", fs::perms::all | fs::perms::sticky_bit);
  fs::copy_file("/bin/busybox", dir + "/bin/busybox");
  for (const char* applet :
       {"sh", "echo", "cat", "id", "sleep", "touch", "true", "ls", "printf", "mkdir"})
    fs::create_symlink("busybox", dir + "/bin/" + applet);
  put(dir + "/etc/passwd",
      "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n");
  put(dir + "/etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n");
}

// This process's cgroup directory in a v1 hierarchy ("memory", "pids").
std::string own_cgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (line.substr(a + 1, b - a - 1) == controller) {
      std::string path = line.substr(b + 1);
      return "/sys/fs/cgroup/" + controller + (path == "/" ? "" : path);
    }
  }
  return {};
}

bool mounted_under(const std::string& dir) {
  return slurp("/proc/self/mountinfo").find(dir) != std::string::npos;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct LogLine {
  std::string stream, text;
  int64_t t = 0;
};

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (::access(kRunc, X_OK) != 0) GTEST_SKIP() << "needs " << kRunc;
    if (::access(monitor_path().c_str(), X_OK) != 0)
      GTEST_SKIP() << "pier-monitor not found at " << monitor_path();
    static int counter = 0;
    tag_ = "t" + std::to_string(::getpid()) + "n" + std::to_string(++counter);
    base_ = "/tmp/pier-" + tag_;
    fs::remove_all(base_);
    image_ = base_ + "/image";
    make_image(image_);
    rt_ = std::make_unique<Runtime>(root(), tag_, monitor_path(), kRunc);
  }
  void TearDown() override {
    if (rt_) {
      Status s = rt_->destroy_all();
      EXPECT_TRUE(s.ok()) << s.error().message;
    }
    std::error_code ec;
    if (!base_.empty() && !mounted_under(base_)) fs::remove_all(base_, ec);
  }

  std::string root() const { return base_ + "/containers"; }
  std::string cgroup_parent() const { return "pier-" + tag_ + "/task-1"; }

  ContainerSpec spec(const std::string& name, std::vector<std::string> args) const {
    ContainerSpec s;
    s.id = "pier-" + tag_ + "-" + name;
    s.lower_dirs = {image_};
    s.args = std::move(args);
    s.env = {"PATH=/bin"};
    s.hostname = name;
    s.cgroup_parent = cgroup_parent();
    return s;
  }

  ContainerState wait_exit(const std::string& id, Runtime* rt = nullptr) {
    rt = rt ? rt : rt_.get();
    auto deadline = Clock::now() + std::chrono::seconds(30);
    ContainerState s = rt->state(id);
    while (s.status != ContainerState::Status::kExited && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      s = rt->state(id);
    }
    return s;
  }

  std::vector<LogLine> log(const std::string& id) {
    std::vector<LogLine> out;
    std::ifstream in(rt_->log_path(id));
    std::string line;
    while (std::getline(in, line)) {
      boost::system::error_code ec;
      json::value v = json::parse(line, ec);
      EXPECT_FALSE(ec) << line;
      if (ec) continue;
      const auto& o = v.as_object();
      out.push_back({std::string(o.at("s").as_string()), std::string(o.at("m").as_string()),
                     o.at("t").as_int64()});
    }
    return out;
  }

  // Waits until the log holds a line with text (the container got that far).
  bool wait_log(const std::string& id, const std::string& text) {
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      for (const auto& l : log(id))
        if (l.text == text) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // The one stdout line of a container that prints one.
  std::string run_for_output(ContainerSpec s) {
    auto r = rt_->start(s);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok()) return "<start failed>";
    ContainerState st = wait_exit(s.id);
    EXPECT_EQ(st.exit_code, 0);
    std::string out;
    for (const auto& l : log(s.id)) {
      if (l.stream == "stdout") out += (out.empty() ? "" : "\n") + l.text;
    }
    return out;
  }

  std::string tag_, base_, image_;
  std::unique_ptr<Runtime> rt_;
};

TEST_F(ContainerTest, LogsStdoutAndStderrAsJsonLines) {
  auto s =
      spec("logs", {"sh", "-c", "echo out1; echo err1 >&2; echo 'q\"\\\\ t\ta'; printf partial"});
  auto r = rt_->start(s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->pid, 0);
  EXPECT_GT(r->started_ms, 0);
  ContainerState st = wait_exit(s.id);
  ASSERT_EQ(st.status, ContainerState::Status::kExited);
  EXPECT_EQ(st.exit_code, 0);
  EXPECT_GE(st.finished_ms, st.started_ms);
  auto lines = log(s.id);
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& l : lines) got.emplace_back(l.stream, l.text);
  std::vector<std::pair<std::string, std::string>> stdout_lines, stderr_lines;
  for (auto& g : got) (g.first == "stdout" ? stdout_lines : stderr_lines).push_back(g);
  ASSERT_EQ(stdout_lines.size(), 3u);
  EXPECT_EQ(stdout_lines[0].second, "out1");
  EXPECT_EQ(stdout_lines[1].second, "q\"\\\\ t\ta");  // sh's single quotes keep both backslashes
  EXPECT_EQ(stdout_lines[2].second, "partial");
  ASSERT_EQ(stderr_lines.size(), 1u);
  EXPECT_EQ(stderr_lines[0].second, "err1");
  for (const auto& l : lines) EXPECT_GT(l.t, 0);
}

TEST_F(ContainerTest, ExitCodeIsRecorded) {
  auto s = spec("exit3", {"sh", "-c", "exit 3"});
  ASSERT_TRUE(rt_->start(s).ok());
  ContainerState st = wait_exit(s.id);
  ASSERT_EQ(st.status, ContainerState::Status::kExited);
  EXPECT_EQ(st.exit_code, 3);
  EXPECT_EQ(st.signal, 0);
  EXPECT_TRUE(st.error.empty());
}

TEST_F(ContainerTest, InitForwardsTermAndExits143) {
  auto s = spec("term", {"sh", "-c", "echo ready; sleep 100"});
  s.init = true;
  auto r = rt_->start(s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, ContainerState::Status::kRunning);
  ASSERT_TRUE(wait_log(s.id, "ready"));
  ASSERT_TRUE(rt_->kill(s.id, SIGTERM).ok());
  ContainerState st = wait_exit(s.id);
  ASSERT_EQ(st.status, ContainerState::Status::kExited);
  EXPECT_EQ(st.exit_code, 143);
}

TEST_F(ContainerTest, SigkillExits137) {
  auto s = spec("kill", {"sleep", "100"});
  auto r = rt_->start(s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(rt_->state(s.id).status, ContainerState::Status::kRunning);
  ASSERT_TRUE(rt_->kill(s.id, SIGKILL).ok());
  ContainerState st = wait_exit(s.id);
  ASSERT_EQ(st.status, ContainerState::Status::kExited);
  EXPECT_EQ(st.exit_code, 137);
  EXPECT_EQ(st.signal, SIGKILL);
  Status again = rt_->kill(s.id, SIGKILL);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::kConflict);
}

// The managed agent: run inside the container as root, with its env, once it
// runs; started again when it ends; STOPPED with the container.
TEST_F(ContainerTest, ManagedAgentRunsInsideAndIsRestarted) {
  auto s = spec("agent", {"sleep", "100"});
  s.env.push_back("MARK=from-the-container");
  s.user = "1000";
  // Each run leaves a line in the container's /tmp, then lives 1 s.
  s.agent_args = {"/bin/sh", "-c", "echo $(id -u) $MARK >> /tmp/runs; sleep 1"};
  auto r = rt_->start(s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto deadline = Clock::now() + std::chrono::seconds(20);
  ContainerState st = rt_->state(s.id);
  while ((!st.agent || st.agent->starts < 2 || st.agent->status != "RUNNING") && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    st = rt_->state(s.id);
  }
  ASSERT_TRUE(st.agent.has_value());
  EXPECT_EQ(st.agent->status, "RUNNING");
  EXPECT_GE(st.agent->starts, 2);
  EXPECT_EQ(st.agent->reason, "ExecuteCommandAgent restarted");
  EXPECT_GT(st.agent->started_ms, 0);
  std::ifstream runs(rt_->bundle_path(s.id) + "/upper/tmp/runs");
  std::string line;
  std::getline(runs, line);
  EXPECT_EQ(line, "0 from-the-container");
  ASSERT_TRUE(rt_->kill(s.id, SIGKILL).ok());
  st = wait_exit(s.id);
  ASSERT_TRUE(st.agent.has_value());
  EXPECT_EQ(st.agent->status, "STOPPED");
  EXPECT_EQ(st.agent->reason, "Received Container Stopped event");
}

TEST_F(ContainerTest, LimitsAreVisibleInTheContainersCgroup) {
  auto s = spec("limits", {"sh", "-c",
                           "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                           "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                           "/sys/fs/cgroup/cpu/cpu.shares"});
  s.memory_bytes = 64 << 20;
  s.pids_limit = 50;
  s.cpu_quota_us = 50000;
  s.cpu_shares = 512;
  EXPECT_EQ(run_for_output(s), "67108864\n50\n50000\n512");
}

TEST_F(ContainerTest, RlimitsHostnameCwdAndEnv) {
  auto s = spec("misc", {"sh", "-c", "ulimit -n; hostname; pwd; echo $FOO $HOME"});
  s.rlimits = {{"RLIMIT_NOFILE", 1234, 2345}};
  s.cwd = "/etc";
  s.env.push_back("FOO=bar");
  EXPECT_EQ(run_for_output(s), "1234\nmisc\n/etc\nbar /root");
}

TEST_F(ContainerTest, UserIsResolvedAgainstTheImage) {
  auto s = spec("user", {"sh", "-c", "id -u; id -g; id -G; echo $HOME"});
  s.user = "app";
  EXPECT_EQ(run_for_output(s), "1000\n1000\n1000 50\n/home/app");
  auto s2 = spec("user2", {"sh", "-c", "id -u; id -g"});
  s2.user = "1000:staff";
  EXPECT_EQ(run_for_output(s2), "1000\n50");
}

TEST_F(ContainerTest, UnknownUserFailsWithDockersMessage) {
  auto s = spec("nouser", {"true"});
  s.user = "nobody2";
  auto r = rt_->start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "unable to find user nobody2: no matching entries in passwd file");
  EXPECT_TRUE(rt_->list().empty());
}

TEST_F(ContainerTest, RuncFailureIsReportedAndLeavesNothing) {
  auto s = spec("noexec", {"/no/such/binary"});
  auto r = rt_->start(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/no/such/binary"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().code, "CannotStartContainerError");
  EXPECT_TRUE(rt_->list().empty());
  EXPECT_FALSE(fs::exists(rt_->bundle_path(s.id)));
  EXPECT_FALSE(fs::exists(rt_->runc_root() + "/" + s.id));
  EXPECT_FALSE(mounted_under(root()));
}

TEST_F(ContainerTest, ReadonlyRootfsRefusesWritesButVolumes) {
  std::string vol = base_ + "/vol";
  fs::create_directories(vol);
  auto s = spec("ro", {"sh", "-c",
                       "touch /x 2>/dev/null && echo root; touch /tmp/x 2>/dev/null && echo tmp; "
                       "touch /dev/shm/x && echo shm; touch /vol/x && echo vol; true"});
  s.readonly_rootfs = true;
  s.mounts = {{vol, "/vol", false}};
  EXPECT_EQ(run_for_output(s), "shm\nvol");
  EXPECT_TRUE(fs::exists(vol + "/x"));

  auto rw = spec("rw", {"sh", "-c", "touch /x && echo root; touch /tmp/x && echo tmp"});
  rw.mounts = {{vol, "/vol", true}};
  EXPECT_EQ(run_for_output(rw), "root\ntmp");
  EXPECT_FALSE(fs::exists(image_ + "/x"));  // writes go to the container's own upper dir
}

TEST_F(ContainerTest, MonitorOutlivesItsCaller) {
  auto s = spec("survive", {"sh", "-c", "echo begin; sleep 1; echo end; exit 5"});
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Plays pierd: starts the container, then is SIGKILLed.
    ::close(p[0]);
    Runtime rt(root(), tag_, monitor_path(), kRunc);
    auto r = rt.start(s);
    char c = r.ok() ? '1' : '0';
    if (::write(p[1], &c, 1) != 1) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  ::close(p[1]);
  char c = 0;
  ASSERT_EQ(::read(p[0], &c, 1), 1);
  ::close(p[0]);
  ::kill(child, SIGKILL);
  int st = 0;
  ::waitpid(child, &st, 0);
  ASSERT_EQ(c, '1');

  {
    Runtime fresh(root(), tag_, monitor_path(), kRunc);
    EXPECT_EQ(fresh.state(s.id).status, ContainerState::Status::kRunning);
    EXPECT_EQ(fresh.list(), std::vector<std::string>{s.id});
    // The monitor is in its own session, not the caller's.
    std::string m = slurp(fresh.bundle_path(s.id) + "/monitor");
    int mpid = int(json::parse(m).at("pid").as_int64());
    EXPECT_NE(::getsid(mpid), ::getsid(0));
    EXPECT_NE(::getpgid(mpid), ::getpgid(0));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // it exits, nobody watching
  Runtime later(root(), tag_, monitor_path(), kRunc);
  ContainerState done = wait_exit(s.id, &later);
  ASSERT_EQ(done.status, ContainerState::Status::kExited);
  EXPECT_EQ(done.exit_code, 5);
  auto lines = log(s.id);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].text, "end");
  EXPECT_TRUE(later.remove(s.id).ok());
}

TEST_F(ContainerTest, RemoveLeavesNothing) {
  auto s = spec("remove", {"sleep", "100"});
  ASSERT_TRUE(rt_->start(s).ok());
  std::string cg = own_cgroup("memory") + "/" + cgroup_parent() + "/" + s.id;
  EXPECT_TRUE(fs::is_directory(cg)) << cg;
  Status busy = rt_->remove(s.id);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().kind, ErrorKind::kConflict);

  ASSERT_TRUE(rt_->kill(s.id, SIGKILL).ok());
  Status rm = rt_->remove(s.id);  // right away: remove() waits for the dying container
  ASSERT_TRUE(rm.ok()) << rm.error().message;
  EXPECT_FALSE(mounted_under(rt_->bundle_path(s.id)));
  EXPECT_FALSE(fs::exists(rt_->bundle_path(s.id)));
  EXPECT_FALSE(fs::exists(rt_->runc_root() + "/" + s.id));
  EXPECT_FALSE(fs::exists(cg));
  EXPECT_TRUE(rt_->list().empty());
  EXPECT_EQ(rt_->state(s.id).status, ContainerState::Status::kUnknown);
  EXPECT_TRUE(rt_->remove(s.id).ok());  // twice is fine
}

TEST_F(ContainerTest, DestroyAllCleansEverything) {
  std::vector<int> monitors;
  for (const char* name : {"a", "b", "c"}) {
    auto s = spec(name, {"sh", "-c", std::string(name) == "c" ? "exit 0" : "sleep 100"});
    ASSERT_TRUE(rt_->start(s).ok());
    monitors.push_back(
        int(json::parse(slurp(rt_->bundle_path(s.id) + "/monitor")).at("pid").as_int64()));
  }
  EXPECT_EQ(rt_->list().size(), 3u);
  std::vector<std::string> cgroups;
  for (const char* c : {"memory", "pids", "cpu", "freezer"})
    cgroups.push_back(own_cgroup(c) + "/pier-" + tag_);
  EXPECT_TRUE(fs::is_directory(cgroups[0]));

  Status s = rt_->destroy_all();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_FALSE(fs::exists(root()));
  EXPECT_FALSE(mounted_under(root()));
  for (const auto& cg : cgroups) EXPECT_FALSE(fs::exists(cg)) << cg;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int pid : monitors) {
    std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    EXPECT_TRUE(stat.empty() || stat.find(") Z") != std::string::npos)
        << "monitor " << pid << " alive";
  }
  EXPECT_TRUE(rt_->destroy_all().ok());  // twice is fine
}

TEST_F(ContainerTest, ManyLinesAndLongLines) {
  // 2000 short lines and one 40000-byte line (split at 16 KiB), plus a non-UTF-8 byte.
  auto s = spec("many", {"sh", "-c",
                         "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; "
                         "printf '%040000d\\n' 0; printf 'bad\\377\\n'"});
  ASSERT_TRUE(rt_->start(s).ok());
  ASSERT_EQ(wait_exit(s.id).exit_code, 0);
  auto lines = log(s.id);
  ASSERT_EQ(lines.size(), 2000u + 3u + 1u);
  EXPECT_EQ(lines[1999].text, "line1999");
  EXPECT_EQ(lines[2000].text.size() + lines[2001].text.size() + lines[2002].text.size(), 40000u);
  EXPECT_EQ(lines[2000].text.size(), 16384u);
  EXPECT_EQ(lines[2003].text, "bad\xEF\xBF\xBD");
}

// Not a test: start() against a bare `runc run -d` of the same bundle, and the
// monitor's RSS. PIER_RUNTIME_BENCH=1 to run.
TEST_F(ContainerTest, BenchStartVsBareRunc) {
  if (!std::getenv("PIER_RUNTIME_BENCH")) GTEST_SKIP() << "set PIER_RUNTIME_BENCH=1";
  constexpr int kRuns = 20;
  std::vector<double> ours, bare;
  long rss_kb = 0;
  std::string broot = base_ + "/bare";
  std::string rroot = broot + "/.runc";
  fs::create_directories(rroot);
  // Interleaved, so that the machine's load weighs on both alike.
  for (int i = 0; i < kRuns; ++i) {
    auto s = spec("bench" + std::to_string(i), {"sleep", "100"});
    auto t0 = Clock::now();
    auto r = rt_->start(s);
    auto t1 = Clock::now();
    ASSERT_TRUE(r.ok()) << r.error().message;
    ours.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (i == 0) {
      int mpid = int(json::parse(slurp(rt_->bundle_path(s.id) + "/monitor")).at("pid").as_int64());
      std::istringstream st(slurp("/proc/" + std::to_string(mpid) + "/status"));
      std::string line;
      while (std::getline(st, line))
        if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::stol(line.substr(6));
      std::string ps = "ps -o pid,rss,vsz,cmd -p " + std::to_string(mpid) +
                       "; grep -E 'Rss|Pss|Private' /proc/" + std::to_string(mpid) +
                       "/smaps_rollup";
      if (std::system(ps.c_str()) != 0) std::printf("ps failed\n");
    }
    ASSERT_TRUE(rt_->kill(s.id, SIGKILL).ok());
    wait_exit(s.id);
    ASSERT_TRUE(rt_->remove(s.id).ok());

    // The same bundle, by hand: only `runc run -d` is timed.
    auto b_spec = spec("bare" + std::to_string(i), {"sleep", "100"});
    std::string b = broot + "/" + b_spec.id;
    for (const char* d : {"/rootfs", "/upper", "/work"}) fs::create_directories(b + d);
    std::string data = "lowerdir=" + image_ + ",upperdir=" + b + "/upper,workdir=" + b + "/work";
    ASSERT_EQ(::mount("overlay", (b + "/rootfs").c_str(), "overlay", 0, data.c_str()), 0);
    auto cfg = oci_config(b_spec);
    ASSERT_TRUE(cfg.ok());
    put(b + "/config.json", *cfg);
    std::vector<std::string> argv = {kRunc,        "--root",   rroot,      "run", "-d",
                                     "--pid-file", b + "/pid", "--bundle", b,     b_spec.id};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    auto t2 = Clock::now();
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, kRunc, &fa, nullptr, cargv.data(), environ), 0);
    int st = 0;
    ::waitpid(pid, &st, 0);
    auto t3 = Clock::now();
    posix_spawn_file_actions_destroy(&fa);
    ASSERT_EQ(st, 0);
    bare.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
    std::string cmd = std::string(kRunc) + " --root " + rroot + " kill " + b_spec.id +
                      " KILL; sleep 0.05; " + kRunc + " --root " + rroot + " delete " + b_spec.id;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ASSERT_EQ(::umount2((b + "/rootfs").c_str(), 0), 0);
  }
  std::printf(
      "start() median %.1f ms, bare runc run -d median %.1f ms, ratio %.2f; monitor RSS %ld kB\n",
      median(ours), median(bare), median(ours) / median(bare), rss_kb);
}

// --- without root: the bundle's config and user resolution ------------------------

class ContainerConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pier-cfg-" + std::to_string(::getpid()));
    fs::create_directories(dir_ + "/low/etc");
    fs::create_directories(dir_ + "/top/etc");
    put(dir_ + "/low/etc/passwd", "root:x:0:0::/root:/bin/sh\nold:x:7:7::/old:/bin/sh\n");
    put(dir_ + "/top/etc/passwd", "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/var/www:/bin/sh\n");
    put(dir_ + "/top/etc/group", "root:x:0:\nwww:x:34:\nextra:x:99:web\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> layers() const { return {dir_ + "/low", dir_ + "/top"}; }
  std::string dir_;
};

TEST_F(ContainerConfig, ResolvesUsersLikeDocker) {
  auto u = resolve_user(layers(), "web");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 33u);
  EXPECT_EQ(u->gid, 34u);
  EXPECT_EQ(u->home, "/var/www");
  EXPECT_EQ(u->additional_gids, std::vector<uint32_t>{99});

  auto n = resolve_user(layers(), "4242");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->uid, 4242u);
  EXPECT_EQ(n->gid, 0u);
  EXPECT_EQ(n->home, "/");

  auto g = resolve_user(layers(), "33:root");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->gid, 0u);
  EXPECT_TRUE(g->additional_gids.empty());

  auto root = resolve_user(layers(), "");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->home, "/root");

  auto old = resolve_user(layers(), "old");  // the top layer's passwd hides the lower one
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().message, "unable to find user old: no matching entries in passwd file");
  auto grp = resolve_user(layers(), "web:nogroup");
  ASSERT_FALSE(grp.ok());
  EXPECT_EQ(grp.error().message, "unable to find group nogroup: no matching entries in group file");
}

TEST_F(ContainerConfig, WritesTheOciSpec) {
  ContainerSpec s;
  s.id = "pier-x-1-app";
  s.lower_dirs = layers();
  s.args = {"/app", "--flag"};
  s.env = {"A=1"};
  s.user = "web";
  s.init = true;
  s.readonly_rootfs = true;
  s.netns_path = "/run/netns/pier-x-task";
  s.memory_bytes = 1 << 20;
  s.cpu_quota_us = 1000;
  s.rlimits = {{"RLIMIT_NOFILE", 100, 200}};
  s.mounts = {{"/etc/hosts", "/etc/hosts", true}};
  s.cgroup_parent = "pier-x/task-1";
  auto text = oci_config(s);
  ASSERT_TRUE(text.ok()) << text.error().message;
  json::object c = json::parse(*text).as_object();
  const auto& p = c.at("process").as_object();
  EXPECT_EQ(json::serialize(p.at("args")), R"(["/sbin/docker-init","--","/app","--flag"])");
  EXPECT_EQ(json::serialize(p.at("env")), R"(["A=1","HOME=/var/www"])");
  EXPECT_EQ(p.at("user").at("uid").as_int64(), 33);
  EXPECT_EQ(p.at("capabilities").at("bounding").as_array().size(), 14u);
  EXPECT_TRUE(p.at("capabilities").at("inheritable").as_array().empty());
  EXPECT_EQ(p.at("noNewPrivileges").as_bool(), false);
  EXPECT_EQ(p.at("rlimits").at(0).at("soft").as_int64(), 100);
  EXPECT_EQ(c.at("root").at("readonly").as_bool(), true);
  const auto& l = c.at("linux").as_object();
  EXPECT_EQ(l.at("cgroupsPath").as_string(), "pier-x/task-1/pier-x-1-app");
  EXPECT_EQ(l.at("resources").at("memory").at("limit").as_int64(), 1 << 20);
  EXPECT_EQ(l.at("resources").at("cpu").at("period").as_int64(), 100000);
  bool net = false;
  for (const auto& ns : l.at("namespaces").as_array()) {
    if (ns.at("type") == "network") net = ns.at("path") == "/run/netns/pier-x-task";
  }
  EXPECT_TRUE(net);
  std::string mounts = json::serialize(c.at("mounts"));
  EXPECT_NE(mounts.find(R"("destination":"/sbin/docker-init")"), std::string::npos);
  EXPECT_NE(mounts.find(R"("destination":"/sys/fs/cgroup","type":"cgroup")"), std::string::npos);
  EXPECT_NE(
      mounts.find(
          R"("destination":"/etc/hosts","type":"bind","source":"/etc/hosts","options":["rbind","rprivate","ro"])"),
      std::string::npos);
}

}  // namespace
}  // namespace pier::runtime
