// Containers: OCI bundles on an overlayfs root, started by runc under a
// per-container pier-monitor that outlives pierd.
//
// Layout under ROOT (the Runtime's root, e.g. HOME/containers):
//   ROOT/.runc/             runc's own --root (state.json per container); kept under
//                           ROOT so that homes never mix and `pier down` finds them
//   ROOT/<id>/config.json   the OCI runtime spec (runc 1.1)
//   ROOT/<id>/rootfs        overlayfs mount: lowerdir = the image layers, top first
//   ROOT/<id>/upper, work   the container's own overlayfs upper and work dirs
//   ROOT/<id>/monitor       {"pid", "start"} of the pier-monitor
//   ROOT/<id>/runc.log      runc's own log (JSON lines)
//   ROOT/<id>/pid           runc's --pid-file
//   ROOT/<id>/started       {"pid", "start", "t"} once the container runs
//   ROOT/<id>/log           the container's output, one JSON line per output line:
//                           {"t": epoch ms, "s": "stdout"|"stderr", "m": "text"}
//   ROOT/<id>/agent.json    the managed agent's process (runc exec --process), if any
//   ROOT/<id>/agent         its state, by the monitor (see monitor/main.cc)
//   ROOT/<id>/exit          {"code", "signal", "t"} or {"error", "t"}; written last,
//                           after the output was drained: exit present ⇒ log complete
// remove() deletes ROOT/<id> with its log: read the log to its end first.
//
// cgroups: cgroupsPath is RELATIVE ("<cgroup_parent>/<id>"), so runc places it
// under the cgroup of the monitor (= pierd's at start()). cgroup_parent should
// start with "pier-TAG/" (the default when empty is "pier-TAG"): destroy_all()
// removes that tree under every hierarchy.
//
// Thread-safety: a Runtime holds no mutable state; calls for different ids may
// run concurrently. The monitor is detached (its own session, reparented away
// from the caller), so the caller never has to reap it. The caller must not
// reap children it does not know with waitpid(-1) while start() runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace pier::runtime {

// A bind mount (file or directory) into the container.
struct Mount {
  std::string source, destination;
  bool readonly = true;
};

struct Rlimit {
  std::string type;  // "RLIMIT_NOFILE"
  uint64_t soft = 0, hard = 0;
};

struct ContainerSpec {
  std::string id;                       // runc container id, e.g. "pier-TAG-<taskid>-<name>"
  std::vector<std::string> lower_dirs;  // image layer dirs, LOWEST first
  std::vector<std::string> args;        // argv (entryPoint + command)
  std::vector<std::string> env;         // "K=V"; HOME is added from passwd when missing
  std::string cwd = "/";
  // "", "uid", "uid:gid", "name", "name:group", resolved against the image's
  // /etc/passwd and /etc/group (as Docker does).
  std::string user;
  std::string hostname;
  std::string netns_path;        // join this network namespace; "" = a new, empty one
  bool init = false;             // tini-static at /sbin/docker-init as PID 1: [init, "--", args...]
  bool readonly_rootfs = false;  // every write fails except on binds and /dev, /dev/shm
  int64_t memory_bytes = 0;      // hard limit, no swap (0 = none)
  int64_t memory_reservation_bytes = 0;
  int64_t cpu_shares = 0, cpu_quota_us = 0, cpu_period_us = 100000;
  int64_t pids_limit = 0;
  std::vector<Rlimit> rlimits;  // already clamped by the caller
  std::vector<Mount> mounts;    // extra binds
  std::string cgroup_parent;    // relative, e.g. "pier-TAG/task-<id>"; "" = "pier-TAG"
  // A managed agent (ECS Exec's): when set, the monitor runs it inside the
  // container as root, with the container's environment, once the container
  // runs, and again whenever it ends (backoff 1 s doubling to 30 s).
  std::vector<std::string> agent_args;
};

// The managed agent as the monitor last recorded it.
struct AgentState {
  std::string status;  // RUNNING, STOPPED
  int64_t started_ms = 0;
  int starts = 0;
  std::string reason;
};

struct ContainerState {
  enum class Status { kCreated, kRunning, kExited, kUnknown };
  Status status = Status::kUnknown;
  int pid = 0;
  std::optional<int> exit_code;  // 128+signal when killed by a signal (137 for SIGKILL)
  int signal = 0;                // the signal that ended it, 0 if it exited
  int64_t started_ms = 0, finished_ms = 0;
  std::string error;  // why it never ran (runc's message), or why the state is unknown
  std::optional<AgentState> agent;  // with ContainerSpec::agent_args, once it was started
};

// The user a container runs as.
struct ExecUser {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home = "/";
};
// Resolves ContainerSpec::user against the first etc/passwd and etc/group found
// in lower_dirs searching top-down (lower_dirs is lowest first). Docker's error
// texts: "unable to find user NAME: no matching entries in passwd file".
Result<ExecUser> resolve_user(const std::vector<std::string>& lower_dirs, const std::string& user);

// The bundle's config.json for spec (rootfs at "rootfs" in the bundle,
// cgroupsPath = spec.cgroup_parent + "/" + spec.id). Reads only the image's
// passwd/group files.
Result<std::string> oci_config(const ContainerSpec& spec);

// rmdir the relative cgroup path (as in cgroupsPath) and everything below it,
// deepest first, under every cgroup v1 hierarchy and cgroup2, relative to this
// process's own cgroups. Missing directories are fine.
Status remove_cgroup_tree(const std::string& relative);

// Owns the containers under one root. See the file comment for the layout.
class Runtime {
 public:
  // root: where bundles live; tag: the instance tag (cgroups go under "pier-TAG");
  // monitor: path of pier-monitor; runc: the runc binary.
  Runtime(std::string root, std::string tag, std::string monitor, std::string runc = "runc");

  // Writes the bundle, mounts the rootfs, spawns the monitor and returns once the
  // container's process runs (status kRunning, or kExited when it already ended).
  // On failure (runc's message in the Error) nothing is left behind: no runc state,
  // no mount, no bundle directory.
  Result<ContainerState> start(const ContainerSpec& spec);

  // From the monitor's files (a few small reads); kUnknown when there is no such
  // container or its monitor died while it ran.
  ContainerState state(const std::string& id) const;

  // Signals the container's init (kill(2) on the recorded pid, checked against its
  // start time, so a reused pid is never hit). Conflict if it is not running.
  Status kill(const std::string& id, int signal);

  // After exit: runc delete, unmount the rootfs, remove ROOT/<id> (log included).
  // A container that is dying (just killed) is waited for up to 1 s; conflict if it
  // still runs after that. Removing an unknown id is fine.
  Status remove(const std::string& id);

  std::string log_path(const std::string& id) const;  // ROOT/<id>/log
  std::string bundle_path(const std::string& id) const;
  std::string runc_root() const;  // ROOT/.runc

  // Container ids under ROOT, sorted (adoption after a pierd restart; pier down).
  std::vector<std::string> list() const;

  // `pier down`: SIGKILL every monitor and container of this root, runc delete,
  // unmount, remove the "pier-TAG" cgroup trees and ROOT itself.
  Status destroy_all();

 private:
  Status cleanup(const std::string& id, bool force);

  std::string root_, tag_, monitor_, runc_;
};

}  // namespace pier::runtime
