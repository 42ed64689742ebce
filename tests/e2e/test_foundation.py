"""The endpoint itself: readiness, both CLIs, SigV4 and its errors, HTTP
behaviour (keep-alive, chunked bodies, 100-continue, limits), shutdown."""
import datetime
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from pier_harness import ENV, PIER, Pierd, PierTestCase, raw


class Readiness(unittest.TestCase):
    def test_prints_ready_with_the_real_port_and_serves(self):
        p = Pierd().start()
        try:
            self.assertRegex(p.endpoint, r"^http://127\.0\.0\.1:\d+$")
            self.assertNotEqual(p.port, 0)
            status, _, body = raw(p.port, "GET", "/_pier/health", {})
            self.assertEqual(status, 200)
            self.assertIn("ecs", json.loads(body)["services"])
        finally:
            p.cleanup()

    def test_two_instances_do_not_share_state(self):
        a, b = Pierd().start(), Pierd().start()
        try:
            a.client("ecs").create_cluster(clusterName="only-in-a")
            self.assertEqual(len(a.client("ecs").list_clusters()["clusterArns"]), 1)
            self.assertEqual(b.client("ecs").list_clusters()["clusterArns"], [])
        finally:
            a.cleanup()
            b.cleanup()

    def test_a_second_pierd_on_the_same_home_is_refused(self):
        a = Pierd().start()
        try:
            p = subprocess.run([os.path.join(os.path.dirname(PIER), "pierd"), "--listen", "127.0.0.1:0",
                                "--home", a.home], capture_output=True, text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("another pierd", p.stderr)
        finally:
            a.cleanup()

    def test_sigterm_stops_gracefully_with_an_idle_connection_open(self):
        p = Pierd().start()
        try:
            s = socket.create_connection(("127.0.0.1", p.port))
            s.sendall(b"GET /_pier/health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"200 OK", s.recv(4096))
            t0 = time.time()
            rc = p.stop(signal.SIGTERM, timeout=10)
            self.assertEqual(rc, 0)
            self.assertLess(time.time() - t0, 6)
            s.close()
        finally:
            p.cleanup()


class CallerIdentity(PierTestCase):
    def test_both_clis_see_the_default_account(self):
        for v in (1, 2):
            ident = self.pierd.cli_json(v, "sts", "get-caller-identity")
            self.assertEqual(ident["Account"], "000000000000", "CLI v%d" % v)
            self.assertEqual(ident["Arn"], "arn:aws:iam::000000000000:root")

    def test_cli_v2_is_really_v2(self):
        out = subprocess.run(["/usr/bin/aws", "--version"], capture_output=True, text=True).stdout
        self.assertTrue(out.startswith("aws-cli/2."), out)

    def test_boto3(self):
        ident = self.checked("sts").get_caller_identity()
        self.assertEqual(ident["Account"], "000000000000")

    def test_region_comes_from_the_credential_scope(self):
        arn = self.pierd.client("ecs", region="eu-west-1").create_cluster(clusterName="c")["cluster"]["clusterArn"]
        self.assertEqual(arn, "arn:aws:ecs:eu-west-1:000000000000:cluster/c")
        self.assertEqual(self.pierd.client("ecs").list_clusters()["clusterArns"], [])

    def test_pier_cli_uses_the_endpoint_and_credentials(self):
        env = dict(ENV, AWS_ENDPOINT_URL=self.pierd.endpoint)
        p = subprocess.run([PIER, "status"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("arn:aws:iam::000000000000:root", p.stdout)
        self.assertIn("ecs", p.stdout)
        bad = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "whoami"],
                             env=dict(ENV, AWS_SECRET_ACCESS_KEY="wrong"), capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("SignatureDoesNotMatch", bad.stderr)


class SignatureErrors(PierTestCase):
    def expect_cli_error(self, version, code, *args, env=None):
        p = self.pierd.cli(version, *args, env=env, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("(%s)" % code, p.stderr, "CLI v%d: %s" % (version, p.stderr))
        return p.stderr

    def test_wrong_secret(self):
        for v in (1, 2):
            self.expect_cli_error(v, "InvalidSignatureException", "ecs", "list-clusters",
                                  env={"AWS_SECRET_ACCESS_KEY": "wrong"})
            self.expect_cli_error(v, "SignatureDoesNotMatch", "sts", "get-caller-identity",
                                  env={"AWS_SECRET_ACCESS_KEY": "wrong"})

    def test_unknown_access_key(self):
        for v in (1, 2):
            self.expect_cli_error(v, "UnrecognizedClientException", "ecs", "list-clusters",
                                  env={"AWS_ACCESS_KEY_ID": "AKIANOTAKEY"})
            self.expect_cli_error(v, "InvalidClientTokenId", "sts", "get-caller-identity",
                                  env={"AWS_ACCESS_KEY_ID": "AKIANOTAKEY"})

    def test_expired_date(self):
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=6)
        body = b"{}"
        status, hdrs, data = self.pierd.signed(
            "POST", "/", "ecs", body, {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
                                       "Content-Type": "application/x-amz-json-1.1"}, when=when)
        self.assertEqual(status, 400)
        err = json.loads(data)
        self.assertEqual(err["__type"], "InvalidSignatureException")
        self.assertTrue(err["message"].startswith("Signature expired: "), err["message"])
        self.assertIn("x-amzn-requestid", hdrs)
        status, _, data = self.pierd.signed(
            "POST", "/", "sts", b"Action=GetCallerIdentity&Version=2011-06-15",
            {"Content-Type": "application/x-www-form-urlencoded"}, when=when)
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", data)
        self.assertIn(b"Signature expired: ", data)

    def test_within_the_window_is_fine(self):
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=4)
        status, _, _ = self.pierd.signed(
            "POST", "/", "ecs", b"{}", {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
                                        "Content-Type": "application/x-amz-json-1.1"}, when=when)
        self.assertEqual(status, 200)

    def test_missing_signature(self):
        status, _, data = raw(self.pierd.port, "POST", "/", {
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
            "Content-Type": "application/x-amz-json-1.1"}, b"{}")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(data)["__type"], "MissingAuthenticationTokenException")
        status, _, data = raw(self.pierd.port, "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"},
                              b"Action=GetCallerIdentity&Version=2011-06-15")
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>MissingAuthenticationToken</Code>", data)

    def test_incomplete_signature(self):
        status, _, data = raw(self.pierd.port, "POST", "/", {
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Date": "20261201T000000Z",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261201/us-east-1/ecs/aws4_request"}, b"{}")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(data)["__type"], "IncompleteSignatureException")

    def test_unknown_action(self):
        status, _, data = self.pierd.signed(
            "POST", "/", "ecs", b"{}", {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.FlyToTheMoon",
                                        "Content-Type": "application/x-amz-json-1.1"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(data)["__type"], "UnknownOperationException")
        status, _, data = self.pierd.signed(
            "POST", "/", "sts", b"Action=FlyToTheMoon&Version=2011-06-15",
            {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>InvalidAction</Code>", data)

    def test_presigned_url(self):
        sts = self.pierd.client("sts")
        url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
        path = url[len(self.pierd.endpoint):]
        status, _, data = raw(self.pierd.port, "GET", path, {})
        self.assertEqual(status, 200, data)
        self.assertIn(b"<Account>000000000000</Account>", data)

    def test_presigned_url_expires(self):
        sts = self.pierd.client("sts")
        url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=1, HttpMethod="GET")
        time.sleep(2.1)
        status, _, data = raw(self.pierd.port, "GET", url[len(self.pierd.endpoint):], {})
        self.assertEqual(status, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", data)
        self.assertIn(b"Request has expired", data)


class Http(PierTestCase):
    def _signed_headers(self, body):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        req = AWSRequest(method="POST", url="http://127.0.0.1:%d/" % self.pierd.port, data=body, headers={
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.CreateCluster",
            "Content-Type": "application/x-amz-json-1.1"})
        SigV4Auth(Credentials("test", "test"), "ecs", "us-east-1").add_auth(req)
        return dict(req.headers.items())

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        s = socket.create_connection(("127.0.0.1", self.pierd.port))
        f = s.makefile("rb")
        for _ in range(5):
            s.sendall(b"GET /_pier/health HTTP/1.1\r\nHost: x\r\n\r\n")
            status = f.readline()
            self.assertIn(b"200", status)
            length = 0
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)
        s.close()

    def test_chunked_body_and_expect_100_continue(self):
        body = json.dumps({"clusterName": "chunky"}).encode()
        h = self._signed_headers(body)
        s = socket.create_connection(("127.0.0.1", self.pierd.port))
        head = "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % self.pierd.port
        for k, v in h.items():
            if k.lower() != "content-length":
                head += "%s: %s\r\n" % (k, v)
        head += "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        s.sendall(head.encode())
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 100 Continue"))
        half = len(body) // 2
        for part in (body[:half], body[half:]):
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
        resp = b""
        while b"chunky" not in resp:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
        s.close()
        self.assertIn(b"200 OK", resp.split(b"\r\n")[0])
        self.assertIn(b"cluster/chunky", resp)

    def test_oversized_body_is_refused_before_it_is_read(self):
        s = socket.create_connection(("127.0.0.1", self.pierd.port))
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
        resp = s.recv(4096)
        self.assertTrue(resp.startswith(b"HTTP/1.1 413"), resp)
        s.close()

    def test_garbage_is_a_400_not_a_crash(self):
        s = socket.create_connection(("127.0.0.1", self.pierd.port))
        s.sendall(b"\x00\x01GARBAGE\r\n\r\n")
        resp = s.recv(4096)
        self.assertTrue(resp.startswith(b"HTTP/1.1 400"), resp)
        s.close()
        status, _, _ = raw(self.pierd.port, "GET", "/_pier/health", {})
        self.assertEqual(status, 200)


class AccessLog(PierTestCase):
    def test_one_line_per_request_without_secrets(self):
        sts = self.pierd.client("sts")
        sts.get_caller_identity()
        creds = self._assume()
        self.pierd.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                          token=creds["SessionToken"]).get_caller_identity()
        time.sleep(0.2)
        log = self.pierd.log_text()
        lines = [l for l in log.splitlines() if "[access]" in l and "action=GetCallerIdentity" in l]
        self.assertEqual(len(lines), 2, log)
        self.assertIn("service=sts", lines[0])
        self.assertIn("status=200", lines[0])
        self.assertRegex(lines[0], r"latency_us=\d+ id=[0-9a-f-]{36} src=127\.0\.0\.1")
        for secret in (creds["SecretAccessKey"], creds["SessionToken"], "Signature="):
            self.assertNotIn(secret, log)

    def _assume(self):
        iam = self.pierd.client("iam")
        iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                                                    "Action": "sts:AssumeRole"}]}))
        return self.pierd.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/r",
                                                    RoleSessionName="sess")["Credentials"]


if __name__ == "__main__":
    unittest.main()
