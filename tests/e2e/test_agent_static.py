"""pier-exec-agent as it will run inside a container image: statically linked,
alone in a chroot with nothing but busybox, finding ssmmessages by name
through the image's resolv.conf (a DNS server of the test's own), and getting
its credentials from a container credentials endpoint (AssumeRole credentials
of a role allowed ssmmessages, behind an authorization token)."""
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

from pier_harness import BUILD, ENV, PIER, Pierd

AGENT = os.path.join(BUILD, "bin", "pier-exec-agent")
TARGET = "mi-0a9e575a71c000001"
NAMESERVER = "127.0.0.77"  # loopback: the whole 127/8 is local
NAME = "ssmmessages.us-east-1.amazonaws.com"


class FakeDns:
    """Answers A queries for the names it knows, NOERROR/empty for other
    types of those names, NXDOMAIN for the rest."""

    def __init__(self, addr, names):
        self.names = names
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            qid, flags, qd = struct.unpack(">HHH", data[:6])
            i, labels = 12, []
            while data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode())
                i += data[i] + 1
            qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
            question = data[12:i + 5]
            name = ".".join(labels).lower()
            self.queries.append((name, qtype))
            known = name in self.names
            answers = b""
            if known and qtype == 1:
                answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(self.names[name])
            rflags = 0x8180 | (0 if known else 3)
            header = struct.pack(">HHHHHH", qid, rflags, 1, 1 if answers else 0, 0, 0)
            self.sock.sendto(header + question + answers, peer)

    def close(self):
        self.sock.close()


class StaticAgent(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (chroot, port 53)")
        self.pierd = Pierd().start()
        self.addCleanup(self.pierd.cleanup)

    def test_static_agent_in_a_bare_chroot(self):
        out = subprocess.run(["file", AGENT], capture_output=True, text=True).stdout
        self.assertIn("statically linked", out)

        # The role the "task" runs as, and its credentials behind the endpoint.
        c = self.pierd.role_credentials("exec-task", ["ssmmessages:CreateControlChannel",
                                                      "ssmmessages:CreateDataChannel",
                                                      "ssmmessages:OpenControlChannel",
                                                      "ssmmessages:OpenDataChannel"], session="task")
        body = json.dumps({"RoleArn": "arn:aws:iam::000000000000:role/exec-task",
                           "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                           "Token": c["SessionToken"],
                           "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
        seen = []

        class Creds(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization")))
                ok = self.path == "/v2/credentials/task-1" and self.headers.get("Authorization") == "tok-123"
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if ok else b'{"message":"no"}')

            def log_message(self, *a):
                pass
        creds = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Creds)
        threading.Thread(target=creds.serve_forever, daemon=True).start()
        self.addCleanup(creds.shutdown)

        dns = FakeDns(NAMESERVER, {NAME: "127.0.0.1"})
        self.addCleanup(dns.close)

        # A root with busybox and the agent, nothing else: no libc, no NSS.
        root = tempfile.mkdtemp(prefix="pier-chroot-")
        self.addCleanup(lambda: shutil.rmtree(root, ignore_errors=True))
        for d in ("bin", "etc", "tmp"):
            os.makedirs(os.path.join(root, d))
        shutil.copy(AGENT, os.path.join(root, "bin", "pier-exec-agent"))
        shutil.copy(shutil.which("busybox"), os.path.join(root, "bin", "busybox"))
        for tool in ("sh", "echo", "cat"):
            os.symlink("busybox", os.path.join(root, "bin", tool))
        with open(os.path.join(root, "etc", "resolv.conf"), "w") as f:
            f.write("nameserver %s\n" % NAMESERVER)
        with open(os.path.join(root, "etc", "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")

        env = {"PATH": "/bin", "AWS_REGION": "us-east-1",
               "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:%d/v2/credentials/task-1" % creds.server_port,
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok-123"}
        log = open(os.path.join(root, "..", os.path.basename(root) + ".agent.log"), "wb")
        agent = subprocess.Popen([shutil.which("chroot"), root, "/bin/pier-exec-agent", "--target", TARGET,
                                  "--endpoint", "http://%s:%d" % (NAME, self.pierd.port)],
                                 stdout=subprocess.PIPE, stderr=log, env=env)

        def stop():
            agent.terminate()
            agent.wait(10)
            agent.stdout.close()
            log.close()
            os.unlink(log.name)
        self.addCleanup(stop)
        line = agent.stdout.readline().decode()
        with open(log.name) as f:
            self.assertIn("connected as " + TARGET, line, f.read()[-2000:])
        self.pierd.wait_control_channel(TARGET, 0)

        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "exec", "--target", TARGET, "--",
                            "sh", "-c", "echo in-chroot; cat /etc/resolv.conf"],
                           env=ENV, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "in-chroot\nnameserver %s\n" % NAMESERVER)
        self.assertIn((NAME, 1), dns.queries)
        # The agent's environment holds no keys: the endpoint's were the only ones it had.
        self.assertIn(("/v2/credentials/task-1", "tok-123"), seen)


if __name__ == "__main__":
    unittest.main()
