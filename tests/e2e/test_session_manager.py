"""`aws ssm start-session` with the real AWS CLI (v1 and v2) running our
session-manager-plugin, driven through a pty with pexpect: a shell on a host
target served by pier-exec-agent."""
import os
import subprocess
import time
import unittest

import pexpect

from pier_harness import AWS_V1, AWS_V2, BUILD, ENV, PierTestCase

AGENT = os.path.join(BUILD, "bin", "pier-exec-agent")
PLUGIN = os.path.join(BUILD, "bin", "session-manager-plugin")
TARGET = "mi-0fedcba9876543210"
PROMPT = r"[#$] "


class Plugin(unittest.TestCase):
    def test_install_check_and_version(self):
        p = subprocess.run([PLUGIN], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("The Session Manager plugin was installed successfully", p.stdout)
        v = subprocess.run([PLUGIN, "--version"], capture_output=True, text=True).stdout.strip()
        parts = [int(x) for x in v.split(".")]
        self.assertGreater(parts, [1, 2, 497, 0])  # so newer CLIs pass the session in the environment
        p = subprocess.run([PLUGIN, "bogus"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("Unknown operation bogus", p.stdout)


class StartSession(PierTestCase):
    def setUp(self):
        super().setUp()
        log = open(os.path.join(os.path.dirname(self.pierd.home), "agent.log"), "wb")
        self.agent = subprocess.Popen([AGENT, "--target", TARGET, "--endpoint", self.pierd.endpoint],
                                      stdout=subprocess.PIPE, stderr=log, env=ENV)

        def stop():
            if self.agent.poll() is None:
                self.agent.terminate()
                self.agent.wait(10)
            self.agent.stdout.close()
            log.close()
        self.addCleanup(stop)
        self.assertIn("connected as " + TARGET, self.agent.stdout.readline().decode())
        self.pierd.wait_control_channel(TARGET, 0)
        self.env = dict(ENV, PATH=os.path.dirname(PLUGIN) + os.pathsep + ENV.get("PATH", ""))

    def shell(self, cli):
        c = pexpect.spawn(cli, ["--endpoint-url", self.pierd.endpoint, "ssm", "start-session", "--target", TARGET],
                          env=self.env, timeout=20, dimensions=(30, 100))
        self.addCleanup(lambda: c.isalive() and c.terminate(force=True))
        c.expect("Starting session with SessionId")
        c.expect(PROMPT)
        return c

    def check_shell(self, cli):
        c = self.shell(cli)
        c.sendline("echo $((6*7))")
        c.expect("42")
        c.expect(PROMPT)
        c.sendline("stty size")
        c.expect("30 100")
        c.setwinsize(40, 120)
        time.sleep(0.3)  # the plugin sends the new size on SIGWINCH
        c.sendline("stty size")
        c.expect("40 120")
        c.expect(PROMPT)
        # Ctrl-C reaches the remote sleep, not the plugin: the prompt comes
        # back and the rest of the line never runs. (The echo of the typed
        # line shows the arithmetic unexpanded.)
        c.sendline("sleep 30; echo done-$((6*7))")
        c.expect("sleep 30")
        time.sleep(0.5)
        c.sendintr()
        self.assertEqual(c.expect([PROMPT, "done-42"], timeout=10), 0, "the sleep was not interrupted")
        c.sendline("exit")
        c.expect("Exiting session with sessionId")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)

    def test_cli_v1(self):
        self.check_shell(AWS_V1)

    def test_cli_v2(self):
        self.check_shell(AWS_V2)

    def test_interactive_command_document(self):
        """AWS-StartInteractiveCommand (InteractiveCommands): the command on a
        terminal, typed input reaching it, the CLI returning 0 when it ends."""
        c = pexpect.spawn(AWS_V2, ["--endpoint-url", self.pierd.endpoint, "ssm", "start-session", "--target",
                                   TARGET, "--document-name", "AWS-StartInteractiveCommand", "--parameters",
                                   '{"command":["sh -c \'printf ask:; read x; echo got-$x-$(tty)\'"]}'],
                          env=self.env, timeout=20, dimensions=(30, 100))
        self.addCleanup(lambda: c.isalive() and c.terminate(force=True))
        c.expect("Starting session with SessionId")
        c.expect("ask:")
        c.sendline("abc")
        c.expect(r"got-abc-/dev/pts/\d+")
        c.expect("Exiting session with sessionId")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)

    def test_terminate_session_ends_the_client(self):
        c = self.shell(AWS_V1)
        ssm = self.pierd.client("ssm")
        sessions = ssm.describe_sessions(State="Active")["Sessions"]
        self.assertEqual(len(sessions), 1)
        ssm.terminate_session(SessionId=sessions[0]["SessionId"])
        c.expect("Exiting session with sessionId")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)

    def test_target_not_connected(self):
        p = subprocess.run([AWS_V1, "--endpoint-url", self.pierd.endpoint, "ssm", "start-session",
                            "--target", "mi-00000000000000099"], env=self.env, capture_output=True, text=True,
                           timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("(TargetNotConnected)", p.stderr)


if __name__ == "__main__":
    unittest.main()
