"""The ECS control plane with the AWS CLI v1, v2 and boto3; every boto3
response is checked against the botocore model's output shape."""
import json
import unittest

from botocore.exceptions import ClientError

from pier_harness import PierTestCase

FARGATE_TD = dict(
    family="web", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
    executionRoleArn="arn:aws:iam::000000000000:role/exec",
    taskRoleArn="arn:aws:iam::000000000000:role/task",
    containerDefinitions=[{
        "name": "app", "image": "public.ecr.aws/docker/library/nginx:latest", "essential": True,
        "portMappings": [{"containerPort": 80}],
        "linuxParameters": {"initProcessEnabled": True},
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web",
                                                                   "awslogs-region": "us-east-1",
                                                                   "awslogs-stream-prefix": "web"}},
        "environment": [{"name": "A", "value": "1"}],
        "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 30},
    }],
    runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    ephemeralStorage={"sizeInGiB": 21},
    volumes=[{"name": "data"}],
)


class Clusters(PierTestCase):
    def setUp(self):
        super().setUp()
        self.ecs = self.checked("ecs")

    def test_lifecycle(self):
        c = self.ecs.create_cluster(clusterName="demo", tags=[{"key": "team", "value": "a"}],
                                    settings=[{"name": "containerInsights", "value": "enabled"}])["cluster"]
        self.assertEqual(c["clusterArn"], "arn:aws:ecs:us-east-1:000000000000:cluster/demo")
        self.assertEqual(c["status"], "ACTIVE")
        self.assertEqual(c["tags"], [{"key": "team", "value": "a"}])
        # Creating it again returns the same cluster.
        again = self.ecs.create_cluster(clusterName="demo")["cluster"]
        self.assertEqual(again["settings"], [{"name": "containerInsights", "value": "enabled"}])
        self.assertEqual(self.ecs.list_clusters()["clusterArns"], [c["clusterArn"]])

        plain = self.ecs.describe_clusters(clusters=["demo"])["clusters"][0]
        self.assertNotIn("tags", plain)
        full = self.ecs.describe_clusters(clusters=[c["clusterArn"]], include=["TAGS", "SETTINGS"])["clusters"][0]
        self.assertEqual(full["tags"], [{"key": "team", "value": "a"}])
        self.assertEqual(full["settings"], [{"name": "containerInsights", "value": "enabled"}])

        d = self.ecs.delete_cluster(cluster="demo")["cluster"]
        self.assertEqual(d["status"], "INACTIVE")
        self.assertEqual(self.ecs.list_clusters()["clusterArns"], [])
        # A deleted cluster is still described, as INACTIVE.
        self.assertEqual(self.ecs.describe_clusters(clusters=["demo"])["clusters"][0]["status"], "INACTIVE")
        with self.assertRaises(ClientError) as e:
            self.ecs.delete_cluster(cluster="demo")
        self.assertEqual(e.exception.response["Error"]["Code"], "ClusterNotFoundException")

    def test_default_cluster_and_failures(self):
        self.ecs.create_cluster()
        out = self.ecs.describe_clusters(clusters=["default", "nope"])
        self.assertEqual([c["clusterName"] for c in out["clusters"]], ["default"])
        self.assertEqual(out["failures"], [{"arn": "arn:aws:ecs:us-east-1:000000000000:cluster/nope",
                                            "reason": "MISSING"}])
        self.assertEqual(self.ecs.describe_clusters()["clusters"][0]["clusterName"], "default")

    def test_update_cluster_and_settings(self):
        self.ecs.create_cluster(clusterName="x")
        cfg = {"executeCommandConfiguration": {"logging": "OVERRIDE",
                                               "logConfiguration": {"cloudWatchLogGroupName": "/exec"}}}
        c = self.ecs.update_cluster(cluster="x", configuration=cfg)["cluster"]
        self.assertEqual(c["configuration"], cfg)
        c = self.ecs.update_cluster_settings(cluster="x", settings=[{"name": "containerInsights", "value": "enhanced"}])["cluster"]
        self.assertEqual(c["settings"], [{"name": "containerInsights", "value": "enhanced"}])
        c = self.ecs.describe_clusters(clusters=["x"], include=["CONFIGURATIONS"])["clusters"][0]
        self.assertEqual(c["configuration"], cfg)
        with self.assertRaises(ClientError) as e:
            self.ecs.update_cluster(cluster="nope", settings=[{"name": "containerInsights", "value": "enabled"}])
        self.assertEqual(e.exception.response["Error"]["Code"], "ClusterNotFoundException")

    def test_invalid_name(self):
        with self.assertRaises(ClientError) as e:
            self.ecs.create_cluster(clusterName="bad name!")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidParameterException")
        self.assertEqual(self.ecs.list_clusters()["clusterArns"], [])

    def test_list_clusters_pages(self):
        for i in range(5):
            self.ecs.create_cluster(clusterName="c%d" % i)
        seen, token = [], None
        while True:
            kw = {"maxResults": 2}
            if token:
                kw["nextToken"] = token
            page = self.ecs.list_clusters(**kw)
            seen += page["clusterArns"]
            token = page.get("nextToken")
            if not token:
                break
        self.assertEqual(len(seen), 5)
        self.assertEqual(len(set(seen)), 5)

    def test_tags(self):
        arn = self.ecs.create_cluster(clusterName="t")["cluster"]["clusterArn"]
        self.ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        self.ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
        self.assertEqual(self.ecs.list_tags_for_resource(resourceArn=arn)["tags"], [{"key": "b", "value": "2"}])
        with self.assertRaises(ClientError) as e:
            self.ecs.tag_resource(resourceArn="arn:aws:ecs:us-east-1:000000000000:cluster/none",
                                  tags=[{"key": "a", "value": "1"}])
        self.assertEqual(e.exception.response["Error"]["Code"], "ResourceNotFoundException")
        with self.assertRaises(ClientError) as e:
            self.ecs.tag_resource(resourceArn=arn, tags=[{"key": "aws:x", "value": "1"}])
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidParameterException")


class TaskDefinitions(PierTestCase):
    def setUp(self):
        super().setUp()
        self.ecs = self.checked("ecs")

    def test_every_member_is_stored_and_returned(self):
        td = self.ecs.register_task_definition(tags=[{"key": "k", "value": "v"}], **FARGATE_TD)
        t = td["taskDefinition"]
        self.assertEqual(t["taskDefinitionArn"], "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1")
        self.assertEqual(t["revision"], 1)
        self.assertEqual(t["status"], "ACTIVE")
        self.assertEqual(t["compatibilities"], ["EC2", "FARGATE"])
        self.assertEqual(t["registeredBy"], "arn:aws:iam::000000000000:root")
        self.assertIn("registeredAt", t)
        for key in ("family", "requiresCompatibilities", "networkMode", "cpu", "memory", "executionRoleArn",
                    "taskRoleArn", "runtimePlatform", "ephemeralStorage", "volumes"):
            self.assertEqual(t[key], FARGATE_TD[key], key)
        c = t["containerDefinitions"][0]
        want = FARGATE_TD["containerDefinitions"][0]
        for key in ("name", "image", "linuxParameters", "logConfiguration", "environment", "healthCheck"):
            self.assertEqual(c[key], want[key], key)
        self.assertEqual(c["portMappings"], [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}])
        names = {a["name"] for a in t["requiresAttributes"]}
        self.assertIn("ecs.capability.task-eni", names)
        self.assertIn("ecs.capability.execution-role-awslogs", names)
        self.assertEqual(td["tags"], [{"key": "k", "value": "v"}])

        d = self.ecs.describe_task_definition(taskDefinition="web", include=["TAGS"])
        self.assertEqual(d["taskDefinition"], t)
        self.assertEqual(d["tags"], [{"key": "k", "value": "v"}])

    def test_revisions_families_and_deregistration(self):
        for _ in range(3):
            self.ecs.register_task_definition(**FARGATE_TD)
        other = dict(FARGATE_TD, family="worker")
        self.ecs.register_task_definition(**other)
        arns = self.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]
        self.assertEqual([a.rsplit(":", 1)[1] for a in arns], ["1", "2", "3"])
        desc = self.ecs.list_task_definitions(sort="DESC")["taskDefinitionArns"]
        self.assertEqual(desc[0].rsplit("/", 1)[1], "worker:1")
        self.assertEqual(self.ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"], 3)
        self.assertEqual(self.ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]["revision"], 2)

        gone = self.ecs.deregister_task_definition(taskDefinition="web:3")["taskDefinition"]
        self.assertEqual(gone["status"], "INACTIVE")
        self.assertIn("deregisteredAt", gone)
        self.assertEqual(self.ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]["revision"], 2)
        self.assertEqual(len(self.ecs.list_task_definitions(familyPrefix="web", status="INACTIVE")["taskDefinitionArns"]), 1)
        # The next revision follows the highest ever used.
        self.assertEqual(self.ecs.register_task_definition(**FARGATE_TD)["taskDefinition"]["revision"], 4)

        self.assertEqual(self.ecs.list_task_definition_families()["families"], ["web", "worker"])
        self.assertEqual(self.ecs.list_task_definition_families(familyPrefix="wo")["families"], ["worker"])
        self.ecs.deregister_task_definition(taskDefinition="worker:1")
        self.assertEqual(self.ecs.list_task_definition_families()["families"], ["web"])
        self.assertEqual(self.ecs.list_task_definition_families(status="INACTIVE")["families"], ["worker"])
        self.assertEqual(self.ecs.list_task_definition_families(status="ALL")["families"], ["web", "worker"])

    def test_fargate_rules(self):
        cases = [
            (dict(FARGATE_TD, networkMode="bridge"), "Fargate only supports network mode"),
            (dict(FARGATE_TD, cpu="256", memory="4096"), "No Fargate configuration exists"),
            ({k: v for k, v in FARGATE_TD.items() if k != "cpu"}, "'cpu'"),
            (dict(FARGATE_TD, containerDefinitions=[{"name": "a"}]), "Container.image"),
            (dict(FARGATE_TD, family="bad family"), "Family"),
            (dict(FARGATE_TD, containerDefinitions=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]), "Duplicate"),
        ]
        for td, text in cases:
            with self.assertRaises(ClientError) as e:
                self.ecs.register_task_definition(**td)
            self.assertEqual(e.exception.response["Error"]["Code"], "ClientException")
            self.assertIn(text, e.exception.response["Error"]["Message"])
        self.assertEqual(self.ecs.list_task_definitions()["taskDefinitionArns"], [])

    def test_units_are_normalized(self):
        t = self.ecs.register_task_definition(**dict(FARGATE_TD, cpu=".5 vCPU", memory="1 GB"))["taskDefinition"]
        self.assertEqual((t["cpu"], t["memory"]), ("512", "1024"))

    def test_unknown_task_definition(self):
        with self.assertRaises(ClientError) as e:
            self.ecs.describe_task_definition(taskDefinition="nope:1")
        self.assertEqual(e.exception.response["Error"]["Code"], "ClientException")
        with self.assertRaises(ClientError) as e:
            self.ecs.deregister_task_definition(taskDefinition="web")
        self.assertEqual(e.exception.response["Error"]["Code"], "ClientException")

    def test_tags_on_task_definitions(self):
        arn = self.ecs.register_task_definition(**FARGATE_TD)["taskDefinition"]["taskDefinitionArn"]
        self.ecs.tag_resource(resourceArn=arn, tags=[{"key": "x", "value": "y"}])
        self.assertEqual(self.ecs.list_tags_for_resource(resourceArn=arn)["tags"], [{"key": "x", "value": "y"}])


class BothClis(PierTestCase):
    def test_ecs_calls_with_cli_v1_and_v2(self):
        for v in (1, 2):
            name = "cli%d" % v
            c = self.pierd.cli_json(v, "ecs", "create-cluster", "--cluster-name", name)["cluster"]
            self.assertEqual(c["clusterName"], name)
            d = self.pierd.cli_json(v, "ecs", "describe-clusters", "--clusters", name, "--include", "SETTINGS")
            self.assertEqual(d["clusters"][0]["status"], "ACTIVE")
            self.assertIn(c["clusterArn"], self.pierd.cli_json(v, "ecs", "list-clusters")["clusterArns"])
            self.pierd.cli_json(v, "ecs", "update-cluster-settings", "--cluster", name,
                                "--settings", "name=containerInsights,value=enabled")
            self.pierd.cli_json(v, "ecs", "update-cluster", "--cluster", name, "--configuration",
                                json.dumps({"executeCommandConfiguration": {"logging": "DEFAULT"}}))
            td = self.pierd.cli_json(v, "ecs", "register-task-definition", "--family", name,
                                     "--requires-compatibilities", "FARGATE", "--network-mode", "awsvpc",
                                     "--cpu", "256", "--memory", "512", "--container-definitions",
                                     json.dumps([{"name": "app", "image": "busybox"}]))["taskDefinition"]
            self.assertEqual(td["revision"], 1)
            self.pierd.cli_json(v, "ecs", "describe-task-definition", "--task-definition", name)
            self.assertEqual(self.pierd.cli_json(v, "ecs", "list-task-definition-families",
                                                 "--family-prefix", name)["families"], [name])
            self.assertEqual(len(self.pierd.cli_json(v, "ecs", "list-task-definitions", "--family-prefix",
                                                     name)["taskDefinitionArns"]), 1)
            self.pierd.cli_json(v, "ecs", "tag-resource", "--resource-arn", c["clusterArn"], "--tags", "key=a,value=b")
            self.assertEqual(self.pierd.cli_json(v, "ecs", "list-tags-for-resource", "--resource-arn",
                                                 c["clusterArn"])["tags"], [{"key": "a", "value": "b"}])
            self.pierd.cli_json(v, "ecs", "untag-resource", "--resource-arn", c["clusterArn"], "--tag-keys", "a")
            self.pierd.cli_json(v, "ecs", "deregister-task-definition", "--task-definition", name + ":1")
            self.assertEqual(self.pierd.cli_json(v, "ecs", "delete-cluster", "--cluster", name)["cluster"]["status"],
                             "INACTIVE")
            p = self.pierd.cli(v, "ecs", "describe-task-definition", "--task-definition", "nope:1", check=False)
            self.assertIn("(ClientException)", p.stderr)


if __name__ == "__main__":
    unittest.main()
