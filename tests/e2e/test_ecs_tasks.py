"""ECS tasks on Fargate as real containers: RunTask with the AWS CLI v1, v2 and
boto3 against busybox made offline by `pier image base`; the awslogs output,
the task role's credentials and the task metadata at 169.254.170.2, the memory
limit, stops (user, essential exit, failures to start), bad input that starts
nothing, a kill -9 of pierd and a restart on the same home, and services that
keep their desired count. Every test stops its tasks, runs `pier down` and
checks nothing of its instance is left. Needs root (namespaces, runc)."""
import json
import os
import signal
import subprocess
import time
import unittest

import botocore.exceptions

from pier_harness import ENV, PIER, PierTestCase

ACCOUNT = "000000000000"
REGION = "us-east-1"
IMAGE = "busybox:latest"
TIMEOUT = 60  # the machine is slow: every wait polls up to this long

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def task_id(arn):
    return arn.rsplit("/", 1)[1]


def alive(pid):
    """A process that exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def netns(prefix):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(l.split()[0] for l in out.splitlines() if l.startswith(prefix))


class TaskHarness(PierTestCase):
    """A pierd with a busybox image, helpers for tasks, and a cleanup that
    stops every task and checks nothing of the instance is left. No tests of
    its own: test_ecs_exec.py builds on it too."""
    def setUp(self):
        super().setUp()
        self.home = self.pierd.home
        self.prefix = self.netns_prefix()
        # Runs before the harness's cleanup (stop pierd, pier down, remove home):
        # the tasks stop through the API, then down, then nothing may be left.
        self.addCleanup(self.teardown_and_check)
        self.ecs = self.checked("ecs")
        self.ec2 = self.pierd.client("ec2")
        self.logs = self.pierd.client("logs")
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "image", "base", IMAGE], env=ENV,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)

    # -- the instance, its restart and its cleanup -------------------------
    def netns_prefix(self):
        for line in self.pierd.log_text().splitlines():
            if "network controller on (namespaces " in line:
                return line.split("(namespaces ")[1].split("…")[0]
        self.fail("pierd's log names no namespace prefix")

    def monitors(self):
        """pids of this home's pier-monitor processes (zombies aside)."""
        out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
        root = os.path.join(self.home, "containers", ".runc")
        found = []
        for line in out.splitlines():
            pid, stat, args = line.split(None, 2)
            if "pier-monitor" in args and root in args.split() and not stat.startswith("Z"):
                found.append(int(pid))
        return found

    def runc_state(self):
        d = os.path.join(self.home, "containers", ".runc")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def restart(self, killed=False):
        """kill -9 of pierd (unless done already), then pierd again on the same home and port."""
        if not killed:
            self.pierd.kill9()
        self.pierd.listen_port = self.pierd.port
        deadline = time.time() + 30
        while True:
            try:
                self.pierd.start()
                break
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        self.ecs = self.checked("ecs")
        self.ec2 = self.pierd.client("ec2")
        self.logs = self.pierd.client("logs")

    def teardown_and_check(self):
        if self.pierd.proc and self.pierd.proc.poll() is None:
            ecs = self.pierd.client("ecs")
            try:
                for cluster in ecs.list_clusters()["clusterArns"]:
                    try:
                        for svc in ecs.list_services(cluster=cluster).get("serviceArns", []):
                            ecs.delete_service(cluster=cluster, service=svc, force=True)
                    except botocore.exceptions.ClientError:
                        pass  # services may not be there yet
                    arns = ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"]
                    for arn in arns:
                        ecs.stop_task(cluster=cluster, task=arn, reason="test cleanup")
                    deadline = time.time() + TIMEOUT
                    while arns and time.time() < deadline:
                        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
                        if all(t["lastStatus"] == "STOPPED" for t in tasks):
                            break
                        time.sleep(0.5)
            except (botocore.exceptions.ClientError, botocore.exceptions.EndpointConnectionError):
                pass
        self.pierd.stop()
        p = subprocess.run([PIER, "down", "--all", "--home", self.home], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(netns(self.prefix), [], "namespaces left after pier down")
        deadline = time.time() + 10
        while self.monitors() and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.monitors(), [], "pier-monitor processes left after pier down")
        self.assertEqual(self.runc_state(), [], "runc state left after pier down")

    # -- the AWS side -------------------------------------------------------
    def cli(self, version, *args):
        return self.pierd.cli_json(version, *args)

    def cli_error(self, version, *args):
        p = self.pierd.cli(version, *args, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        return p.stderr

    def network(self):
        """A VPC and a subnet (AWS CLI v1), a cluster and a log group."""
        vpc = self.cli(1, "ec2", "create-vpc", "--cidr-block", "10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.cli(1, "ec2", "create-subnet", "--vpc-id", vpc, "--cidr-block", "10.0.1.0/24")["Subnet"]["SubnetId"]
        self.ecs.create_cluster(clusterName="c")
        self.logs.create_log_group(logGroupName="/ecs/x")
        return vpc, subnet

    def register(self, family, command, init=True, group="/ecs/x", image=IMAGE, container=None, **kw):
        c = {"name": "app", "image": image, "essential": True, "command": ["sh", "-c", command],
             "logConfiguration": {"logDriver": "awslogs", "options": {
                 "awslogs-group": group, "awslogs-region": REGION, "awslogs-stream-prefix": "ecs"}}}
        c.update(container or {})
        if init:
            c["linuxParameters"] = {"initProcessEnabled": True}
        return self.ecs.register_task_definition(
            family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="512", memory="1024",
            containerDefinitions=[c], **kw)["taskDefinition"]

    def run_task(self, family, subnet, **kw):
        out = self.ecs.run_task(cluster="c", taskDefinition=family, launchType="FARGATE",
                                networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}}, **kw)
        self.assertEqual(out["failures"], [])
        self.assertEqual(len(out["tasks"]), 1)
        return out["tasks"][0]["taskArn"]

    def describe(self, arn):
        return self.ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]

    def wait_status(self, arn, status, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while True:
            t = self.describe(arn)
            if t["lastStatus"] == status:
                return t
            if time.time() > deadline:
                self.fail("task %s is %s, not %s: %s" % (task_id(arn), t["lastStatus"], status,
                                                         json.dumps(t, default=str)[:2000]))
            time.sleep(0.3)

    def eni_of(self, task):
        for a in task.get("attachments", []):
            if a["type"] == "ElasticNetworkInterface":
                return {d["name"]: d["value"] for d in a["details"]}.get("networkInterfaceId")
        return None

    def enis(self):
        return sorted(e["NetworkInterfaceId"] for e in self.ec2.describe_network_interfaces()["NetworkInterfaces"])

    def wait_enis(self, want, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while self.enis() != want and time.time() < deadline:
            time.sleep(0.5)
        self.assertEqual(self.enis(), want)

    def log_lines(self, arn, until, timeout=TIMEOUT):
        """The task's stream ecs/app/<task id> once a line contains `until`."""
        stream = "ecs/app/" + task_id(arn)
        deadline = time.time() + timeout
        lines = []
        while time.time() < deadline:
            try:
                events = self.logs.get_log_events(logGroupName="/ecs/x", logStreamName=stream,
                                                  startFromHead=True)["events"]
                lines = [e["message"] for e in events]
                if any(until in l for l in lines):
                    return lines
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
            time.sleep(0.5)
        self.fail("no line with %r in %s: %r" % (until, stream, lines))

    def between(self, lines, begin, end):
        """The text printed between two marker lines."""
        i, j = lines.index(begin), lines.index(end)
        return "\n".join(lines[i + 1:j])

    def runtime_pid(self, runtime_id):
        with open(os.path.join(self.home, "containers", runtime_id, "pid")) as f:
            return int(f.read().strip())


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, runc)")
class Tasks(TaskHarness):
    def test_run_logs_metadata_memory_and_stop(self):
        _, subnet = self.network()
        cmd = ("echo hello-from-task; "
               "echo MEM $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max); "
               "echo META-BEGIN; wget -qO- $ECS_CONTAINER_METADATA_URI_V4/task; echo; echo META-END; "
               "sleep 600")
        self.register("web", cmd)
        self.assertEqual(self.enis(), [])
        # The AWS CLI v1 starts it.
        out = self.cli(1, "ecs", "run-task", "--cluster", "c", "--task-definition", "web", "--launch-type", "FARGATE",
                       "--network-configuration", "awsvpcConfiguration={subnets=[%s]}" % subnet)
        self.assertEqual(out["failures"], [])
        arn = out["tasks"][0]["taskArn"]
        self.assertTrue(arn.startswith("arn:aws:ecs:%s:%s:task/c/" % (REGION, ACCOUNT)), arn)
        t = self.wait_status(arn, "RUNNING")
        self.assertEqual(t["desiredStatus"], "RUNNING")
        self.assertEqual(t["containers"][0]["lastStatus"], "RUNNING")
        self.assertTrue(t["containers"][0].get("runtimeId"), t["containers"][0])
        eni = self.eni_of(t)
        self.assertEqual(self.enis(), [eni])
        self.assertEqual(self.cli(1, "ecs", "list-tasks", "--cluster", "c")["taskArns"], [arn])

        lines = self.log_lines(arn, "META-END")
        self.assertIn("hello-from-task", lines)
        self.assertIn("MEM 1073741824", lines)
        meta = json.loads(self.between(lines, "META-BEGIN", "META-END"))
        self.assertEqual(meta["TaskARN"], arn)
        self.assertEqual(meta["Cluster"], "arn:aws:ecs:%s:%s:cluster/c" % (REGION, ACCOUNT))  # Fargate: the ARN
        self.assertEqual(meta["Containers"][0]["Name"], "app")

        # The AWS CLI v2 shows the same output with `logs tail`.
        p = self.pierd.cli(2, "logs", "tail", "/ecs/x")
        self.assertIn("hello-from-task", p.stdout)
        self.assertIn("ecs/app/" + task_id(arn), p.stdout)

        # The image a running task uses stays (its layers are the task's root).
        p = subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "image", "rm", IMAGE], env=ENV,
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ImageInUseException", p.stderr)

        # The AWS CLI v2 stops it: SIGTERM to init, which exits 143.
        self.cli(2, "ecs", "stop-task", "--cluster", "c", "--task", arn, "--reason", "enough")
        t = self.wait_status(arn, "STOPPED")
        self.assertEqual(t["desiredStatus"], "STOPPED")
        self.assertEqual(t["stopCode"], "UserInitiated")
        self.assertEqual(t["stoppedReason"], "enough")
        self.assertEqual(t["containers"][0]["exitCode"], 143)
        self.assertEqual(t["containers"][0]["lastStatus"], "STOPPED")
        for k in ("startedAt", "stoppingAt", "stoppedAt"):
            self.assertIn(k, t)
        self.wait_enis([])  # the task's ENI goes with it
        self.assertEqual(self.cli(2, "ecs", "list-tasks", "--cluster", "c")["taskArns"], [])
        self.assertEqual(self.cli(2, "ecs", "list-tasks", "--cluster", "c", "--desired-status", "STOPPED")["taskArns"],
                         [arn])

    def test_essential_container_exit(self):
        _, subnet = self.network()
        self.register("quit", "echo bye; exit 3", init=False)
        arn = self.run_task("quit", subnet)
        t = self.wait_status(arn, "STOPPED")
        self.assertEqual(t["stopCode"], "EssentialContainerExited")
        self.assertEqual(t["stoppedReason"], "Essential container in task exited")
        self.assertEqual(t["containers"][0]["exitCode"], 3)
        self.assertIn("bye", self.log_lines(arn, "bye"))
        # The same through the AWS CLI v2.
        t2 = self.cli(2, "ecs", "describe-tasks", "--cluster", "c", "--tasks", arn)["tasks"][0]
        self.assertEqual((t2["lastStatus"], t2["stopCode"], t2["containers"][0]["exitCode"]),
                         ("STOPPED", "EssentialContainerExited", 3))
        self.wait_enis([])

    def test_task_role_credentials_sign_calls(self):
        _, subnet = self.network()
        role = self.cli(1, "iam", "create-role", "--role-name", "app-role",
                        "--assume-role-policy-document", TRUST)["Role"]["Arn"]
        self.assertEqual(role, "arn:aws:iam::%s:role/app-role" % ACCOUNT)
        cmd = ("echo CREDS-BEGIN; wget -qO- http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; echo; "
               "echo CREDS-END; sleep 600")
        self.register("role", cmd, taskRoleArn=role)
        arn = self.run_task("role", subnet)
        self.wait_status(arn, "RUNNING")
        creds = json.loads(self.between(self.log_lines(arn, "CREDS-END"), "CREDS-BEGIN", "CREDS-END"))
        for k in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration"):
            self.assertTrue(creds.get(k), (k, creds))
        self.assertEqual(creds["RoleArn"], role)
        # The credentials sign a call to pierd: it is the task's assumed role.
        sts = self.pierd.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["Token"])
        who = sts.get_caller_identity()
        self.assertEqual(who["Arn"], "arn:aws:sts::%s:assumed-role/app-role/%s" % (ACCOUNT, task_id(arn)))
        self.assertEqual(who["Account"], ACCOUNT)
        # Without the token they are not valid.
        bad = self.pierd.client("sts", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"])
        self.error(bad.get_caller_identity)

    def test_failures_to_start(self):
        _, subnet = self.network()
        self.register("noimage", "sleep 600", image="nosuch:latest")
        self.register("nogroup", "sleep 600", group="/ecs/missing")
        a = self.run_task("noimage", subnet)
        b = self.run_task("nogroup", subnet)
        t = self.wait_status(a, "STOPPED")
        self.assertEqual(t["stopCode"], "TaskFailedToStart")
        self.assertTrue(t["stoppedReason"].startswith("CannotPullContainerError"), t["stoppedReason"])
        t = self.wait_status(b, "STOPPED")
        self.assertEqual(t["stopCode"], "TaskFailedToStart")
        self.assertTrue(t["stoppedReason"].startswith("ResourceInitializationError"), t["stoppedReason"])
        self.assertNotIn("exitCode", t["containers"][0])
        self.wait_enis([])
        self.assertEqual(self.monitors(), [])

    def test_bad_input_starts_nothing(self):
        _, subnet = self.network()
        self.register("ok", "sleep 600")
        net = {"awsvpcConfiguration": {"subnets": [subnet]}}

        # An unknown task definition, with the AWS CLI v1 and boto3.
        err = self.cli_error(1, "ecs", "run-task", "--cluster", "c", "--task-definition", "nosuch",
                             "--launch-type", "FARGATE",
                             "--network-configuration", "awsvpcConfiguration={subnets=[%s]}" % subnet)
        self.assertIn("ClientException", err)
        self.assertIn("TaskDefinition not found.", err)
        self.assertEqual(self.error(self.ecs.run_task, cluster="c", taskDefinition="nosuch", launchType="FARGATE",
                                    networkConfiguration=net), ("ClientException", "TaskDefinition not found."))
        # A subnet that does not exist.
        code, _ = self.error(self.ecs.run_task, cluster="c", taskDefinition="ok", launchType="FARGATE",
                             networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}})
        self.assertEqual(code, "InvalidParameterException")
        # No network configuration for awsvpc.
        code, _ = self.error(self.ecs.run_task, cluster="c", taskDefinition="ok", launchType="FARGATE")
        self.assertEqual(code, "InvalidParameterException")
        err = self.cli_error(2, "ecs", "run-task", "--cluster", "c", "--task-definition", "ok",
                             "--launch-type", "FARGATE")
        self.assertIn("InvalidParameterException", err)
        # EC2: no container instances in the cluster.
        self.assertEqual(self.error(self.ecs.run_task, cluster="c", taskDefinition="ok", launchType="EC2",
                                    networkConfiguration=net),
                         ("InvalidParameterException", "No Container Instances were found in your cluster."))
        # Roles ECS cannot assume: another account's, and one that does not trust ecs-tasks.
        iam = self.checked("iam")
        lambda_role = iam.create_role(RoleName="not-for-tasks", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        for role in ("arn:aws:iam::111122223333:role/Admin", lambda_role):
            code, msg = self.error(self.ecs.run_task, cluster="c", taskDefinition="ok", launchType="FARGATE",
                                   networkConfiguration=net, overrides={"taskRoleArn": role})
            self.assertEqual(code, "ClientException")
            self.assertIn("ECS was unable to assume the role '%s'" % role, msg)
        # No network configuration for a definition that is not awsvpc (not Fargate-compatible).
        self.ecs.register_task_definition(family="bridge", containerDefinitions=[{"name": "app", "image": IMAGE,
                                                                                  "memory": 128}])
        code, _ = self.error(self.ecs.run_task, cluster="c", taskDefinition="bridge", launchType="FARGATE")
        self.assertEqual(code, "InvalidParameterException")
        # Task definitions ECS refuses.
        c = {"name": "app", "image": IMAGE}
        code, msg = self.error(self.ecs.register_task_definition, family="big", requiresCompatibilities=["FARGATE"],
                               networkMode="awsvpc", cpu="256", memory="4096", containerDefinitions=[c])
        self.assertEqual(code, "ClientException")
        self.assertTrue(msg.startswith("No Fargate configuration exists"), msg)
        code, _ = self.error(self.ecs.register_task_definition, family="twice", containerDefinitions=[c, dict(c)])
        self.assertEqual(code, "ClientException")
        self.assertEqual(self.ecs.list_task_definitions(familyPrefix="big")["taskDefinitionArns"], [])
        self.assertEqual(self.ecs.list_task_definitions(familyPrefix="twice")["taskDefinitionArns"], [])

        # Nothing started: no task, no ENI, no container.
        time.sleep(2)
        self.assertEqual(self.ecs.list_tasks(cluster="c")["taskArns"], [])
        self.assertEqual(self.ecs.list_tasks(cluster="c", desiredStatus="STOPPED")["taskArns"], [])
        self.assertEqual(self.enis(), [])
        self.assertEqual(self.monitors(), [])
        self.assertEqual(self.runc_state(), [])

    def test_containers_outlive_a_kill9_of_pierd(self):
        _, subnet = self.network()
        self.register("keep", "echo up; sleep 600")
        self.register("bare", "echo up; sleep 600", init=False)
        keep, bare = self.run_task("keep", subnet), self.run_task("bare", subnet)
        tk, tb = self.wait_status(keep, "RUNNING"), self.wait_status(bare, "RUNNING")
        rk, rb = tk["containers"][0]["runtimeId"], tb["containers"][0]["runtimeId"]
        self.log_lines(keep, "up")
        self.log_lines(bare, "up")
        pk, pb = self.runtime_pid(rk), self.runtime_pid(rb)
        monitors = sorted(self.monitors())
        self.assertEqual(len(monitors), 2)

        self.pierd.kill9()
        time.sleep(1)
        self.assertTrue(alive(pk) and alive(pb))
        self.assertEqual(sorted(self.monitors()), monitors)
        # One container dies while pierd is away: SIGKILL (it is PID 1 of its namespace, without init).
        os.kill(pb, signal.SIGKILL)

        self.restart(killed=True)
        t = self.wait_status(bare, "STOPPED")
        self.assertEqual(t["containers"][0]["exitCode"], 137)
        self.assertEqual(t["stopCode"], "EssentialContainerExited")
        t = self.describe(keep)
        self.assertEqual(t["lastStatus"], "RUNNING")
        self.assertEqual(t["containers"][0]["runtimeId"], rk)
        self.assertTrue(alive(pk))
        # The restarted pierd still drains its logs and stops it.
        self.assertEqual(self.cli(1, "ecs", "list-tasks", "--cluster", "c")["taskArns"], [keep])
        self.ecs.stop_task(cluster="c", task=keep)
        t = self.wait_status(keep, "STOPPED")
        self.assertEqual(t["containers"][0]["exitCode"], 143)
        self.assertEqual(t["stopCode"], "UserInitiated")
        self.wait_enis([])

    def test_service_keeps_its_desired_count(self):
        vpc, subnet = self.network()
        self.register("svc", "echo up; sleep 600")
        try:
            self.ecs.create_service(cluster="c", serviceName="s", taskDefinition="svc", desiredCount=2,
                                    launchType="FARGATE",
                                    networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
        except botocore.exceptions.ClientError as e:
            err = e.response["Error"]
            if "not implemented" in err.get("Message", "").lower() or err["Code"] in (
                    "NotImplemented", "InvalidAction", "UnknownOperationException"):
                self.skipTest("CreateService: %s %s" % (err["Code"], err.get("Message")))
            raise

        def running():
            arns = self.ecs.list_tasks(cluster="c", serviceName="s", desiredStatus="RUNNING")["taskArns"]
            if not arns:
                return arns, []
            return arns, self.ecs.describe_tasks(cluster="c", tasks=arns)["tasks"]

        def wait_two(exclude=()):
            deadline = time.time() + TIMEOUT
            while True:
                arns, tasks = running()
                if (len(arns) == 2 and all(t["lastStatus"] == "RUNNING" for t in tasks)
                        and not set(arns) & set(exclude)):
                    return tasks
                if time.time() > deadline:
                    self.fail("service tasks: %r" % [(t["taskArn"], t["lastStatus"]) for t in tasks])
                time.sleep(0.5)

        tasks = wait_two()
        for t in tasks:
            self.assertEqual(t["group"], "service:s")
        # A container killed: the service replaces its task.
        victim = tasks[0]
        os.kill(self.runtime_pid(victim["containers"][0]["runtimeId"]), signal.SIGKILL)
        self.wait_status(victim["taskArn"], "STOPPED")
        tasks = wait_two(exclude=[victim["taskArn"]])
        svc = self.cli(1, "ecs", "describe-services", "--cluster", "c", "--services", "s")["services"][0]
        self.assertEqual((svc["desiredCount"], svc["status"]), (2, "ACTIVE"))

        # kill -9 and back: the same two tasks, none added.
        before = sorted(t["taskArn"] for t in tasks)
        self.restart()
        wait_two()
        time.sleep(5)
        arns, tasks = running()
        self.assertEqual(sorted(arns), before)
        self.assertTrue(all(t["lastStatus"] == "RUNNING" for t in tasks))
        self.assertEqual(len(self.enis()), 2)

        # Deleted with --force (AWS CLI v2): the tasks stop, their ENIs go, the subnet can go.
        self.cli(2, "ecs", "delete-service", "--cluster", "c", "--service", "s", "--force")
        for arn in arns:
            self.wait_status(arn, "STOPPED")
        self.wait_enis([])
        self.cli(2, "ec2", "delete-subnet", "--subnet-id", subnet)
        self.cli(2, "ec2", "delete-vpc", "--vpc-id", vpc)


if __name__ == "__main__":
    unittest.main()
