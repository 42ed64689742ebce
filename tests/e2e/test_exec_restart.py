"""pierd killed with -9 in the middle of a session and back within 5 s on the
same home and port: the agent reconnects by itself, the open session resumes
with every line once and in order, and new sessions work."""
import os
import subprocess
import time
import unittest

from pier_harness import ENV, PIER, Pierd, start_agent

TARGET = "mi-0fa0175000restart"


class Restart(unittest.TestCase):
    def test_session_survives_kill9_of_pierd(self):
        pierd = Pierd().start()
        self.addCleanup(lambda: current[0].cleanup())
        current = [pierd]
        home, port = pierd.home, pierd.port

        start_agent(self, pierd.endpoint, TARGET, os.path.dirname(home), pierd=pierd)

        # 0.05 s per line for ~6 s: pierd dies after the first second.
        n = 120
        script = "i=1; while [ $i -le %d ]; do echo line-$i; i=$((i+1)); sleep 0.05; done; echo err >&2; exit 7" % n
        session = subprocess.Popen([PIER, "--endpoint", pierd.endpoint, "exec", "--target", TARGET, "--",
                                    "sh", "-c", script], env=ENV, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        first = session.stdout.readline()  # the session is under way
        self.assertEqual(first, b"line-1\n")
        time.sleep(1.0)
        pierd.kill9()
        time.sleep(1.0)
        restarted = Pierd(home=home, port=port)
        restarted.tmp = pierd.tmp  # one cleanup removes the home
        pierd.tmp = None
        restarted.start()
        current[0] = restarted

        out, err = session.communicate(timeout=90)
        out = first + out
        self.assertEqual(session.returncode, 7, err.decode(errors="replace")[-2000:])
        self.assertEqual(out.decode().split(), ["line-%d" % i for i in range(1, n + 1)])
        self.assertIn(b"err", err)

        # The record survived too, and the session ended normally.
        ssm = restarted.client("ssm")
        history = ssm.describe_sessions(State="History")["Sessions"]
        self.assertIn(TARGET, [s["Target"] for s in history])

        # A new session on the reconnected agent (it reconnects by itself
        # within its 5 s backoff cap).
        deadline = time.time() + 20
        while True:
            p = subprocess.run([PIER, "--endpoint", restarted.endpoint, "exec", "--target", TARGET, "--",
                                "echo", "again"], env=ENV, capture_output=True, timeout=60)
            if p.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        self.assertEqual(p.stdout, b"again\n")


if __name__ == "__main__":
    unittest.main()
