"""IAM roles and policies, STS AssumeRole, and role credentials evaluated
against the role's policies by every API call."""
import json
import unittest

from botocore.exceptions import ClientError

from pier_harness import PierTestCase

TRUST_ACCOUNT = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]})
TRUST_ECS_TASKS = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def allow(*actions, resource="*", effect="Allow", condition=None):
    st = {"Effect": effect, "Action": list(actions), "Resource": resource}
    if condition:
        st["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


class Roles(PierTestCase):
    def setUp(self):
        super().setUp()
        self.iam = self.checked("iam")

    def test_role_lifecycle(self):
        r = self.iam.create_role(RoleName="task", AssumeRolePolicyDocument=TRUST_ECS_TASKS,
                                 Description="d", Tags=[{"Key": "a", "Value": "b"}])["Role"]
        self.assertEqual(r["Arn"], "arn:aws:iam::000000000000:role/task")
        self.assertTrue(r["RoleId"].startswith("AROA"))
        # boto3 decodes the URL-encoded document IAM sends.
        self.assertEqual(r["AssumeRolePolicyDocument"], json.loads(TRUST_ECS_TASKS))
        g = self.iam.get_role(RoleName="task")["Role"]
        self.assertEqual(g["Tags"], [{"Key": "a", "Value": "b"}])
        self.assertEqual([x["RoleName"] for x in self.iam.list_roles()["Roles"]], ["task"])
        self.iam.update_assume_role_policy(RoleName="task", PolicyDocument=TRUST_ACCOUNT)
        self.assertEqual(self.iam.get_role(RoleName="task")["Role"]["AssumeRolePolicyDocument"],
                         json.loads(TRUST_ACCOUNT))
        with self.assertRaises(ClientError) as e:
            self.iam.create_role(RoleName="task", AssumeRolePolicyDocument=TRUST_ACCOUNT)
        self.assertEqual(e.exception.response["Error"]["Code"], "EntityAlreadyExists")
        self.iam.delete_role(RoleName="task")
        with self.assertRaises(ClientError) as e:
            self.iam.get_role(RoleName="task")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchEntity")
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)

    def test_path(self):
        r = self.iam.create_role(RoleName="svc", Path="/service-role/", AssumeRolePolicyDocument=TRUST_ACCOUNT)["Role"]
        self.assertEqual(r["Arn"], "arn:aws:iam::000000000000:role/service-role/svc")
        self.assertEqual(len(self.iam.list_roles(PathPrefix="/service-role/")["Roles"]), 1)
        self.assertEqual(len(self.iam.list_roles(PathPrefix="/other/")["Roles"]), 0)

    def test_malformed_policy_changes_nothing(self):
        with self.assertRaises(ClientError) as e:
            self.iam.create_role(RoleName="x", AssumeRolePolicyDocument="{not json")
        self.assertEqual(e.exception.response["Error"]["Code"], "MalformedPolicyDocument")
        self.assertEqual(self.iam.list_roles()["Roles"], [])

    def test_inline_policies(self):
        self.iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST_ACCOUNT)
        doc = allow("ssmmessages:CreateControlChannel", "ssmmessages:OpenControlChannel")
        self.iam.put_role_policy(RoleName="r", PolicyName="exec", PolicyDocument=doc)
        self.assertEqual(self.iam.list_role_policies(RoleName="r")["PolicyNames"], ["exec"])
        got = self.iam.get_role_policy(RoleName="r", PolicyName="exec")
        self.assertEqual(got["PolicyDocument"], json.loads(doc))
        with self.assertRaises(ClientError) as e:
            self.iam.delete_role(RoleName="r")
        self.assertEqual(e.exception.response["Error"]["Code"], "DeleteConflict")
        self.iam.delete_role_policy(RoleName="r", PolicyName="exec")
        with self.assertRaises(ClientError) as e:
            self.iam.get_role_policy(RoleName="r", PolicyName="exec")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchEntity")
        self.iam.delete_role(RoleName="r")

    def test_managed_policies(self):
        self.iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST_ACCOUNT)
        p = self.iam.create_policy(PolicyName="mine", PolicyDocument=allow("ecs:ListClusters"))["Policy"]
        self.assertEqual(p["Arn"], "arn:aws:iam::000000000000:policy/mine")
        self.assertEqual(p["DefaultVersionId"], "v1")
        with self.assertRaises(ClientError) as e:
            self.iam.create_policy(PolicyName="mine", PolicyDocument=allow("ecs:ListClusters"))
        self.assertEqual(e.exception.response["Error"]["Code"], "EntityAlreadyExists")
        v = self.iam.get_policy_version(PolicyArn=p["Arn"], VersionId="v1")["PolicyVersion"]
        self.assertEqual(v["Document"], json.loads(allow("ecs:ListClusters")))
        self.iam.attach_role_policy(RoleName="r", PolicyArn=p["Arn"])
        self.assertEqual(self.iam.get_policy(PolicyArn=p["Arn"])["Policy"]["AttachmentCount"], 1)
        self.assertEqual(self.iam.list_attached_role_policies(RoleName="r")["AttachedPolicies"],
                         [{"PolicyName": "mine", "PolicyArn": p["Arn"]}])
        with self.assertRaises(ClientError) as e:
            self.iam.delete_role(RoleName="r")
        self.assertEqual(e.exception.response["Error"]["Code"], "DeleteConflict")
        self.iam.detach_role_policy(RoleName="r", PolicyArn=p["Arn"])
        with self.assertRaises(ClientError) as e:
            self.iam.attach_role_policy(RoleName="r", PolicyArn="arn:aws:iam::000000000000:policy/none")
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchEntity")

    def test_aws_managed_policies_of_the_reference_system(self):
        for arn, action in [
            ("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy", "ecr:GetAuthorizationToken"),
            ("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser", "ecr:PutImage"),
            ("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", "logs:CreateLogGroup"),
        ]:
            p = self.iam.get_policy(PolicyArn=arn)["Policy"]
            self.assertEqual(p["Arn"], arn)
            doc = self.iam.get_policy_version(PolicyArn=arn, VersionId=p["DefaultVersionId"])["PolicyVersion"]["Document"]
            self.assertIn(action, doc["Statement"][0]["Action"])
        names = {p["PolicyName"] for p in self.iam.list_policies(Scope="AWS")["Policies"]}
        self.assertIn("AmazonECSTaskExecutionRolePolicy", names)
        self.iam.create_policy(PolicyName="local", PolicyDocument=allow("ecs:ListClusters"))
        self.assertEqual([p["PolicyName"] for p in self.iam.list_policies(Scope="Local")["Policies"]], ["local"])
        self.iam.create_role(RoleName="exec", AssumeRolePolicyDocument=TRUST_ECS_TASKS)
        self.iam.attach_role_policy(RoleName="exec",
                                    PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
        self.assertEqual(len(self.iam.list_attached_role_policies(RoleName="exec")["AttachedPolicies"]), 1)

    def test_both_clis(self):
        for v in (1, 2):
            name = "cli%d" % v
            r = self.pierd.cli_json(v, "iam", "create-role", "--role-name", name,
                                    "--assume-role-policy-document", TRUST_ECS_TASKS)["Role"]
            self.assertEqual(r["RoleName"], name)
            self.pierd.cli_json(v, "iam", "put-role-policy", "--role-name", name, "--policy-name", "p",
                                "--policy-document", allow("ecs:*"))
            got = self.pierd.cli_json(v, "iam", "get-role-policy", "--role-name", name, "--policy-name", "p")
            self.assertEqual(got["PolicyDocument"]["Statement"][0]["Action"], ["ecs:*"])
            self.pierd.cli_json(v, "iam", "attach-role-policy", "--role-name", name, "--policy-arn",
                                "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
            self.assertEqual(len(self.pierd.cli_json(v, "iam", "list-attached-role-policies", "--role-name",
                                                     name)["AttachedPolicies"]), 1)
            p = self.pierd.cli(v, "iam", "get-role", "--role-name", "nobody", check=False)
            self.assertIn("(NoSuchEntity)", p.stderr)


class RoleCredentials(PierTestCase):
    def assume(self, role="r", trust=TRUST_ACCOUNT, policy=None, session="sess"):
        iam = self.pierd.client("iam")
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
        if policy:
            iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=policy)
        out = self.checked("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/" + role,
                                              RoleSessionName=session, DurationSeconds=900)
        c = out["Credentials"]
        self.assertTrue(c["AccessKeyId"].startswith("ASIA"))
        self.assertEqual(out["AssumedRoleUser"]["Arn"], "arn:aws:sts::000000000000:assumed-role/%s/%s" % (role, session))
        return c

    def client(self, service, c):
        return self.pierd.client(service, key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])

    def test_caller_identity_of_a_session(self):
        c = self.assume()
        ident = self.client("sts", c).get_caller_identity()
        self.assertEqual(ident["Arn"], "arn:aws:sts::000000000000:assumed-role/r/sess")
        self.assertTrue(ident["UserId"].endswith(":sess"))

    def test_role_without_policies_is_denied(self):
        c = self.assume()
        with self.assertRaises(ClientError) as e:
            self.client("ecs", c).list_clusters()
        err = e.exception.response["Error"]
        self.assertEqual(err["Code"], "AccessDeniedException")
        self.assertIn("assumed-role/r/sess is not authorized to perform: ecs:ListClusters", err["Message"])

    def test_allowed_action_and_resource(self):
        c = self.assume(policy=allow("ecs:ListClusters", "ecs:CreateCluster",
                                     resource=["*"]))
        ecs = self.client("ecs", c)
        ecs.create_cluster(clusterName="mine")
        self.assertEqual(len(ecs.list_clusters()["clusterArns"]), 1)
        with self.assertRaises(ClientError) as e:
            ecs.delete_cluster(cluster="mine")
        self.assertEqual(e.exception.response["Error"]["Code"], "AccessDeniedException")

    def test_resource_arn_decides(self):
        c = self.assume(policy=allow("ecs:CreateCluster", resource="arn:aws:ecs:us-east-1:000000000000:cluster/dev-*"))
        ecs = self.client("ecs", c)
        ecs.create_cluster(clusterName="dev-1")
        with self.assertRaises(ClientError):
            ecs.create_cluster(clusterName="prod")
        self.assertEqual(len(self.pierd.client("ecs").list_clusters()["clusterArns"]), 1)

    def test_explicit_deny_wins(self):
        iam = self.pierd.client("iam")
        c = self.assume(policy=allow("*"))
        iam.put_role_policy(RoleName="r", PolicyName="deny", PolicyDocument=allow("ecs:*", effect="Deny"))
        with self.assertRaises(ClientError) as e:
            self.client("ecs", c).list_clusters()
        self.assertIn("explicit deny", e.exception.response["Error"]["Message"])
        self.client("iam", c).list_roles()

    def test_wrong_session_token_is_refused(self):
        c = self.assume(policy=allow("*"))
        bad = self.pierd.client("ecs", key=c["AccessKeyId"], secret=c["SecretAccessKey"], token="bogus")
        with self.assertRaises(ClientError) as e:
            bad.list_clusters()
        self.assertEqual(e.exception.response["Error"]["Code"], "UnrecognizedClientException")

    def test_trust_policy_must_name_the_caller(self):
        iam = self.pierd.client("iam")
        iam.create_role(RoleName="tasks-only", AssumeRolePolicyDocument=TRUST_ECS_TASKS)
        with self.assertRaises(ClientError) as e:
            self.pierd.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/tasks-only",
                                                 RoleSessionName="sess")
        self.assertEqual(e.exception.response["Error"]["Code"], "AccessDenied")
        with self.assertRaises(ClientError) as e:
            self.pierd.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/none",
                                                 RoleSessionName="sess")
        self.assertEqual(e.exception.response["Error"]["Code"], "AccessDenied")

    def test_managed_policy_grants(self):
        iam = self.pierd.client("iam")
        c = self.assume()
        p = iam.create_policy(PolicyName="ecsread", PolicyDocument=allow("ecs:List*"))["Policy"]
        iam.attach_role_policy(RoleName="r", PolicyArn=p["Arn"])
        self.client("ecs", c).list_clusters()
        iam.detach_role_policy(RoleName="r", PolicyArn=p["Arn"])
        with self.assertRaises(ClientError):
            self.client("ecs", c).list_clusters()

    def test_cli_with_session_credentials(self):
        c = self.assume(policy=allow("ecs:ListClusters"))
        env = {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
               "AWS_SESSION_TOKEN": c["SessionToken"]}
        for v in (1, 2):
            self.assertEqual(self.pierd.cli_json(v, "ecs", "list-clusters", env=env)["clusterArns"], [])
            p = self.pierd.cli(v, "ecs", "create-cluster", env=env, check=False)
            self.assertIn("(AccessDeniedException)", p.stderr)


if __name__ == "__main__":
    unittest.main()
