"""Starts a pierd of its own for a test, and the helpers the e2e tests share.

Every test gets a fresh --home under a temporary directory and a free port;
pierd is stopped by its pid and its home removed when the test ends.
"""
import datetime
import json
import os
import shutil
import select
import signal
import subprocess
import tempfile
import time
import unittest

import boto3
import botocore.exceptions
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.config import Config

BUILD = os.environ.get("PIER_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
PIERD = os.path.join(BUILD, "bin", "pierd")
PIER = os.path.join(BUILD, "bin", "pier")
AWS_V1 = shutil.which("aws")  # the pip-installed v1 that comes with the machine
AWS_V2 = "/usr/bin/aws"       # Debian's awscli (v2)

ENV = dict(os.environ)
ENV.update({
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_PAGER": "",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
})
ENV.pop("AWS_SESSION_TOKEN", None)
ENV.pop("AWS_PROFILE", None)


AGENT = os.path.join(BUILD, "bin", "pier-exec-agent")


def wait_until(fn, timeout, what):
    """fn() until it gives something true, which is returned; AssertionError
    after timeout seconds, with `what` (or what() when it is callable)."""
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError("%s after %d s" % (what() if callable(what) else what, timeout))
        time.sleep(0.05)


def start_agent(testcase, endpoint, target, logdir, env=None, args=(), argv=None, wait=True, pierd=None):
    """A pier-exec-agent for `target` against `endpoint` (or the given argv),
    its stderr in logdir, stopped by pid when the test ends; with wait, once
    it says it is connected and, given the pierd, once that pierd has the
    control channel (the agent's line means only that its open frame went)."""
    seen = pierd.control_channels_up(target) if pierd and wait else 0
    e = dict(ENV)
    if env:
        e.update(env)
    log = open(os.path.join(logdir, "agent-%s.log" % target), "wb")
    cmd = argv or [AGENT, "--target", target, "--endpoint", endpoint] + list(args)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=e)

    def stop():
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p.stdout.close()
        log.close()
    testcase.addCleanup(stop)
    if wait:
        line = p.stdout.readline().decode()
        with open(log.name, "rb") as f:
            testcase.assertIn("connected as " + target, line, f.read()[-2000:].decode(errors="replace"))
        if pierd:
            pierd.wait_control_channel(target, seen)
    return p


class Pierd:
    """One pierd process with its own home and port."""

    def __init__(self, home=None, extra_args=(), port=0):
        self.tmp = None
        if home is None:
            self.tmp = tempfile.mkdtemp(prefix="pier-e2e-")
            home = os.path.join(self.tmp, "home")
        self.home = home
        self.extra_args = list(extra_args)
        self.listen_port = port
        self.proc = None
        self.endpoint = None
        self.log_path = os.path.join(os.path.dirname(home), "pierd-%d.log" % id(self))

    def start(self, timeout=30):
        """pierd, once it says it is ready; if it does not within timeout, or
        exits first, it is stopped again and RuntimeError raised."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PIERD, "--listen", "127.0.0.1:%d" % self.listen_port, "--home", self.home] + self.extra_args,
                                     stdout=subprocess.PIPE, stderr=self.log)
        deadline = time.time() + timeout
        fd, line = self.proc.stdout.fileno(), b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:  # timed out, or pierd exited
                self.stop(signal.SIGKILL)
                raise RuntimeError("pierd did not start: %r (log %s)" % (line, self.log_path))
            line += chunk
        line = line.decode()
        if "ready on " not in line:
            self.stop(signal.SIGKILL)
            raise RuntimeError("pierd did not start: %r (log %s)" % (line, self.log_path))
        self.endpoint = line.strip().split("ready on ", 1)[1]
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def cleanup(self):
        self.stop()
        if os.environ.get("PIER_TEST_KEEP_LOGS") and os.path.exists(self.log_path):
            shutil.copy(self.log_path, os.path.join(os.environ["PIER_TEST_KEEP_LOGS"],
                                                    "pierd-%d.log" % int(time.time() * 1000)))
        if os.geteuid() == 0:  # the kernel objects its network controller made
            subprocess.run([PIER, "down", "--all", "--home", self.home], capture_output=True)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, *words, timeout=20):
        """Until a line of this pierd's log has all of `words`; that line."""
        return wait_until(lambda: next((l for l in self.log_text().splitlines() if all(w in l for w in words)), None),
                          timeout, "no line with %s in pierd's log" % (words,))

    def control_channels_up(self, target):
        """How many times this pierd has registered a control channel for target."""
        return self.log_text().count("control channel up: %s\n" % target)

    def wait_control_channel(self, target, seen, timeout=20):
        """Until a control channel for target has come up since `seen` were."""
        wait_until(lambda: self.control_channels_up(target) > seen, timeout,
                   "pierd registered no control channel for %s" % target)

    # -- clients -----------------------------------------------------------
    def client(self, service, key="test", secret="test", token=None, region="us-east-1"):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            aws_session_token=token,
                            config=Config(retries={"max_attempts": 1}))

    def cli(self, version, *args, env=None, check=True):
        exe = AWS_V1 if version == 1 else AWS_V2
        e = dict(ENV)
        if env:
            e.update(env)
        cmd = [exe, "--endpoint-url", self.endpoint, "--output", "json"] + list(args)
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(cmd[3:]), p.returncode, p.stderr))
        return p

    def cli_json(self, version, *args, **kw):
        out = self.cli(version, *args, **kw).stdout
        return json.loads(out) if out.strip() else {}

    def role_credentials(self, name, actions=(), session="agent"):
        """A role the account's root may assume, allowed `actions` on "*" (none:
        no policy), and credentials of one session of it (STS Credentials)."""
        iam = self.client("iam")
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                    "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                                                    "Action": "sts:AssumeRole"}]}))
        if actions:
            iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                                                        "Action": list(actions)}]}))
        return self.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/" + name,
                                              RoleSessionName=session)["Credentials"]

    # -- raw signed requests ----------------------------------------------
    def signed(self, method, path, service, body=b"", headers=None, key="test", secret="test",
               when=None, region="us-east-1", token=None):
        url = self.endpoint + path
        req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
        signer = SigV4Auth(Credentials(key, secret, token), service, region)
        if when is not None:
            # botocore reads the signing time from botocore.auth.get_current_datetime.
            from unittest import mock
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                signer.add_auth(req)
        else:
            signer.add_auth(req)
        return raw(self.port, method, path, dict(req.headers.items()), body)


def raw(port, method, path, headers, body=b"", timeout=10):
    """One HTTP/1.1 request on a new connection; returns (status, headers, body)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


# -- checking responses against the botocore model -----------------------

_session = botocore.session.get_session()


# Values AWS itself returns that its models' enums leave out.
AWS_OUTSIDE_ENUMS = {
    # DescribeInternetGateways: an attached gateway is "available" on AWS (the
    # AWS CLI's own examples show it; Terraform's waiter expects it).
    ("AttachmentStatus", "available"),
    # CreateNetworkInterface: a new ENI is "pending" until it is ready.
    ("NetworkInterfaceStatus", "pending"),
    # A VPC endpoint's State is lower case on AWS ("pending", "available",
    # "deleting"; Terraform's waiters expect those); the enum says Pending, ….
    ("State", "pending"), ("State", "available"), ("State", "deleting"), ("State", "deleted"),
}


def _check(shape, value, path, errors):
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            errors.append("%s: expected structure, got %r" % (path, type(value).__name__))
            return
        for k, v in value.items():
            if k == "ResponseMetadata" and path == "$":
                continue
            if k not in shape.members:
                errors.append("%s.%s: not a member of %s" % (path, k, shape.name))
                continue
            _check(shape.members[k], v, path + "." + k, errors)
        for r in shape.required_members:
            if r not in value:
                errors.append("%s.%s: required member missing" % (path, r))
    elif t == "list":
        if not isinstance(value, list):
            errors.append("%s: expected list" % path)
            return
        for i, v in enumerate(value):
            _check(shape.member, v, "%s[%d]" % (path, i), errors)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append("%s: expected map" % path)
            return
        for k, v in value.items():
            _check(shape.value, v, "%s[%s]" % (path, k), errors)
    elif t == "string":
        if shape.name == "policyDocumentType" and isinstance(value, dict):
            return  # botocore decodes IAM's URL-encoded policy documents into dicts
        if not isinstance(value, str):
            errors.append("%s: expected string, got %r" % (path, value))
        elif shape.enum and value not in shape.enum and (shape.name, value) not in AWS_OUTSIDE_ENUMS:
            errors.append("%s: %r not in enum %s" % (path, value, shape.name))
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append("%s: expected integer, got %r" % (path, value))
    elif t in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append("%s: expected number, got %r" % (path, value))
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append("%s: expected boolean, got %r" % (path, value))
    elif t == "timestamp":
        if not isinstance(value, (datetime.datetime, int, float)):
            errors.append("%s: expected timestamp, got %r" % (path, value))
    elif t == "blob":
        if not isinstance(value, (bytes, bytearray)) and not hasattr(value, "read"):
            errors.append("%s: expected blob" % path)


class ShapeChecked:
    """Wraps a boto3 client: every call's parsed result, and for JSON services
    its raw body, is checked against the operation's output shape in the
    newest botocore model on the machine."""

    def __init__(self, client, testcase):
        self._c = client
        self._t = testcase
        self._raw = {}
        client.meta.events.register("after-call", self._after_call)

    def _after_call(self, http_response, parsed, model, **_):
        self._raw["last"] = (http_response, model)

    def __getattr__(self, name):
        fn = getattr(self._c, name)
        if not callable(fn) or name.startswith("_") or name in ("get_paginator", "get_waiter",
                                                                 "generate_presigned_url", "can_paginate"):
            return fn

        def call(**kw):
            result = fn(**kw)
            http_response, op_model = self._raw["last"]
            errors = []
            if op_model.output_shape is not None:
                _check(op_model.output_shape, result, "$", errors)
                if self._c.meta.service_model.protocol == "json" and http_response.content:
                    body = json.loads(http_response.content)
                    raw_errors = []
                    _check_raw_json(op_model.output_shape, body, "$", raw_errors)
                    errors += raw_errors
            self._t.assertEqual(errors, [], "%s output does not match the model" % name)
            return result
        return call


def _check_raw_json(shape, value, path, errors):
    """The raw JSON body: no member the model does not have, numbers as
    numbers (timestamps are epoch seconds in the JSON protocols)."""
    t = shape.type_name
    if t == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k not in shape.members:
                errors.append("raw %s.%s: not a member of %s" % (path, k, shape.name))
            else:
                _check_raw_json(shape.members[k], v, path + "." + k, errors)
    elif t == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            _check_raw_json(shape.member, v, "%s[%d]" % (path, i), errors)
    elif t == "map" and isinstance(value, dict):
        for k, v in value.items():
            _check_raw_json(shape.value, v, "%s[%s]" % (path, k), errors)
    elif t == "timestamp" and not isinstance(value, (int, float)):
        errors.append("raw %s: timestamp is not epoch seconds: %r" % (path, value))


class PierTestCase(unittest.TestCase):
    """A test case with its own pierd, started before each test."""

    def setUp(self):
        self.pierd = Pierd().start()
        self.addCleanup(self.pierd.cleanup)

    def checked(self, service, **kw):
        return ShapeChecked(self.pierd.client(service, **kw), self)

    def error(self, fn, **kw):
        """The AWS error code and message of a call that must fail."""
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            fn(**kw)
        return e.exception.response["Error"]["Code"], e.exception.response["Error"]["Message"]
