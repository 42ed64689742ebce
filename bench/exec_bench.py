#!/usr/bin/env python3
"""The exec path, measured: a fresh pierd and a pier-exec-agent (host target)
on loopback. Prints, side by side in one run:
- StartSession → first output byte: `pier exec -- echo x` end to end (its
  wall time, which also holds the pier process start; p50/p99 over N runs);
- non-interactive throughput agent → client for SIZE MiB through the broker,
  next to raw loopback TCP measured in the same run, and the ratio;
- interactive keystroke round trip: a key typed into `pier exec` (a shell
  on a terminal) until its echo from the remote pty is back, next to the
  same through a local pty (sh under the same pexpect driver).
Loopback only; it stops what it starts, by pid.
"""
import argparse
import pexpect
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("PIER_BUILD_DIR", os.path.join(ROOT, "build")), "bin")
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
TARGET = "mi-0be0c4ba5e0000000"


def raw_tcp(size):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = [0]

    def sink():
        c, _ = srv.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            got[0] += len(b)
        c.close()
    t = threading.Thread(target=sink)
    t.start()
    # Same producer as the exec run: dd from /dev/zero in 256 KiB blocks, into a socket.
    cli = socket.create_connection(("127.0.0.1", port))
    t0 = time.perf_counter()
    p = subprocess.Popen(["dd", "if=/dev/zero", "bs=262144", "count=%d" % (size // 262144)], stdout=cli.fileno(),
                         stderr=subprocess.DEVNULL)
    p.wait()
    cli.close()
    t.join()
    dt = time.perf_counter() - t0
    srv.close()
    assert got[0] == size
    return size / dt / 1e6


def drain(argv, env):
    """Runs argv, reading its stdout as the raw TCP sink reads its socket (1 MiB
    at a time, counted, dropped); returns (bytes, seconds, exit code)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    n = 0
    while True:
        b = os.read(p.stdout.fileno(), 1 << 20)
        if not b:
            break
        n += len(b)
    rc = p.wait()
    p.stdout.close()
    return n, time.perf_counter() - t0, rc


def keystrokes(argv, n):
    """Round trip of n single keystrokes to their echo (ms, sorted)."""
    c = pexpect.spawn(argv[0], argv[1:], env=ENV, timeout=20, dimensions=(30, 200))
    c.delaybeforesend = None  # pexpect waits 50 ms before each send by default
    c.expect(r"[#$] ")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        c.send("k")
        c.expect_exact("k")
        times.append((time.perf_counter() - t0) * 1000)
        if i % 50 == 49:
            c.send("\x15")  # Ctrl-U: a fresh line
    c.sendline("")
    c.sendline("exit")
    c.expect(pexpect.EOF)
    c.close()
    return sorted(times)


def pct(xs, q):
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--keys", type=int, default=200)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pier-exec-bench-")
    procs = []
    try:
        pierd = subprocess.Popen([os.path.join(BIN, "pierd"), "--listen", "127.0.0.1:0", "--home",
                                  os.path.join(tmp, "home")], stdout=subprocess.PIPE,
                                 stderr=open(os.path.join(tmp, "pierd.log"), "wb"))
        procs.append(pierd)
        endpoint = pierd.stdout.readline().decode().strip().split("ready on ")[1]
        agent = subprocess.Popen([os.path.join(BIN, "pier-exec-agent"), "--target", TARGET, "--endpoint", endpoint,
                                  "--log-level", "warn"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)
        procs.append(agent)
        agent.stdout.readline()
        cmd = [os.path.join(BIN, "pier"), "--endpoint", endpoint, "exec", "--target", TARGET, "--"]

        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run(cmd + ["echo", "x"], env=ENV, capture_output=True).stdout
            times.append((time.perf_counter() - t0) * 1000)
            assert out == b"x\n"
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        # The first byte itself: the command keeps running after it.
        first = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd + ["sh", "-c", "echo x; sleep 0.2"], env=ENV, stdout=subprocess.PIPE)
            assert p.stdout.read(1) == b"x"
            first.append((time.perf_counter() - t0) * 1000)
            p.communicate()
        first.sort()

        size = args.mib * 1024 * 1024
        got, dt, rc = drain(cmd + ["sh", "-c", "dd if=/dev/zero bs=262144 count=%d 2>/dev/null" % (size // 262144)],
                            ENV)
        assert got == size and rc == 0, (got, rc)
        exec_mbs = size / dt / 1e6
        tcp_mbs = raw_tcp(size)
        keys = keystrokes(cmd[:-1], args.keys)
        local = keystrokes(["sh"], args.keys)

        print("pier exec benchmark (host target, loopback, ws://)")
        print("session start -> first output byte (pier exec, process start included, %d runs): p50 %.1f ms,"
              " p99 %.1f ms (goal p50 <= 30 ms)" % (args.runs, statistics.median(first), pct(first, 0.99)))
        print("whole session (pier exec -- echo x, start to exit, %d runs): p50 %.1f ms, p99 %.1f ms"
              % (args.runs, statistics.median(times), p99))
        print("agent -> client, %d MiB non-interactive: %.0f MB/s; raw loopback TCP: %.0f MB/s; ratio %.3f"
              " (goal >= 300 MB/s)" % (args.mib, exec_mbs, tcp_mbs, exec_mbs / tcp_mbs))
        print("interactive keystroke round trip (%d keys): p50 %.2f ms, p99 %.2f ms; local pty: p50 %.2f ms,"
              " p99 %.2f ms" % (args.keys, statistics.median(keys), pct(keys, 0.99), statistics.median(local),
                                pct(local, 0.99)))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
