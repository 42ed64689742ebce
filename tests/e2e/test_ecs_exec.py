"""ECS Exec into tasks through their own network: `aws ecs execute-command`
(the AWS CLI v1 and v2 with our session-manager-plugin) lands in a shell in a
task's container; the task's pier-exec-agent reaches ssmmessages only by the
path the VPC gives it — the interface endpoint (private DNS is VPC-wide), a
NAT gateway, or nothing — and exec fails as AWS fails when there is none or
the task role may not open the channels. `pier ps` shows the path; `pier exec`
runs commands with stdout, stderr and the exit code apart; a kill -9 of pierd
during a session loses nothing; the session's transcript goes to the cluster's
log group. Needs root (namespaces, runc)."""
import json
import os
import re
import subprocess
import time
import unittest

import botocore.exceptions
import pexpect

import test_ecs_tasks as base
from pier_harness import AWS_V1, AWS_V2, BUILD, ENV, PIER

REGION = base.REGION
PLUGIN_DIR = os.path.join(BUILD, "bin")
ENV_PLUGIN = dict(ENV, PATH=PLUGIN_DIR + os.pathsep + ENV.get("PATH", ""))
PROMPT = r"[#$] "
SSMMESSAGES = "com.amazonaws.%s.ssmmessages" % REGION
ALLOW_SSMMESSAGES = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*", "Action": [
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]}]})
NOT_ENABLED = ("The execute command failed because execute command was not enabled when the task was run or the "
               "execute command agent isn\u2019t running. Wait and try again or run a new task with execute command "
               "enabled and try again.")
NOT_CONNECTED = "The execute command failed due to an internal error. Try again later."
LIVENESS = 20  # the broker's bound: pinged every 5 s, gone after 15 s of silence


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, runc)")
class EcsExec(base.TaskHarness):
    def setUp(self):
        super().setUp()
        self.iam = self.pierd.client("iam")
        self.roles = {}

    # -- building blocks ----------------------------------------------------
    def role(self, name, policy=ALLOW_SSMMESSAGES):
        if name not in self.roles:
            arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=base.TRUST)["Role"]["Arn"]
            if policy:
                self.iam.put_role_policy(RoleName=name, PolicyName="exec", PolicyDocument=policy)
            self.roles[name] = arn
        return self.roles[name]

    def vpc(self, cidr="10.0.0.0/16"):
        vpc = self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        return vpc

    def subnet(self, vpc, cidr, zone="us-east-1a"):
        return self.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]

    def table(self, vpc, subnet):
        rt = self.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        self.ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
        return rt

    def nat(self, vpc, public_cidr):
        """A public subnet with an internet gateway and a NAT gateway; the NAT's id and EIP."""
        pub = self.subnet(vpc, public_cidr)
        igw = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        rt = self.table(vpc, pub)
        self.ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        eip = self.ec2.allocate_address(Domain="vpc")
        nat = self.ec2.create_nat_gateway(SubnetId=pub, AllocationId=eip["AllocationId"])["NatGateway"]["NatGatewayId"]
        deadline = time.time() + base.TIMEOUT
        while self.ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] != "available":
            self.assertLess(time.time(), deadline, "the NAT gateway did not become available")
            time.sleep(0.3)
        return nat, eip["PublicIp"]

    def groups(self, vpc):
        """The scenario's two groups: the tasks' (no ingress) and the endpoints' (443 from the tasks')."""
        tasks = self.ec2.create_security_group(GroupName="container", Description="tasks", VpcId=vpc)["GroupId"]
        endpoints = self.ec2.create_security_group(GroupName="endpoint", Description="endpoints", VpcId=vpc)["GroupId"]
        self.ec2.authorize_security_group_ingress(GroupId=endpoints, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": tasks}]}])
        return tasks, endpoints

    def endpoint(self, vpc, subnet, group):
        ep = self.ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=SSMMESSAGES, VpcEndpointType="Interface",
                                          SubnetIds=[subnet], SecurityGroupIds=[group],
                                          PrivateDnsEnabled=True)["VpcEndpoint"]["VpcEndpointId"]
        deadline = time.time() + base.TIMEOUT
        while self.ec2.describe_vpc_endpoints(VpcEndpointIds=[ep])["VpcEndpoints"][0]["State"] != "available":
            self.assertLess(time.time(), deadline, "the endpoint did not become available")
            time.sleep(0.3)
        return ep

    def exec_task(self, subnet, group, role="task-role", enable=True, family="app"):
        arn = self.ecs.run_task(
            cluster="c", taskDefinition=family, launchType="FARGATE", enableExecuteCommand=enable,
            overrides={"taskRoleArn": self.role(role, None if role.startswith("no-") else ALLOW_SSMMESSAGES)}
            if role else {},
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
        )["tasks"][0]["taskArn"]
        t = self.wait_status(arn, "RUNNING")
        if enable:
            t = self.wait_agent(arn)
        return arn, t

    def wait_agent(self, arn):
        deadline = time.time() + base.TIMEOUT
        while True:
            t = self.describe(arn)
            agents = t["containers"][0].get("managedAgents", [])
            if agents and agents[0]["lastStatus"] == "RUNNING":
                self.assertEqual(agents[0]["name"], "ExecuteCommandAgent")
                self.assertIn("lastStartedAt", agents[0])
                return t
            self.assertLess(time.time(), deadline, "the exec agent is not RUNNING: %s" % agents)
            time.sleep(0.3)

    def execute(self, arn, **kw):
        return self.ecs.execute_command(cluster="c", task=arn, container="app", interactive=True,
                                        command="/bin/sh", **kw)

    def wait_connected(self, arn, timeout=30):
        """ExecuteCommand succeeds (the agent holds its control channel); its session is ended again."""
        deadline = time.time() + timeout
        while True:
            try:
                s = self.execute(arn)["session"]
                self.pierd.client("ssm").terminate_session(SessionId=s["sessionId"])
                return
            except botocore.exceptions.ClientError as e:
                code = e.response["Error"]["Code"]
                self.assertEqual(code, "TargetNotConnectedException", e.response["Error"]["Message"])
                self.assertLess(time.time(), deadline, "the agent did not connect")
                time.sleep(0.5)

    def wait_not_connected(self, arn, timeout=LIVENESS + 5):
        start = time.time()
        while True:
            try:
                s = self.execute(arn)["session"]
                self.pierd.client("ssm").terminate_session(SessionId=s["sessionId"])
            except botocore.exceptions.ClientError as e:
                self.assertEqual(e.response["Error"]["Code"], "TargetNotConnectedException")
                self.assertEqual(e.response["Error"]["Message"], NOT_CONNECTED)
                return time.time() - start
            self.assertLess(time.time() - start, timeout, "exec still works")
            time.sleep(0.5)

    def ps(self):
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "ps"], env=ENV, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def ps_line(self, arn):
        for line in self.ps().splitlines():
            if base.task_id(arn) in line:
                return line
        self.fail("pier ps does not show %s" % arn)

    def shell(self, version, arn, check_resolver=None):
        """An interactive shell with the AWS CLI (v1 or v2) and our plugin: 6*7, the resolver, exit → 0.
        Returns the session id."""
        cli = AWS_V1 if version == 1 else AWS_V2
        c = pexpect.spawn(cli, ["--endpoint-url", self.pierd.endpoint, "ecs", "execute-command", "--cluster", "c",
                                "--task", arn, "--container", "app", "--interactive", "--command", "/bin/sh"],
                          env=ENV_PLUGIN, timeout=30, dimensions=(30, 100))
        self.addCleanup(lambda: c.isalive() and c.terminate(force=True))
        c.expect(r"Starting session with SessionId: (\S+)\r?\n")  # the whole id, not a partial read
        session = c.match.group(1).decode()
        c.expect(PROMPT)
        c.sendline("echo $((6*7))")
        c.expect("42")
        if check_resolver:
            c.sendline("cat /etc/resolv.conf")
            c.expect("nameserver " + re.escape(check_resolver))
        c.sendline("id -u")
        c.expect(r"\n0\r")
        c.sendline("exit")
        c.expect("Exiting session with sessionId")
        c.expect(pexpect.EOF)
        c.close()
        self.assertEqual(c.exitstatus, 0)
        return session

    def register_app(self, family="app"):
        self.register(family, "sleep 3600")

    def endpoint_only_system(self):
        """A VPC whose one subnet reaches ssmmessages only through the endpoint; the cluster c, the app."""
        vpc = self.vpc()
        sub = self.subnet(vpc, "10.0.3.0/24")
        self.table(vpc, sub)
        tasks_sg, endpoint_sg = self.groups(vpc)
        self.endpoint(vpc, sub, endpoint_sg)
        self.ecs.create_cluster(clusterName="c")
        self.logs.create_log_group(logGroupName="/ecs/x")
        self.register_app()
        return sub, tasks_sg

    # -- the reference system -------------------------------------------------
    def test_reference_system(self):
        """scenario.md with CLI calls: both services give a shell, both through the endpoint ENI."""
        vpc = self.vpc()
        nat, eip = self.nat(vpc, "10.0.1.0/24")
        sub1 = self.subnet(vpc, "10.0.2.0/24")
        sub2 = self.subnet(vpc, "10.0.3.0/24", "us-east-1c")
        rt1 = self.table(vpc, sub1)
        self.ec2.create_route(RouteTableId=rt1, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        self.table(vpc, sub2)
        tasks_sg, endpoint_sg = self.groups(vpc)
        ep = self.endpoint(vpc, sub2, endpoint_sg)
        self.logs.create_log_group(logGroupName="/ecs/x")
        self.logs.create_log_group(logGroupName="/exec/audit")
        self.ecs.create_cluster(clusterName="c", configuration={"executeCommandConfiguration": {
            "logging": "OVERRIDE", "logConfiguration": {"cloudWatchLogGroupName": "/exec/audit"}}})
        self.register_app()
        role = self.role("task-role")
        arns = []
        for name, subnet in (("svc-1", sub1), ("svc-2", sub2)):
            self.ecs.create_service(cluster="c", serviceName=name, taskDefinition="app", desiredCount=1,
                                    launchType="FARGATE", enableExecuteCommand=True,
                                    networkConfiguration={"awsvpcConfiguration": {
                                        "subnets": [subnet], "securityGroups": [tasks_sg]}})
        # The services' tasks need the role: a task definition revision with it.
        self.register("app", "sleep 3600", taskRoleArn=role)
        for name in ("svc-1", "svc-2"):
            self.ecs.update_service(cluster="c", service=name, taskDefinition="app", forceNewDeployment=True)
        deadline = time.time() + 2 * base.TIMEOUT
        for name in ("svc-1", "svc-2"):
            while True:
                running = self.ecs.list_tasks(cluster="c", serviceName=name, desiredStatus="RUNNING")["taskArns"]
                ts = self.ecs.describe_tasks(cluster="c", tasks=running)["tasks"] if running else []
                ok = [t for t in ts if t["lastStatus"] == "RUNNING" and t["taskDefinitionArn"].endswith(":2")]
                if len(ok) == 1 and len(ts) == 1:
                    arns.append(ok[0]["taskArn"])
                    break
                self.assertLess(time.time(), deadline, "service %s did not settle: %s" % (name, ts))
                time.sleep(0.5)
        for arn in arns:
            self.wait_agent(arn)
            self.wait_connected(arn)
        # Service 1 with the AWS CLI v1, service 2 with v2.
        s1 = self.shell(1, arns[0], check_resolver="10.0.0.2")
        self.shell(2, arns[1], check_resolver="10.0.0.2")
        # Both agents went through the endpoint's ENI, subnet 1's too: private DNS is VPC-wide.
        eni = self.ec2.describe_vpc_endpoints(VpcEndpointIds=[ep])["VpcEndpoints"][0]["NetworkInterfaceIds"][0]
        for arn in arns:
            line = self.ps_line(arn)
            self.assertIn("connected via interface endpoint %s (%s" % (ep, eni), line)
        # The transcript of service 1's session, recorded by the broker.
        deadline = time.time() + 15
        while True:
            try:
                events = self.logs.get_log_events(logGroupName="/exec/audit", logStreamName=s1,
                                                  startFromHead=True)["events"]
                text = "\n".join(e["message"] for e in events)
                if "42" in text and "exit" in text:
                    break
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                text = ""
            self.assertLess(time.time(), deadline, "no transcript in /exec/audit/%s: %r" % (s1, text))
            time.sleep(0.5)
        self.assertIn("echo $((6*7))", text)

        # pier exec without a terminal: stdout, stderr and the exit code apart, by service name.
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "exec", "--cluster", "c", "svc-2", "--",
                            "sh", "-c", "echo out; echo err >&2; exit 3"],
                           env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (3, "out\n", "err\n"))

        # Failure modes in the same VPC.
        self.register("plain", "sleep 3600", taskRoleArn=role)
        off, _ = self.exec_task(sub2, tasks_sg, enable=False, family="plain")
        self.assertEqual(self.error(self.execute, arn=off), ("InvalidParameterException", NOT_ENABLED))
        self.assertEqual(self.error(self.ecs.execute_command, cluster="c", task=arns[1], container="app",
                                    interactive=False, command="ls"),
                         ("InvalidParameterException", "Interactive is the only mode supported currently."))
        # A task role without the ssmmessages actions: the agent runs, its channel is refused.
        denied, _ = self.exec_task(sub2, tasks_sg, role="no-ssmmessages-role")
        self.pierd.wait_log("action=ssmmessages:CreateControlChannel", "code=AccessDenied", timeout=60)
        self.assertEqual(self.error(self.execute, arn=denied), ("TargetNotConnectedException", NOT_CONNECTED))
        self.assertIn("agent RUNNING, not connected", self.ps_line(denied))
        # A caller whose policy denies ecs:ExecuteCommand.
        self.iam.create_role(RoleName="operator", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": "arn:aws:iam::000000000000:root"}}]}))
        self.iam.put_role_policy(RoleName="operator", PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "ecs:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "ecs:ExecuteCommand", "Resource": "*",
                 "Condition": {"StringEquals": {"ecs:container-name": "app"}}}]}))
        creds = self.pierd.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/operator",
                                                     RoleSessionName="op")["Credentials"]
        op = self.pierd.client("ecs", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                               token=creds["SessionToken"])
        code, msg = self.error(op.execute_command, cluster="c", task=arns[1], container="app", interactive=True,
                               command="/bin/sh")
        self.assertEqual(code, "AccessDeniedException")
        self.assertIn("ecs:ExecuteCommand", msg)
        # The endpoint's group no longer admits 443: a task started now has no path.
        self.ec2.revoke_security_group_ingress(GroupId=endpoint_sg, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": tasks_sg}]}])
        blocked, _ = self.exec_task(sub1, tasks_sg)
        self.wait_not_connected(blocked)
        time.sleep(6)  # past the agent's next tries
        self.assertEqual(self.error(self.execute, arn=blocked), ("TargetNotConnectedException", NOT_CONNECTED))

    # -- the NAT path and its loss --------------------------------------------
    def test_nat_path_lost_and_restored(self):
        vpc = self.vpc("10.1.0.0/16")
        nat, eip = self.nat(vpc, "10.1.1.0/24")
        private = self.subnet(vpc, "10.1.2.0/24")
        isolated = self.subnet(vpc, "10.1.3.0/24")
        rt = self.table(vpc, private)
        self.ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        self.table(vpc, isolated)
        sg = self.ec2.create_security_group(GroupName="t", Description="tasks", VpcId=vpc)["GroupId"]
        self.ecs.create_cluster(clusterName="c")
        self.logs.create_log_group(logGroupName="/ecs/x")
        self.register_app()
        arn, _ = self.exec_task(private, sg)
        lonely, _ = self.exec_task(isolated, sg)
        self.wait_connected(arn)
        self.shell(2, arn, check_resolver="10.1.0.2")
        self.assertIn("connected via NAT gateway %s (EIP %s)" % (nat, eip), self.ps_line(arn))
        # No route out at all: never connected.
        self.assertEqual(self.error(self.execute, arn=lonely), ("TargetNotConnectedException", NOT_CONNECTED))
        self.assertIn("not connected", self.ps_line(lonely))
        # The NAT route goes: exec fails within the liveness bound; back: works again, same task.
        self.ec2.delete_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0")
        took = self.wait_not_connected(arn)
        # The route goes out in the network controller's next pass, after
        # the call returns; the broker's own bound is in its log.
        self.assertLessEqual(took, LIVENESS + 5)
        silent = [int(ms) for ms in re.findall(r"channel silent for (\d+) ms: closed", self.pierd.log_text())]
        self.assertTrue(silent and max(silent) <= 17000, silent)  # 15 s of silence, checked each second
        self.ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
        self.wait_connected(arn, timeout=LIVENESS + 5)
        self.assertEqual(self.describe(arn)["lastStatus"], "RUNNING")
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "exec", "--cluster", "c", base.task_id(arn),
                            "--", "echo", "back"], env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, "back\n"), p.stderr)

    # -- restarts -----------------------------------------------------------
    def test_session_survives_kill9_of_pierd(self):
        sub, tasks_sg = self.endpoint_only_system()
        arn, _ = self.exec_task(sub, tasks_sg)
        self.wait_connected(arn)
        n = 400
        # The child writes through its own open file: a seek of ours on a
        # shared one would move its write offset too.
        path = os.path.join(os.path.dirname(self.home), "session.out")
        out = open(path, "w")
        self.addCleanup(out.close)

        def written():
            with open(path) as f:
                return f.read()
        session = subprocess.Popen([PIER, "--endpoint", self.pierd.endpoint, "exec", "--cluster", "c",
                                    base.task_id(arn), "--", "sh", "-c",
                                    "i=1; while [ $i -le %d ]; do echo line-$i; i=$((i+1)); sleep 0.02; done" % n],
                                   env=ENV, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE)
        self.addCleanup(lambda: session.poll() is None and session.kill())
        deadline = time.time() + 30
        while True:
            if written().count("\n") >= 20:
                break
            self.assertLess(time.time(), deadline, "no output before the kill")
            time.sleep(0.1)
        self.pierd.kill9()
        time.sleep(1)
        self.restart(killed=True)
        _, err = session.communicate(timeout=120)
        got = written().splitlines()
        self.assertEqual(session.returncode, 0, err)
        self.assertEqual(got, ["line-%d" % i for i in range(1, n + 1)])
        # New sessions work.
        self.wait_connected(arn)
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "exec", "--cluster", "c", base.task_id(arn),
                            "--", "echo", "again"], env=ENV, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, "again\n"), p.stderr)

    def test_agent_restarted_when_it_dies(self):
        sub, tasks_sg = self.endpoint_only_system()
        arn, t = self.exec_task(sub, tasks_sg)
        first = t["containers"][0]["managedAgents"][0]["lastStartedAt"]
        self.wait_connected(arn)
        rid = t["containers"][0]["runtimeId"]
        with open(os.path.join(self.home, "containers", rid, "agent")) as f:
            pid = json.load(f)["pid"]
        os.kill(pid, 9)
        deadline = time.time() + 30
        while True:
            agent = self.describe(arn)["containers"][0]["managedAgents"][0]
            if agent["lastStatus"] == "RUNNING" and agent["lastStartedAt"] > first:
                break
            self.assertLess(time.time(), deadline, "the agent was not restarted: %s" % agent)
            time.sleep(0.3)
        self.assertEqual(agent.get("reason"), "ExecuteCommandAgent restarted")
        self.wait_connected(arn)

    def test_read_only_root_filesystem_stops_the_agent(self):
        """As on AWS, the agent needs to write its state in the container
        (/var/lib/amazon/ssm): with readonlyRootFilesystem it exits, is
        started again with backoff, and exec never lands; a writable task
        beside it works."""
        sub, tasks_sg = self.endpoint_only_system()
        self.register("ro", "sleep 3600", container={"readonlyRootFilesystem": True})
        arn = self.ecs.run_task(
            cluster="c", taskDefinition="ro", launchType="FARGATE", enableExecuteCommand=True,
            overrides={"taskRoleArn": self.role("task-role", ALLOW_SSMMESSAGES)},
            networkConfiguration={"awsvpcConfiguration": {"subnets": [sub], "securityGroups": [tasks_sg]}},
        )["tasks"][0]["taskArn"]
        self.wait_status(arn, "RUNNING")
        deadline = time.time() + 30
        while True:
            agent = self.describe(arn)["containers"][0].get("managedAgents", [{}])[0]
            if agent.get("reason") == "ExecuteCommandAgent process exited with exit code: 1":
                break
            self.assertLess(time.time(), deadline, "the agent did not fail: %s" % agent)
            time.sleep(0.2)
        self.assertEqual(agent["lastStatus"], "STOPPED")
        rid = self.describe(arn)["containers"][0]["runtimeId"]
        with open(os.path.join(self.home, "containers", rid, "agent.log"), errors="replace") as f:
            self.assertIn("cannot create /var/lib/amazon/ssm: Read-only file system", f.read())
        for _ in range(3):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.execute(arn)
            self.assertIn(e.exception.response["Error"]["Code"],
                          ["InvalidParameterException", "TargetNotConnectedException"])
            time.sleep(1)
        writable, _ = self.exec_task(sub, tasks_sg)
        self.wait_connected(writable)


if __name__ == "__main__":
    unittest.main()
