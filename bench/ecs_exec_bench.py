#!/usr/bin/env python3
"""ECS Exec into tasks, measured (needs root). A fresh pierd with two VPCs: one
whose task reaches ssmmessages through an interface endpoint, one whose task
goes through a NAT gateway to the public endpoint. Prints, in one run:
- ExecuteCommand -> first output byte, per path: `pier exec --cluster c TASK`
  on a pty (ExecuteCommand, then the session; the pier process start is
  included) until the shell's first byte; p50 / p99 of N;
- 256 MiB agent -> client through a non-interactive session (`pier exec
  TASK -- dd if=/dev/zero bs=256k …`, endpoint path), next to raw loopback TCP
  inside the same task's network namespace, and the ratio;
- with --demo, the README's main command (scripts/demo.sh, build done) until
  the shell prompt in service 1's container.
Loopback and pier's own namespaces only; it stops what it starts, by pid, and
removes its kernel objects with `pier down`.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
import pexpect
from botocore.config import Config

from exec_bench import drain  # the client end, read as the raw sink reads

# The producer, in the task and beside it: 256 KiB blocks (busybox's `head -c`
# spends more CPU than the whole exec path and would be what is measured).
DD = "dd if=/dev/zero bs=262144 count=%d 2>/dev/null"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("PIER_BUILD_DIR", os.path.join(ROOT, "build")), "bin")
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
           AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
CREDS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
             config=Config(retries={"max_attempts": 1}))
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel"]}]})
# Raw loopback TCP inside a namespace: `dd` from /dev/zero into a socket, as
# the exec run's producer; prints MB/s.
RAW = r"""
import socket, subprocess, sys, threading, time
size = int(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
got = [0]
def sink():
    c, _ = srv.accept()
    while True:
        b = c.recv(1 << 20)
        if not b: break
        got[0] += len(b)
t = threading.Thread(target=sink); t.start()
cli = socket.create_connection(srv.getsockname())
t0 = time.perf_counter()
subprocess.run(["dd", "if=/dev/zero", "bs=262144", "count=%d" % (size // 262144)], stdout=cli.fileno(),
               stderr=subprocess.DEVNULL)
cli.close(); t.join()
assert got[0] == size
print(size / (time.perf_counter() - t0) / 1e6)
"""


def wait(pred, timeout=90, step=0.2):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise RuntimeError("timed out")
        time.sleep(step)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


class System:
    def __init__(self, endpoint, cpu=1024):
        self.cpu = cpu
        self.ec2 = boto3.client("ec2", endpoint_url=endpoint, **CREDS)
        self.ecs = boto3.client("ecs", endpoint_url=endpoint, **CREDS)
        self.iam = boto3.client("iam", endpoint_url=endpoint, **CREDS)

    def vpc(self, cidr):
        v = self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        self.ec2.modify_vpc_attribute(VpcId=v, EnableDnsHostnames={"Value": True})
        return v

    def subnet(self, vpc, cidr):
        s = self.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        rt = self.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        self.ec2.associate_route_table(RouteTableId=rt, SubnetId=s)
        return s, rt

    def build(self):
        role = self.iam.create_role(RoleName="task", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        self.iam.put_role_policy(RoleName="task", PolicyName="exec", PolicyDocument=POLICY)
        self.ecs.create_cluster(clusterName="c")
        self.ecs.register_task_definition(
            family="app", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=str(self.cpu),
            memory=str(2 * self.cpu),
            taskRoleArn=role, containerDefinitions=[{"name": "app", "image": "busybox:latest", "essential": True,
                                                     "command": ["sleep", "3600"],
                                                     "linuxParameters": {"initProcessEnabled": True}}])
        # Endpoint path.
        v1 = self.vpc("10.0.0.0/16")
        s1, _ = self.subnet(v1, "10.0.3.0/24")
        tsg = self.ec2.create_security_group(GroupName="t", Description="t", VpcId=v1)["GroupId"]
        esg = self.ec2.create_security_group(GroupName="e", Description="e", VpcId=v1)["GroupId"]
        self.ec2.authorize_security_group_ingress(GroupId=esg, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": tsg}]}])
        ep = self.ec2.create_vpc_endpoint(VpcId=v1, ServiceName="com.amazonaws.us-east-1.ssmmessages",
                                          VpcEndpointType="Interface", SubnetIds=[s1], SecurityGroupIds=[esg],
                                          PrivateDnsEnabled=True)["VpcEndpoint"]["VpcEndpointId"]
        wait(lambda: self.ec2.describe_vpc_endpoints(VpcEndpointIds=[ep])["VpcEndpoints"][0]["State"] == "available")
        # NAT path.
        v2 = self.vpc("10.1.0.0/16")
        pub, prt = self.subnet(v2, "10.1.1.0/24")
        igw = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=v2)
        self.ec2.create_route(RouteTableId=prt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        eip = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = self.ec2.create_nat_gateway(SubnetId=pub, AllocationId=eip)["NatGateway"]["NatGatewayId"]
        wait(lambda: self.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "available")
        s2, rt2 = self.subnet(v2, "10.1.2.0/24")
        self.ec2.create_route(RouteTableId=rt2, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        nsg = self.ec2.create_security_group(GroupName="t", Description="t", VpcId=v2)["GroupId"]
        return {"endpoint": self.run(s1, tsg), "NAT gateway": self.run(s2, nsg)}

    def run(self, subnet, group):
        arn = self.ecs.run_task(cluster="c", taskDefinition="app", launchType="FARGATE", enableExecuteCommand=True,
                                networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet],
                                                                              "securityGroups": [group]}},
                                )["tasks"][0]["taskArn"]

        def connected():
            t = self.ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]
            a = t["containers"][0].get("managedAgents", [{}])[0]
            if t["lastStatus"] != "RUNNING" or a.get("lastStatus") != "RUNNING":
                return None
            try:
                s = self.ecs.execute_command(cluster="c", task=arn, container="app", interactive=True,
                                             command="true")["session"]
            except self.ecs.exceptions.TargetNotConnectedException:
                return None
            boto3.client("ssm", endpoint_url=self.ecs.meta.endpoint_url, **CREDS).terminate_session(
                SessionId=s["sessionId"])
            return t
        t = wait(connected)
        eni = {d["name"]: d["value"] for d in t["attachments"][0]["details"]}["networkInterfaceId"]
        return arn, eni


def throttled_ms(task_id):
    """CFS throttling of the task's container cgroup so far (ms), or None."""
    import glob
    for path in glob.glob("/sys/fs/cgroup/cpu/pier-*/%s/%s-*/cpu.stat" % (task_id, task_id)) + \
            glob.glob("/sys/fs/cgroup/pier-*/%s/%s-*/cpu.stat" % (task_id, task_id)):
        with open(path) as f:
            stat = dict(line.split() for line in f)
        if "throttled_time" in stat:
            return int(stat["throttled_time"]) / 1e6
        if "throttled_usec" in stat:
            return int(stat["throttled_usec"]) / 1e3
    return None


def first_byte(pier, endpoint, arn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        c = pexpect.spawn(pier, ["--endpoint", endpoint, "exec", "--cluster", "c", arn], env=ENV, timeout=30,
                          dimensions=(30, 100))
        c.read_nonblocking(1, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        c.expect(r"[#$] ")
        c.sendline("exit")
        c.expect(pexpect.EOF)
        c.close()
    return times


def demo_time():
    """The README's main command (build done) until the shell prompt, on its own home and port."""
    tmp = tempfile.mkdtemp(prefix="pier-demo-bench-")
    env = dict(ENV, PIER_HOME=os.path.join(tmp, "home"), PIER_LISTEN="127.0.0.1:4599")
    t0 = time.perf_counter()
    c = pexpect.spawn("bash", [os.path.join(ROOT, "scripts", "demo.sh")], env=env, timeout=300, dimensions=(30, 120))
    try:
        c.expect(r"/ # ")
        took = time.perf_counter() - t0
        c.sendline("exit")
        c.expect("Ctrl-C stops it")  # pierd serves on until then
    finally:
        if c.isalive():
            c.kill(signal.SIGINT)
            c.expect(pexpect.EOF, timeout=120)
        subprocess.run([os.path.join(BIN, "pier"), "down", "--all", "--home", env["PIER_HOME"]],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--cpu", type=int, default=1024, help="the task's CPU units (1024 = 1 vCPU)")
    ap.add_argument("--demo", action="store_true", help="also time the README's main command")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("ecs exec benchmark: needs root (namespaces, runc); skipped")
        return
    tmp = tempfile.mkdtemp(prefix="pier-ecs-exec-bench-")
    home = os.path.join(tmp, "home")
    pier = os.path.join(BIN, "pier")
    pierd = subprocess.Popen([os.path.join(BIN, "pierd"), "--listen", "127.0.0.1:0", "--home", home],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "pierd.log"), "wb"))
    try:
        endpoint = pierd.stdout.readline().decode().strip().split("ready on ")[1]
        subprocess.run([pier, "--endpoint", endpoint, "image", "base", "busybox:latest"], env=ENV, check=True,
                       capture_output=True)
        t0 = time.perf_counter()
        tasks = System(endpoint, args.cpu).build()
        setup = time.perf_counter() - t0
        print("ECS Exec benchmark (2-VPC system built and both agents connected in %.1f s; tasks of %d CPU units)"
              % (setup, args.cpu))
        for path, (arn, _) in tasks.items():
            ts = first_byte(pier, endpoint, arn, args.runs)
            print("ExecuteCommand -> first output byte via the %s path (pier exec on a pty, process start included,"
                  " %d runs): p50 %.1f ms, p99 %.1f ms (goal p50 <= 30 ms)"
                  % (path, args.runs, statistics.median(ts), pct(ts, 0.99)))
        arn, eni = tasks["endpoint"]
        size = args.mib * 1024 * 1024
        throttled0 = throttled_ms(arn.rsplit("/", 1)[1])
        got, dt, rc = drain([pier, "--endpoint", endpoint, "exec", "--cluster", "c", arn, "--", "sh", "-c",
                             DD % (size // 262144)], ENV)
        assert got == size and rc == 0, (got, rc)
        exec_mbs = size / dt / 1e6
        throttled1 = throttled_ms(arn.rsplit("/", 1)[1])
        raw = subprocess.run([pier, "--endpoint", endpoint, "net", "exec", eni, "--", sys.executable, "-c", RAW,
                              str(size)], env=ENV, capture_output=True, text=True, check=True)
        tcp_mbs = float(raw.stdout.strip())
        print("agent -> client, %d MiB non-interactive (endpoint path): %.0f MB/s; raw loopback TCP in the task's"
              " namespace: %.0f MB/s; ratio %.3f (goal >= 300 MB/s)" % (args.mib, exec_mbs, tcp_mbs,
                                                                        exec_mbs / tcp_mbs))
        if throttled0 is not None and throttled1 is not None:
            # The agent runs in the task's cgroup, as AWS's does: the task's
            # CPU quota is the agent's and the command's together.
            print("  the task's container was held back by its CPU quota for %.0f ms of the %.0f ms transfer"
                  % (throttled1 - throttled0, dt * 1000))
    finally:
        if pierd.poll() is None:
            pierd.send_signal(signal.SIGTERM)
            try:
                pierd.wait(20)
            except subprocess.TimeoutExpired:
                pierd.kill()
        subprocess.run([pier, "down", "--all", "--home", home], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.demo:
        print("README main command (build done) until the shell prompt: %.1f s (goal <= 20 s)" % demo_time())


if __name__ == "__main__":
    main()
