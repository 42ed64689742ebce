#!/usr/bin/env python3
"""ECS tasks as runc containers, measured (needs root). A fresh pierd; prints,
in one run:
- RunTask -> RUNNING (DescribeTasks polled every 5 ms) for a cached busybox
  image, p50 / p95 of 20, next to a bare `runc run -d` of the same rootfs
  (until runc returns: the container runs);
- 200 tasks running at once: the time until all are RUNNING, pierd's RSS
  before and after, the monitors' RSS, and so the overhead per task beyond
  the container's own processes (tini and the command).
Loopback and pier's own namespaces only; it stops what it starts, by pid, and
removes its containers and kernel objects with `pier down`.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("PIER_BUILD_DIR", os.path.join(ROOT, "build")), "bin")
CREDS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
             config=Config(retries={"max_attempts": 1}))
MANY = int(os.environ.get("PIER_BENCH_TASKS", "200"))


def wait(pred, timeout=60, step=0.005):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise RuntimeError("timed out")
        time.sleep(step)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def monitors_of(home):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pier-monitor") and any(home.encode() in a for a in argv):
            out.append(int(p))
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bare_runc(tmp, layer_dir, n=20):
    """`runc run -d` of the same rootfs (an overlay on the image's layer, as pier does)."""
    times = []
    root = os.path.join(tmp, "bare-runc")
    for i in range(n):
        b = os.path.join(tmp, "bare-%d" % i)
        for d in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(b, d))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (layer_dir, b, b),
                        os.path.join(b, "rootfs")], check=True)
        subprocess.run(["runc", "spec", "--bundle", b], check=True)
        with open(os.path.join(b, "config.json")) as f:
            spec = json.load(f)
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["sleep", "3600"]
        spec["linux"]["cgroupsPath"] = "pier-bench-bare/c%d" % i
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(spec, f)
        cid = "pier-bench-bare-%d" % i
        t0 = time.perf_counter()
        subprocess.run(["runc", "--root", root, "run", "-d", "--bundle", b, cid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    for i in range(n):
        cid = "pier-bench-bare-%d" % i
        subprocess.run(["runc", "--root", root, "kill", cid, "KILL"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    for i in range(n):
        b = os.path.join(tmp, "bare-%d" % i)
        subprocess.run(["runc", "--root", root, "delete", "-f", "pier-bench-bare-%d" % i], stderr=subprocess.DEVNULL)
        subprocess.run(["umount", os.path.join(b, "rootfs")], stderr=subprocess.DEVNULL)
    # The relative cgroupsPath is under this process's own cgroup of each hierarchy.
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.strip().split(":", 2)
            for c in (ctrls or "unified").split(","):
                base = "/sys/fs/cgroup/" + ("unified" if c == "unified" else c.replace("name=", ""))
                d = os.path.join(base + path, "pier-bench-bare")
                if os.path.isdir(d):
                    subprocess.run(["rmdir", d], stderr=subprocess.DEVNULL)
    return times


def main():
    if os.geteuid() != 0:
        raise SystemExit("task_bench: needs root")
    tmp = tempfile.mkdtemp(prefix="pier-task-bench-")
    home = os.path.join(tmp, "home")
    pierd = subprocess.Popen([os.path.join(BIN, "pierd"), "--listen", "127.0.0.1:0", "--home", home],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "pierd.log"), "wb"))
    try:
        endpoint = pierd.stdout.readline().decode().strip().split("ready on ")[1]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        subprocess.run([os.path.join(BIN, "pier"), "--endpoint", endpoint, "image", "base", "busybox:latest"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, **CREDS)
        ecs = boto3.client("ecs", endpoint_url=endpoint, **CREDS)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/22")["Subnet"]["SubnetId"]
        ecs.create_cluster(clusterName="bench")
        ecs.register_task_definition(
            family="bench", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=[{"name": "app", "image": "busybox:latest", "command": ["sleep", "3600"],
                                   "linuxParameters": {"initProcessEnabled": True}}])
        net = {"awsvpcConfiguration": {"subnets": [subnet]}}

        def run(count=1):
            return [t["taskArn"] for t in ecs.run_task(cluster="bench", launchType="FARGATE", taskDefinition="bench",
                                                       count=count, networkConfiguration=net)["tasks"]]

        def running(arns):
            got = []
            for i in range(0, len(arns), 100):
                got += ecs.describe_tasks(cluster="bench", tasks=arns[i:i + 100])["tasks"]
            bad = [t for t in got if t["lastStatus"] == "STOPPED"]
            if bad:
                raise RuntimeError("a task stopped: %s" % bad[0].get("stoppedReason"))
            return all(t["lastStatus"] == "RUNNING" for t in got)

        def stop_all(arns):
            for a in arns:
                ecs.stop_task(cluster="bench", task=a)
            wait(lambda: all(t["lastStatus"] == "STOPPED" for i in range(0, len(arns), 100)
                             for t in ecs.describe_tasks(cluster="bench", tasks=arns[i:i + 100])["tasks"]),
                 timeout=600, step=0.2)

        warm = run()  # the layers unpacked once, the cgroup parents made
        wait(lambda: running(warm), timeout=60)
        stop_all(warm)

        lat = []
        arns = []
        for _ in range(20):
            t0 = time.perf_counter()
            a = run()
            wait(lambda: running(a), timeout=60, step=0.005)
            lat.append((time.perf_counter() - t0) * 1000)
            arns += a
        stop_all(arns)

        layers = os.path.join(home, "images", "layers")
        layer_dir = os.path.join(layers, sorted(os.listdir(layers))[0])
        bare = bare_runc(tmp, layer_dir)

        before = rss_kb(pierd.pid)
        t0 = time.perf_counter()
        many = []
        for _ in range(MANY // 10):
            many += run(10)
        wait(lambda: running(many), timeout=900, step=0.5)
        all_up = time.perf_counter() - t0
        time.sleep(1)
        after = rss_kb(pierd.pid)
        mons = monitors_of(home)
        mon_kb = sum(rss_kb(p) for p in mons)
        per_task = ((after - before) + mon_kb) / max(1, len(many))

        print("pier task benchmark (runc containers in VPC namespaces; 2-core VM)")
        print("RunTask -> RUNNING, cached image: p50 %.0f ms, p95 %.0f ms (goals <= 150 / 300 ms; Fargate: 20-60 s)"
              % (statistics.median(lat), pct(lat, 0.95)))
        print("bare `runc run -d` of the same rootfs:  p50 %.0f ms, p95 %.0f ms"
              % (statistics.median(bare), pct(bare, 0.95)))
        print("%d tasks at once: all RUNNING after %.1f s" % (len(many), all_up))
        print("pierd RSS %.1f MB -> %.1f MB; %d monitors %.1f MB in all (%.0f kB each)"
              % (before / 1024, after / 1024, len(mons), mon_kb / 1024, mon_kb / max(1, len(mons))))
        print("overhead per task beyond its own processes: %.2f MB (goal <= 3 MB)" % (per_task / 1024))
        sys.stdout.flush()
    except Exception:
        with open(os.path.join(tmp, "pierd.log"), "rb") as f:
            sys.stderr.write("pierd's log ends:\n" + f.read()[-3000:].decode(errors="replace"))
        raise
    finally:
        pierd.terminate()
        try:
            pierd.wait(30)
        except subprocess.TimeoutExpired:
            pierd.kill()
        subprocess.run([os.path.join(BIN, "pier"), "down", "--all", "--home", home])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
