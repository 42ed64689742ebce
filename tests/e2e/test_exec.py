"""The exec path with a host-level target: pier-exec-agent holds a control
channel to pierd's broker; `pier exec` runs a NonInteractiveCommands session
through it with stdout, stderr and the exit code kept apart."""
import os
import subprocess
import time
import unittest

from botocore.exceptions import ClientError

from pier_harness import ENV, PIER, PierTestCase, start_agent, wait_until

TARGET = "mi-0123456789abcdef0"


class Exec(PierTestCase):
    def start_agent(self, target=TARGET, env=None, wait=True):
        return start_agent(self, self.pierd.endpoint, target, os.path.dirname(self.pierd.home), env=env, wait=wait,
                           pierd=self.pierd)

    def pier_exec(self, *command, target=TARGET, timeout=60):
        return subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "exec", "--target", target, "--"]
                              + list(command), env=ENV, capture_output=True, timeout=timeout)

    def test_stdout_stderr_and_exit_code_come_back_apart(self):
        self.start_agent()
        p = self.pier_exec("sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertEqual(p.stdout, b"out\n")
        self.assertEqual(p.stderr, b"err\n")

    def test_arguments_keep_their_words(self):
        self.start_agent()
        p = self.pier_exec("printf", "%s|", "a b", "it's", "")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"a b|it's||")

    def test_binary_output_arrives_exact(self):
        self.start_agent()
        src = os.path.join(os.path.dirname(self.pierd.home), "src.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024))
        p = self.pier_exec("cat", src)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(src, "rb") as f:
            self.assertEqual(p.stdout, f.read())

    def test_unknown_command_is_exit_127(self):
        self.start_agent()
        self.assertEqual(self.pier_exec("/no/such/command").returncode, 127)

    def test_target_without_agent_is_not_connected(self):
        p = self.pier_exec("true", target="mi-00000000000000000")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"(TargetNotConnected)", p.stderr)
        self.assertIn(b"mi-00000000000000000 is not connected.", p.stderr)

    def test_a_killed_agent_is_refused_within_20s(self):
        agent = self.start_agent()
        self.assertEqual(self.pier_exec("true").returncode, 0)
        agent.kill()
        agent.wait()
        ssm = self.pierd.client("ssm")
        deadline = time.time() + 20
        while True:
            try:
                out = ssm.start_session(Target=TARGET)
                ssm.terminate_session(SessionId=out["SessionId"])
            except ClientError as e:
                self.assertEqual(e.response["Error"]["Code"], "TargetNotConnected")
                break
            self.assertLess(time.time(), deadline, "still connected after 20 s")
            time.sleep(0.5)

    def test_sessions_are_described_and_terminated(self):
        self.start_agent()
        ssm = self.checked("ssm")
        p = subprocess.Popen([PIER, "--endpoint", self.pierd.endpoint, "exec", "--target", TARGET, "--",
                              "sleep", "30"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        deadline = time.time() + 10
        active = []
        while not active and time.time() < deadline:
            active = ssm.describe_sessions(State="Active")["Sessions"]
            time.sleep(0.1)
        self.assertEqual(len(active), 1)
        self.assertEqual(active[0]["Target"], TARGET)
        self.assertEqual(active[0]["DocumentName"], "AWS-StartNonInteractiveCommand")
        ssm.terminate_session(SessionId=active[0]["SessionId"])
        p.wait(10)
        history = ssm.describe_sessions(State="History")["Sessions"]
        self.assertEqual([s["SessionId"] for s in history], [active[0]["SessionId"]])
        self.assertEqual(ssm.describe_sessions(State="Active")["Sessions"], [])

    def test_start_session_answers_in_the_model_shape(self):
        self.start_agent()
        ssm = self.checked("ssm")
        out = ssm.start_session(Target=TARGET, DocumentName="AWS-StartNonInteractiveCommand",
                                Parameters={"command": ["true"]})
        self.assertTrue(out["StreamUrl"].startswith("ws://127.0.0.1:"))
        self.assertIn("/v1/data-channel/%s?role=publish_subscribe" % out["SessionId"], out["StreamUrl"])
        self.assertGreaterEqual(len(out["TokenValue"]), 32)
        resumed = ssm.resume_session(SessionId=out["SessionId"])
        self.assertNotEqual(resumed["TokenValue"], out["TokenValue"])
        ssm.terminate_session(SessionId=out["SessionId"])
        with self.assertRaises(ClientError) as e:
            ssm.start_session(Target=TARGET, DocumentName="No-Such-Document")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidDocument")

    def test_agent_without_ssmmessages_permission_never_connects(self):
        c = self.pierd.role_credentials("no-exec")
        self.start_agent(target="mi-11111111111111111", wait=False, env={
            "AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"]})
        self.pierd.wait_log("action=ssmmessages:CreateControlChannel", "code=AccessDenied")
        p = self.pier_exec("true", target="mi-11111111111111111")
        self.assertIn(b"(TargetNotConnected)", p.stderr)

    def test_channels_need_the_open_permissions_too(self):
        """Credentials that may create channels but not open them: the
        WebSocket upgrades are refused (403) for the control and the data
        channel alike, and an agent holding them never connects."""
        c = self.pierd.role_credentials("create-only", ["ssmmessages:CreateControlChannel",
                                                        "ssmmessages:CreateDataChannel"])
        creds = dict(key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
        target = "mi-22222222222222222"
        status, _, body = self.pierd.signed("POST", "/v1/control-channel/" + target, "ssmmessages",
                                            body=b'{"MessageSchemaVersion":"1.0","RequestId":"r"}', **creds)
        self.assertEqual(status, 201, body)
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        for path, action in [("/v1/control-channel/%s?role=subscribe&stream=input" % target,
                              "ssmmessages:OpenControlChannel"),
                             ("/v1/data-channel/some-session?role=publish_subscribe",
                              "ssmmessages:OpenDataChannel")]:
            status, _, body = self.pierd.signed("GET", path, "ssmmessages", headers=dict(upgrade), **creds)
            self.assertEqual(status, 403, (path, body))
            self.assertIn(action.encode(), body)
        agent = self.start_agent(target=target, wait=False, env={
            "AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
            "AWS_SESSION_TOKEN": c["SessionToken"]})
        # Its first upgrade was refused, and it is still trying.
        log = os.path.join(os.path.dirname(self.pierd.home), "agent-%s.log" % target)

        def said():
            with open(log, errors="replace") as f:
                return f.read()
        wait_until(lambda: "ssmmessages:OpenControlChannel" in said(), 20,
                   lambda: "the agent's control channel was not refused:\n" + said())
        self.assertIsNone(agent.poll())
        p = self.pier_exec("true", target=target)
        self.assertIn(b"(TargetNotConnected)", p.stderr)


if __name__ == "__main__":
    unittest.main()
