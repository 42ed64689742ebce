"""The client ends of the exec path beyond the happy path: our
session-manager-plugin reconnecting (ResumeSession) when its WebSocket is cut,
under the real AWS CLI; `pier exec` as an interactive shell on a terminal;
and the whole path over TLS (https/wss) with a CA of the test's own."""
import hashlib
import json
import os
import subprocess
import tempfile
import time
import unittest

import pexpect

from cutting_proxy import CuttingProxy
from pier_harness import AWS_V2, BUILD, ENV, PIER, Pierd, start_agent
from tls_proxy import TlsProxy, make_ca

PLUGIN = os.path.join(BUILD, "bin", "session-manager-plugin")
PROMPT = r"[#$] "
ENV_PLUGIN = dict(ENV, PATH=os.path.dirname(PLUGIN) + os.pathsep + ENV.get("PATH", ""))


class ClientsTest(unittest.TestCase):
    def start(self, target, extra_args=(), agent_endpoint=None, agent_args=(), agent_env=None):
        self.pierd = Pierd(extra_args=list(extra_args)).start()
        self.addCleanup(self.pierd.cleanup)
        start_agent(self, agent_endpoint or self.pierd.endpoint, target, os.path.dirname(self.pierd.home),
                    env=agent_env, args=agent_args, pierd=self.pierd)

    def spawn(self, cmd, args, env=ENV_PLUGIN):
        c = pexpect.spawn(cmd, args, env=env, timeout=20, dimensions=(30, 100))
        self.addCleanup(lambda: c.isalive() and c.terminate(force=True))
        return c


class PluginReconnects(ClientsTest):
    TARGET = "mi-0c11e47000000001"

    def test_noninteractive_transfer_through_cuts(self):
        # Stream URLs go through the proxy; the CLI's own calls (StartSession,
        # and the plugin's ResumeSession) go direct.
        proxy = CuttingProxy(0, cut_every=24 << 20)  # the plugin's window is 8 MiB
        self.addCleanup(proxy.close)
        self.start(self.TARGET, ["--public-url", "http://127.0.0.1:%d" % proxy.port])
        proxy.target = ("127.0.0.1", self.pierd.port)
        src = os.path.join(os.path.dirname(self.pierd.home), "src.bin")
        with open(src, "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1024 * 1024))
        with open(src, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        # stdin open but silent: the plugin ends a session when its stdin closes.
        rfd, wfd = os.pipe()
        try:
            p = subprocess.run([AWS_V2, "--endpoint-url", self.pierd.endpoint, "ssm", "start-session",
                                "--target", self.TARGET, "--document-name", "AWS-StartNonInteractiveCommand",
                                "--parameters", json.dumps({"command": ["cat " + src]})],
                               env=ENV_PLUGIN, stdin=rfd, capture_output=True, timeout=240)
        finally:
            os.close(rfd)
            os.close(wfd)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        # The plugin's banner, the bytes, its farewell.
        head = b"\nStarting session with SessionId: "
        self.assertTrue(p.stdout.startswith(head), p.stdout[:200])
        start = p.stdout.index(b"\n", len(head)) + 1
        farewell = b"\n\nExiting session with sessionId"
        self.assertIn(farewell, p.stdout[-300:], p.stdout[-300:])
        end = p.stdout.rindex(farewell)
        data = p.stdout[start:end]
        self.assertEqual(len(data), 100 * 1024 * 1024)
        self.assertEqual(hashlib.sha256(data).hexdigest(), want)
        self.assertGreaterEqual(proxy.cuts, 2, "the proxy did not cut during the session")

    def test_interactive_shell_survives_a_cut(self):
        proxy = CuttingProxy(0)
        self.addCleanup(proxy.close)
        self.start(self.TARGET, ["--public-url", "http://127.0.0.1:%d" % proxy.port])
        proxy.target = ("127.0.0.1", self.pierd.port)
        c = self.spawn(AWS_V2, ["--endpoint-url", self.pierd.endpoint, "ssm", "start-session",
                                "--target", self.TARGET])
        c.expect("Starting session with SessionId")
        c.expect(PROMPT)
        c.sendline("echo before-$((6*7))")
        c.expect("before-42")
        proxy.cut()
        time.sleep(0.5)
        c.sendline("echo after-$((6*7))")
        c.expect("after-42")
        c.sendline("exit")
        c.expect("Exiting session with sessionId")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)


class PierExecInteractive(ClientsTest):
    TARGET = "mi-0c11e47000000002"

    def test_shell_on_a_terminal(self):
        self.start(self.TARGET)
        c = self.spawn(PIER, ["--endpoint", self.pierd.endpoint, "exec", "--target", self.TARGET], env=ENV)
        c.expect(PROMPT)
        c.sendline("echo $((6*7))")
        c.expect("42")
        c.expect(PROMPT)
        c.setwinsize(40, 120)
        # The new size goes on SIGWINCH, which may be handled after the
        # line typed next: ask again until it has arrived.
        for _ in range(20):
            c.sendline("stty size")
            if c.expect(["40 120", "30 100"]) == 0:
                break
            c.expect(PROMPT)
        else:
            self.fail("the new terminal size never arrived")
        c.sendline("exit 3")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)  # a shell session carries no exit code (as SSM)

    def test_no_command_without_a_terminal_is_refused(self):
        self.start(self.TARGET)
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "exec", "--target", self.TARGET],
                           env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a terminal", p.stderr)


class OverTls(ClientsTest):
    TARGET = "mi-0c11e47000000003"

    def test_agent_cli_plugin_and_pier_over_https(self):
        tmp = tempfile.mkdtemp(prefix="pier-tls-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", tmp]))
        ca, cert, key = make_ca(tmp)
        proxy = TlsProxy(cert, key)
        self.addCleanup(proxy.close)
        url = "https://localhost:%d" % proxy.port
        # The proxy's port is known first: pierd hands out its URL, then the proxy learns pierd's.
        pierd = Pierd(extra_args=["--public-url", url]).start()
        self.addCleanup(pierd.cleanup)
        proxy.target_port = pierd.port
        start_agent(self, url, self.TARGET, tmp, args=["--ca-bundle", ca], pierd=pierd)

        # pier over https, verified against the test's CA...
        p = subprocess.run([PIER, "--endpoint", url, "--ca-bundle", ca, "exec", "--target", self.TARGET, "--",
                            "sh", "-c", "echo out; echo err >&2; exit 4"], env=ENV, capture_output=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (4, b"out\n", b"err\n"))
        # ...and refused without it (the system's CAs do not know it).
        p = subprocess.run([PIER, "--endpoint", url, "exec", "--target", self.TARGET, "--", "true"],
                           env=ENV, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("certificate verify failed", p.stderr)

        # The AWS CLI v2 and our plugin, wss:// stream URL, AWS_CA_BUNDLE for both.
        c = self.spawn(AWS_V2, ["--endpoint-url", url, "ssm", "start-session", "--target", self.TARGET],
                       env=dict(ENV_PLUGIN, AWS_CA_BUNDLE=ca))
        c.expect("Starting session with SessionId")
        c.expect(PROMPT)
        c.sendline("echo tls-$((6*7))")
        c.expect("tls-42")
        c.sendline("exit")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)
        self.assertGreaterEqual(proxy.handshakes, 4)


if __name__ == "__main__":
    unittest.main()
