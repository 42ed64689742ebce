"""A table of malformed requests for each protocol pierd serves, each with
the AWS error it must get — never a 5xx — and a store unchanged afterwards."""
import json
import os
import sqlite3
import unittest

from pier_harness import PierTestCase

ECS = "AmazonEC2ContainerServiceV20141113."
JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.1"}
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

# (name, service, headers, body, status, code)
CASES = [
    # JSON 1.1 (ECS)
    ("json: body is not JSON", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "CreateCluster"}),
     b'{"clusterName": ', 400, "SerializationException"),
    ("json: body is an array", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "CreateCluster"}),
     b'["x"]', 400, "SerializationException"),
    ("json: wrong type", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "ListClusters"}),
     b'{"maxResults": "ten"}', 400, "SerializationException"),
    ("json: integer out of range", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "ListClusters"}),
     b'{"maxResults": 1099511627776}', 400, "SerializationException"),
    ("json: list where a string goes", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "CreateCluster"}),
     b'{"clusterName": ["a"]}', 400, "SerializationException"),
    ("json: missing required member", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "RegisterTaskDefinition"}),
     b'{"family": "f"}', 400, "ValidationException"),
    ("json: value outside the enum", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "DescribeClusters"}),
     b'{"include": ["EVERYTHING"]}', 400, "ValidationException"),
    ("json: unknown operation", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "LaunchRocket"}),
     b'{}', 400, "UnknownOperationException"),
    ("json: target of another service", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": "AmazonSSM.ListClusters"}),
     b'{}', 400, "UnknownOperationException"),
    ("json: no target", "ecs", JSON_HEADERS, b'{}', 400, "UnknownOperationException"),
    ("json: invalid cluster name", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "CreateCluster"}),
     b'{"clusterName": "no spaces allowed"}', 400, "InvalidParameterException"),
    ("json: fargate size", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "RegisterTaskDefinition"}),
     json.dumps({"family": "f", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
                 "memory": "8192", "containerDefinitions": [{"name": "a", "image": "b"}]}).encode(),
     400, "ClientException"),
    ("json: bad pagination token", "ecs", dict(JSON_HEADERS, **{"X-Amz-Target": ECS + "ListClusters"}),
     b'{"nextToken": "garbage!"}', 400, "InvalidParameterException"),
    # query (IAM, STS)
    ("query: no action", "iam", FORM, b"Version=2010-05-08", 400, "MissingAction"),
    ("query: unknown action", "iam", FORM, b"Action=MakeMeAdmin&Version=2010-05-08", 400, "InvalidAction"),
    ("query: missing required member", "iam", FORM,
     b"Action=CreateRole&Version=2010-05-08&AssumeRolePolicyDocument=%7B%7D", 400, "ValidationError"),
    ("query: wrong type", "iam", FORM,
     b"Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7B%7D&MaxSessionDuration=abc",
     400, "ValidationError"),
    ("query: too long", "iam", FORM,
     b"Action=CreateRole&Version=2010-05-08&AssumeRolePolicyDocument=%7B%7D&RoleName=" + b"r" * 65,
     400, "ValidationError"),
    ("query: malformed policy", "iam", FORM,
     b"Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7Bnope", 400,
     "MalformedPolicyDocument"),
    ("query: policy without statement", "iam", FORM,
     b"Action=PutRolePolicy&Version=2010-05-08&RoleName=r&PolicyName=p&PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%7D",
     400, "MalformedPolicyDocument"),
    ("query: below the minimum", "sts", FORM,
     b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fr&RoleSessionName=s1&DurationSeconds=10",
     400, "ValidationError"),
    ("query: unknown action on sts", "sts", FORM, b"Action=GetSessionTokenz&Version=2011-06-15", 400, "InvalidAction"),
]


def dump(db_path):
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(con.execute("SELECT * FROM %s" % t).fetchall()) for t in tables}
    finally:
        con.close()


class BadInput(PierTestCase):
    def test_table(self):
        # Something to be left alone.
        self.pierd.client("ecs").create_cluster(clusterName="keep")
        self.pierd.client("iam").create_role(RoleName="keep", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))
        before = dump(os.path.join(self.pierd.home, "pier.db"))
        for name, service, headers, body, status, code in CASES:
            with self.subTest(name):
                got_status, hdrs, data = self.pierd.signed("POST", "/", service, body, dict(headers))
                self.assertEqual(got_status, status, data)
                if service == "ecs":
                    err = json.loads(data)
                    self.assertEqual(err["__type"], code)
                    self.assertTrue(err.get("message"), err)
                else:
                    self.assertIn(("<Code>%s</Code>" % code).encode(), data)
                    self.assertIn(b"<RequestId>", data)
                self.assertIn("x-amzn-requestid", hdrs)
        self.assertEqual(dump(os.path.join(self.pierd.home, "pier.db")), before)
        # And pierd still serves.
        self.assertEqual(len(self.pierd.client("ecs").list_clusters()["clusterArns"]), 1)


if __name__ == "__main__":
    unittest.main()
