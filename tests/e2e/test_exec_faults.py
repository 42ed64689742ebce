"""The exec path under faults: every WebSocket (the agent's and the
client's) cut again and again during a non-interactive transfer through a
proxy of the test's own; the bytes arrive exact, in order, once."""
import hashlib
import os
import subprocess
import time
import unittest

from cutting_proxy import CuttingProxy
from pier_harness import ENV, PIER, Pierd, start_agent

TARGET = "mi-0fa0175000000cut"


class Cuts(unittest.TestCase):
    def test_transfer_survives_repeated_cuts(self):
        # pierd hands out stream URLs that go through the proxy, and the agent
        # reaches pierd only through it; pier's own API calls go direct.
        # A cut after every 24 MiB through it (both data channels pass it,
        # and each may resend up to its 8 MiB window after a cut).
        proxy = CuttingProxy(0, cut_every=24 << 20)
        self.addCleanup(proxy.close)
        pierd = Pierd(extra_args=["--public-url", "http://127.0.0.1:%d" % proxy.port]).start()
        self.addCleanup(pierd.cleanup)
        proxy.target = ("127.0.0.1", pierd.port)

        start_agent(self, "http://127.0.0.1:%d" % proxy.port, TARGET, os.path.dirname(pierd.home), pierd=pierd)

        src = os.path.join(os.path.dirname(pierd.home), "src.bin")
        with open(src, "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1024 * 1024))
        want = hashlib.sha256(open(src, "rb").read()).hexdigest()

        p = subprocess.run([PIER, "--endpoint", pierd.endpoint, "exec", "--target", TARGET, "--", "cat", src],
                           env=ENV, capture_output=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual(len(p.stdout), 100 * 1024 * 1024)
        self.assertEqual(hashlib.sha256(p.stdout).hexdigest(), want)
        self.assertGreaterEqual(proxy.cuts, 2, "the proxy did not cut the connections during the transfer")


class Stall(unittest.TestCase):
    def test_a_stalled_agent_path_is_refused_within_20s_and_recovers(self):
        # Liveness (§6.4): pierd pings every 5 s and drops a control channel
        # silent for 15 s; the path here stalls without a FIN.
        proxy = CuttingProxy(0)
        self.addCleanup(proxy.close)
        pierd = Pierd().start()
        self.addCleanup(pierd.cleanup)
        proxy.target = ("127.0.0.1", pierd.port)
        target = "mi-0fa0175000005a11"
        start_agent(self, "http://127.0.0.1:%d" % proxy.port, target, os.path.dirname(pierd.home), pierd=pierd)
        exec_ = lambda: subprocess.run([PIER, "--endpoint", pierd.endpoint, "exec", "--target", target, "--",
                                        "echo", "up"], env=ENV, capture_output=True, timeout=60)
        self.assertEqual(exec_().stdout, b"up\n")

        proxy.stall()
        t0 = time.time()
        ssm = pierd.client("ssm")
        while True:
            try:
                s = ssm.start_session(Target=target)
                ssm.terminate_session(SessionId=s["SessionId"])
            except ssm.exceptions.TargetNotConnected as e:
                self.assertIn("is not connected", str(e))
                break
            self.assertLess(time.time() - t0, 20, "a stalled target was still handed sessions after 20 s")
            time.sleep(0.5)
        self.assertLessEqual(time.time() - t0, 20.5)

        # The path comes back: the agent reconnects by itself (backoff capped at 5 s).
        proxy.resume()
        deadline = time.time() + 45
        while time.time() < deadline:
            p = exec_()
            if p.returncode == 0:
                break
            time.sleep(0.5)
        self.assertEqual(p.stdout, b"up\n", p.stderr)


if __name__ == "__main__":
    unittest.main()
