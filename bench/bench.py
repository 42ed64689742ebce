#!/usr/bin/env python3
"""pierd against moto_server, side by side, with the same load.

Starts a fresh pierd and a moto_server on loopback, seeds both with the same
cluster and task definitions, then drives each with
`wrk -t2 -c16 -d10s` on DescribeClusters and ListTaskDefinitions (requests
signed once by botocore and replayed within their 5-minute window). Prints
requests/s, p50 and p99 for each and the ratio, and pierd's time to ready and
idle RSS. Loopback only; every process it starts is stopped by its pid.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIERD = os.path.join(os.environ.get("PIER_BUILD_DIR", os.path.join(ROOT, "build")), "bin", "pierd")
TARGET = "AmazonEC2ContainerServiceV20141113."
CALLS = {
    "DescribeClusters": b'{"clusters":["bench"]}',
    "ListTaskDefinitions": b'{}',
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def seed(endpoint):
    ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))
    ecs.create_cluster(clusterName="bench")
    for _ in range(5):
        ecs.register_task_definition(family="bench", containerDefinitions=[{"name": "a", "image": "busybox",
                                                                            "memory": 128}])


def lua_script(port, action, body, path):
    req = AWSRequest(method="POST", url="http://127.0.0.1:%d/" % port, data=body,
                     headers={"X-Amz-Target": TARGET + action, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(req)
    lines = ['wrk.method = "POST"', 'wrk.body = %s' % lua_str(body.decode())]
    for k, v in req.headers.items():
        lines.append('wrk.headers[%s] = %s' % (lua_str(k), lua_str(v)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError("wrk latency: %r" % text)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def run_wrk(port, action, tmp, duration, connections, threads):
    script = os.path.join(tmp, "%s-%d.lua" % (action, port))
    lua_script(port, action, CALLS[action], script)
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency",
                          "-s", script, "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": int(non2xx.group(1)) if non2xx else 0, "raw": out}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-moto", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pier-bench-")
    procs = []
    try:
        # pierd: time to ready (spawn → "ready" line) and idle RSS.
        t0 = time.perf_counter()
        pierd = subprocess.Popen([PIERD, "--listen", "127.0.0.1:0", "--home", os.path.join(tmp, "home"),
                                  ], stdout=subprocess.PIPE,
                                 stderr=open(os.path.join(tmp, "pierd.log"), "wb"))
        procs.append(pierd)
        line = pierd.stdout.readline().decode()
        ready_s = time.perf_counter() - t0
        pport = int(line.strip().rsplit(":", 1)[1])
        time.sleep(1.0)
        idle_rss = rss_kib(pierd.pid)

        targets = [("pierd", pport)]
        if not args.no_moto and shutil.which("moto_server"):
            mport = free_port()
            moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(mport)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(moto)
            if not wait_port(mport):
                sys.exit("bench: moto_server did not start")
            targets.append(("moto_server", mport))

        for _, port in targets:
            seed("http://127.0.0.1:%d" % port)

        results = {}
        for action in CALLS:
            for name, port in targets:
                results[(name, action)] = run_wrk(port, action, tmp, args.duration, args.connections, args.threads)
        loaded_rss = rss_kib(pierd.pid)

        print("pier benchmark: wrk -t%d -c%d -d%ds, signed requests replayed, loopback" %
              (args.threads, args.connections, args.duration))
        print("%-22s %-12s %12s %9s %9s %7s" % ("action", "server", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
        for action in CALLS:
            for name, _ in targets:
                r = results[(name, action)]
                print("%-22s %-12s %12.0f %9.3f %9.3f %7d" % (action, name, r["rps"], r["p50"], r["p99"], r["errors"]))
            if len(targets) > 1:
                ratio = results[("pierd", action)]["rps"] / max(results[("moto_server", action)]["rps"], 1e-9)
                print("%-22s %-12s %11.1fx" % (action, "ratio", ratio))
        print("pierd time to ready: %.3f s (goal <= 0.3 s)" % ready_s)
        print("pierd idle RSS: %.1f MB (goal <= 30 MB); after load: %.1f MB" % (idle_rss / 1024, loaded_rss / 1024))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
