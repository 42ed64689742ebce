"""CloudWatch Logs with the AWS CLI v1, v2 and boto3; every boto3 response is
checked against the botocore model's output shape."""
import json
import os
import select
import subprocess
import time
import unittest

from pier_harness import AWS_V2, ENV, PierTestCase

ACCOUNT = "000000000000"
REGION = "us-east-1"


def now_ms():
    return int(time.time() * 1000)


class Boto3Logs(PierTestCase):
    def setUp(self):
        super().setUp()
        self.logs = self.checked("logs")

    def put(self, group, stream, messages, start=None):
        t = start if start is not None else now_ms() - 1000 * len(messages)
        events = [{"timestamp": t + i, "message": m} for i, m in enumerate(messages)]
        return self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def test_groups_describe_prefix_pattern_and_pages(self):
        for name in ("/ecs/web", "/ecs/api", "/lambda/f", "plain"):
            self.logs.create_log_group(logGroupName=name)
        groups = self.logs.describe_log_groups(logGroupNamePrefix="/ecs/")["logGroups"]
        self.assertEqual([g["logGroupName"] for g in groups], ["/ecs/api", "/ecs/web"])
        g = groups[1]
        self.assertEqual(g["arn"], "arn:aws:logs:%s:%s:log-group:/ecs/web:*" % (REGION, ACCOUNT))
        self.assertEqual(g["logGroupArn"], "arn:aws:logs:%s:%s:log-group:/ecs/web" % (REGION, ACCOUNT))
        self.assertEqual(g["metricFilterCount"], 0)
        self.assertEqual(g["storedBytes"], 0)
        self.assertEqual(g["logGroupClass"], "STANDARD")
        self.assertLess(abs(g["creationTime"] - now_ms()), 60000)
        self.assertNotIn("retentionInDays", g)
        pat = self.logs.describe_log_groups(logGroupNamePattern="api")["logGroups"]
        self.assertEqual([g["logGroupName"] for g in pat], ["/ecs/api"])

        pages = self.pierd.client("logs").get_paginator("describe_log_groups").paginate(
            PaginationConfig={"PageSize": 1})
        names = [g["logGroupName"] for p in pages for g in p["logGroups"]]
        self.assertEqual(names, ["/ecs/api", "/ecs/web", "/lambda/f", "plain"])

        code, msg = self.error(self.logs.create_log_group, logGroupName="/ecs/web")
        self.assertEqual((code, msg), ("ResourceAlreadyExistsException", "The specified log group already exists"))
        code, _ = self.error(self.logs.create_log_group, logGroupName="bad name!")
        self.assertEqual(code, "InvalidParameterException")
        self.logs.delete_log_group(logGroupName="/ecs/web")
        code, msg = self.error(self.logs.delete_log_group, logGroupName="/ecs/web")
        self.assertEqual((code, msg), ("ResourceNotFoundException", "The specified log group does not exist."))
        self.assertEqual(len(self.logs.describe_log_groups()["logGroups"]), 3)

    def test_events_streams_and_paging(self):
        self.logs.create_log_group(logGroupName="app")
        self.logs.create_log_stream(logGroupName="app", logStreamName="web/1")
        self.logs.create_log_stream(logGroupName="app", logStreamName="web/2")
        t = now_ms() - 60000
        r = self.put("app", "web/1", ["m%d" % i for i in range(5)], start=t)
        self.assertIn("nextSequenceToken", r)
        self.assertNotIn("rejectedLogEventsInfo", r)
        self.put("app", "web/2", ["other"], start=t + 100)

        streams = self.logs.describe_log_streams(logGroupName="app")["logStreams"]
        s = streams[0]
        self.assertEqual(s["logStreamName"], "web/1")
        self.assertEqual(s["firstEventTimestamp"], t)
        self.assertEqual(s["lastEventTimestamp"], t + 4)
        self.assertLess(abs(s["lastIngestionTime"] - now_ms()), 60000)
        self.assertEqual(s["arn"], "arn:aws:logs:%s:%s:log-group:app:log-stream:web/1" % (REGION, ACCOUNT))
        self.assertEqual(s["storedBytes"], 10)
        by_time = self.logs.describe_log_streams(logGroupName="app", orderBy="LastEventTime", descending=True)
        self.assertEqual([x["logStreamName"] for x in by_time["logStreams"]], ["web/2", "web/1"])
        code, msg = self.error(self.logs.describe_log_streams, logGroupName="app", orderBy="LastEventTime",
                               logStreamNamePrefix="web")
        self.assertEqual(code, "InvalidParameterException")

        # GetLogEvents: pages forward until the token repeats, as AWS does.
        seen, token, calls = [], None, 0
        while calls < 10:
            kw = dict(logGroupName="app", logStreamName="web/1", limit=2, startFromHead=True)
            if token:
                kw["nextToken"] = token
            out = self.logs.get_log_events(**kw)
            calls += 1
            seen += [e["message"] for e in out["events"]]
            self.assertTrue(out["nextBackwardToken"].startswith("b/"))
            if out["nextForwardToken"] == token:
                break
            token = out["nextForwardToken"]
        self.assertEqual(seen, ["m0", "m1", "m2", "m3", "m4"])
        self.assertEqual(calls, 4)
        # The default reads from the tail.
        tail = self.logs.get_log_events(logGroupName="app", logStreamName="web/1", limit=2)
        self.assertEqual([e["message"] for e in tail["events"]], ["m3", "m4"])
        back = self.logs.get_log_events(logGroupName="app", logStreamName="web/1", limit=2,
                                        nextToken=tail["nextBackwardToken"])
        self.assertEqual([e["message"] for e in back["events"]], ["m1", "m2"])

        # FilterLogEvents across streams, interleaved by time, paged by the paginator.
        pages = self.pierd.client("logs").get_paginator("filter_log_events").paginate(
            logGroupName="app", PaginationConfig={"PageSize": 2})
        events = [e for p in pages for e in p["events"]]
        self.assertEqual([e["message"] for e in events], ["m0", "m1", "m2", "m3", "m4", "other"])
        self.assertEqual(len({e["eventId"] for e in events}), 6)
        out = self.logs.filter_log_events(logGroupName="app", logStreamNames=["web/2"])
        self.assertEqual([e["message"] for e in out["events"]], ["other"])
        self.assertEqual(out["searchedLogStreams"], [{"logStreamName": "web/2", "searchedCompletely": True}])

        self.logs.delete_log_stream(logGroupName="app", logStreamName="web/2")
        code, msg = self.error(self.logs.get_log_events, logGroupName="app", logStreamName="web/2")
        self.assertEqual((code, msg), ("ResourceNotFoundException", "The specified log stream does not exist."))

    def test_filter_patterns(self):
        self.logs.create_log_group(logGroupName="f")
        self.logs.create_log_stream(logGroupName="f", logStreamName="s")
        self.put("f", "s", ["ERROR connection refused by db", "ERROR timeout", "INFO started",
                            "WARN connection slow"])

        def match(p):
            return [e["message"] for e in self.logs.filter_log_events(logGroupName="f", filterPattern=p)["events"]]
        self.assertEqual(match("ERROR"), ["ERROR connection refused by db", "ERROR timeout"])
        self.assertEqual(match('"connection refused"'), ["ERROR connection refused by db"])
        self.assertEqual(match("connection -ERROR"), ["WARN connection slow"])
        self.assertEqual(match("?INFO ?WARN"), ["INFO started", "WARN connection slow"])
        self.assertEqual(match("error"), [])
        self.assertEqual(len(match("")), 4)

    def test_put_log_events_rules(self):
        self.logs.create_log_group(logGroupName="p")
        self.logs.create_log_stream(logGroupName="p", logStreamName="s")
        t = now_ms()
        code, msg = self.error(self.logs.put_log_events, logGroupName="p", logStreamName="s",
                               logEvents=[{"timestamp": t, "message": "b"}, {"timestamp": t - 5, "message": "a"}])
        self.assertEqual((code, msg), ("InvalidParameterException",
                                       "Log events in a single PutLogEvents request must be in chronological order."))
        # The refused batch changed nothing.
        s = self.logs.describe_log_streams(logGroupName="p")["logStreams"][0]
        self.assertNotIn("lastEventTimestamp", s)
        self.assertEqual(self.logs.get_log_events(logGroupName="p", logStreamName="s")["events"], [])

        day = 86400000
        r = self.logs.put_log_events(logGroupName="p", logStreamName="s", logEvents=[
            {"timestamp": t - 15 * day, "message": "too old"}, {"timestamp": t - 15 * day + 1, "message": "old"}])
        self.assertEqual(r["rejectedLogEventsInfo"], {"tooOldLogEventEndIndex": 1})
        r = self.logs.put_log_events(logGroupName="p", logStreamName="s", logEvents=[
            {"timestamp": t, "message": "fine"}, {"timestamp": t + 3 * 3600000, "message": "too new"}])
        self.assertEqual(r["rejectedLogEventsInfo"], {"tooNewLogEventStartIndex": 1})
        got = self.logs.get_log_events(logGroupName="p", logStreamName="s", startFromHead=True)
        self.assertEqual([e["message"] for e in got["events"]], ["fine"])
        # The sequence token is accepted and ignored, as AWS does now.
        self.logs.put_log_events(logGroupName="p", logStreamName="s", sequenceToken="123",
                                 logEvents=[{"timestamp": t + 1, "message": "again"}])

        code, msg = self.error(self.logs.put_log_events, logGroupName="nope", logStreamName="s",
                               logEvents=[{"timestamp": t, "message": "x"}])
        self.assertEqual((code, msg), ("ResourceNotFoundException", "The specified log group does not exist."))
        code, msg = self.error(self.logs.put_log_events, logGroupName="p", logStreamName="nope",
                               logEvents=[{"timestamp": t, "message": "x"}])
        self.assertEqual((code, msg), ("ResourceNotFoundException", "The specified log stream does not exist."))
        code, msg = self.error(self.logs.create_log_stream, logGroupName="p", logStreamName="s")
        self.assertEqual((code, msg), ("ResourceAlreadyExistsException", "The specified log stream already exists"))

    def test_retention(self):
        self.logs.create_log_group(logGroupName="r")
        self.logs.create_log_stream(logGroupName="r", logStreamName="s")
        day = 86400000
        t = now_ms()
        self.put("r", "s", ["four days ago"], start=t - 4 * day)
        self.put("r", "s", ["now"], start=t)
        code, msg = self.error(self.logs.put_retention_policy, logGroupName="r", retentionInDays=2)
        self.assertEqual(code, "InvalidParameterException")
        self.assertIn("retentionInDays", msg)
        self.assertNotIn("retentionInDays", self.logs.describe_log_groups()["logGroups"][0])
        code, msg = self.error(self.logs.put_retention_policy, logGroupName="nope", retentionInDays=3)
        self.assertEqual((code, msg), ("ResourceNotFoundException", "The specified log group does not exist."))

        self.logs.put_retention_policy(logGroupName="r", retentionInDays=3)
        self.assertEqual(self.logs.describe_log_groups()["logGroups"][0]["retentionInDays"], 3)
        got = self.logs.get_log_events(logGroupName="r", logStreamName="s", startFromHead=True)
        self.assertEqual([e["message"] for e in got["events"]], ["now"])
        self.assertEqual([e["message"] for e in self.logs.filter_log_events(logGroupName="r")["events"]], ["now"])
        self.logs.delete_retention_policy(logGroupName="r")
        self.assertNotIn("retentionInDays", self.logs.describe_log_groups()["logGroups"][0])
        self.assertEqual(len(self.logs.filter_log_events(logGroupName="r")["events"]), 2)

    def test_tags(self):
        self.logs.create_log_group(logGroupName="t", tags={"team": "a"})
        arn = "arn:aws:logs:%s:%s:log-group:t" % (REGION, ACCOUNT)
        self.assertEqual(self.logs.list_tags_for_resource(resourceArn=arn)["tags"], {"team": "a"})
        self.logs.tag_resource(resourceArn=arn, tags={"env": "dev", "x": "1"})
        self.logs.untag_resource(resourceArn=arn, tagKeys=["x"])
        self.logs.tag_log_group(logGroupName="t", tags={"old": "api"})
        self.logs.untag_log_group(logGroupName="t", tags=["team"])
        self.assertEqual(self.logs.list_tags_log_group(logGroupName="t")["tags"], {"env": "dev", "old": "api"})
        self.assertEqual(self.logs.list_tags_for_resource(resourceArn=arn + ":*")["tags"],
                         {"env": "dev", "old": "api"})
        code, _ = self.error(self.logs.tag_resource, resourceArn=arn + "x", tags={"a": "b"})
        self.assertEqual(code, "ResourceNotFoundException")
        code, _ = self.error(self.logs.list_tags_log_group, logGroupName="nope")
        self.assertEqual(code, "ResourceNotFoundException")


class CliLogs(PierTestCase):
    """The same with the AWS CLI v1 and v2."""

    def events_arg(self, messages, start):
        return json.dumps([{"timestamp": start + i, "message": m} for i, m in enumerate(messages)])

    def test_both_clis(self):
        for v in (1, 2):
            with self.subTest(cli=v):
                g = "/pier/v%d" % v
                cli = self.pierd.cli_json
                cli(v, "logs", "create-log-group", "--log-group-name", g, "--tags", "team=a")
                cli(v, "logs", "create-log-stream", "--log-group-name", g, "--log-stream-name", "web/1")
                t = now_ms() - 10000
                msgs = ["INFO start", "ERROR connection refused", "ERROR timeout", "INFO done", "WARN slow"]
                out = cli(v, "logs", "put-log-events", "--log-group-name", g, "--log-stream-name", "web/1",
                          "--log-events", self.events_arg(msgs, t))
                self.assertIn("nextSequenceToken", out)

                # get-log-events: one page per call (the CLIs do not paginate it);
                # follow the forward token until it repeats.
                seen, token = [], None
                for _ in range(10):
                    args = ["logs", "get-log-events", "--log-group-name", g, "--log-stream-name", "web/1",
                            "--start-from-head", "--limit", "2"]
                    if token:
                        args += ["--next-token", token]
                    page = cli(v, *args)
                    seen += [e["message"] for e in page["events"]]
                    if page["nextForwardToken"] == token:
                        break
                    token = page["nextForwardToken"]
                self.assertEqual(seen, msgs)
                whole = cli(v, "logs", "get-log-events", "--log-group-name", g, "--log-stream-name", "web/1")
                self.assertEqual([e["message"] for e in whole["events"]], msgs)

                # filter-log-events: a term and a quoted phrase (the CLI paginates).
                f = cli(v, "logs", "filter-log-events", "--log-group-name", g, "--filter-pattern", "ERROR")
                self.assertEqual([e["message"] for e in f["events"]], ["ERROR connection refused", "ERROR timeout"])
                f = cli(v, "logs", "filter-log-events", "--log-group-name", g, "--filter-pattern",
                        '"connection refused"')
                self.assertEqual([e["message"] for e in f["events"]], ["ERROR connection refused"])
                f = cli(v, "logs", "filter-log-events", "--log-group-name", g, "--page-size", "2")
                self.assertEqual([e["message"] for e in f["events"]], msgs)

                d = cli(v, "logs", "describe-log-groups", "--log-group-name-prefix", "/pier/v%d" % v)
                self.assertEqual([x["logGroupName"] for x in d["logGroups"]], [g])
                cli(v, "logs", "put-retention-policy", "--log-group-name", g, "--retention-in-days", "7")
                d = cli(v, "logs", "describe-log-groups", "--log-group-name-prefix", g)
                self.assertEqual(d["logGroups"][0]["retentionInDays"], 7)
                p = self.pierd.cli(v, "logs", "put-retention-policy", "--log-group-name", g,
                                   "--retention-in-days", "8", check=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("(InvalidParameterException)", p.stderr)
                d = cli(v, "logs", "describe-log-groups", "--log-group-name-prefix", g)
                self.assertEqual(d["logGroups"][0]["retentionInDays"], 7)
                cli(v, "logs", "delete-retention-policy", "--log-group-name", g)

                cli(v, "logs", "tag-log-group", "--log-group-name", g, "--tags", "env=dev")
                self.assertEqual(cli(v, "logs", "list-tags-log-group", "--log-group-name", g)["tags"],
                                 {"team": "a", "env": "dev"})
                arn = "arn:aws:logs:%s:%s:log-group:%s" % (REGION, ACCOUNT, g)
                cli(v, "logs", "tag-resource", "--resource-arn", arn, "--tags", "x=1")
                self.assertEqual(cli(v, "logs", "list-tags-for-resource", "--resource-arn", arn)["tags"],
                                 {"team": "a", "env": "dev", "x": "1"})

                # Errors, and that they changed nothing.
                p = self.pierd.cli(v, "logs", "put-log-events", "--log-group-name", g, "--log-stream-name", "web/1",
                                   "--log-events", json.dumps([{"timestamp": t + 100, "message": "b"},
                                                               {"timestamp": t + 50, "message": "a"}]), check=False)
                self.assertIn("(InvalidParameterException)", p.stderr)
                self.assertIn("must be in chronological order", p.stderr)
                p = self.pierd.cli(v, "logs", "describe-log-streams", "--log-group-name", "/missing", check=False)
                self.assertIn("(ResourceNotFoundException)", p.stderr)
                self.assertIn("The specified log group does not exist.", p.stderr)
                whole = cli(v, "logs", "get-log-events", "--log-group-name", g, "--log-stream-name", "web/1")
                self.assertEqual([e["message"] for e in whole["events"]], msgs)
                s = cli(v, "logs", "describe-log-streams", "--log-group-name", g)["logStreams"][0]
                self.assertEqual(s["lastEventTimestamp"], t + 4)

    def test_tail_v2(self):
        cli = self.pierd.cli_json
        cli(2, "logs", "create-log-group", "--log-group-name", "/tail")
        cli(2, "logs", "create-log-stream", "--log-group-name", "/tail", "--log-stream-name", "app/1")
        cli(2, "logs", "create-log-stream", "--log-group-name", "/tail", "--log-stream-name", "other")
        t = now_ms() - 60000
        cli(2, "logs", "put-log-events", "--log-group-name", "/tail", "--log-stream-name", "app/1",
            "--log-events", self.events_arg(["hello from tail", "second line"], t))
        cli(2, "logs", "put-log-events", "--log-group-name", "/tail", "--log-stream-name", "other",
            "--log-events", self.events_arg(["elsewhere"], t + 10))
        # Two hours ago: outside --since 1h.
        cli(2, "logs", "put-log-events", "--log-group-name", "/tail", "--log-stream-name", "other",
            "--log-events", self.events_arg(["long ago"], now_ms() - 2 * 3600000))

        out = self.pierd.cli(2, "logs", "tail", "/tail", "--since", "1h").stdout
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 3, out)
        self.assertTrue(lines[0].endswith(" app/1 hello from tail"), out)
        self.assertTrue(lines[1].endswith(" app/1 second line"), out)
        self.assertTrue(lines[2].endswith(" other elsewhere"), out)
        out = self.pierd.cli(2, "logs", "tail", "/tail", "--since", "1h", "--log-stream-name-prefix", "app",
                             "--filter-pattern", "second").stdout
        self.assertEqual(len(out.strip().splitlines()), 1, out)
        self.assertIn("second line", out)
        out = self.pierd.cli(2, "logs", "tail", "/tail", "--since", "3h", "--format", "short").stdout
        self.assertEqual(len(out.strip().splitlines()), 4, out)
        p = self.pierd.cli(2, "logs", "tail", "/missing", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ResourceNotFoundException", p.stderr)

    def test_tail_follow_v2(self):
        """`aws logs tail --follow` prints events written after it started."""
        cli = self.pierd.cli_json
        cli(2, "logs", "create-log-group", "--log-group-name", "/follow")
        cli(2, "logs", "create-log-stream", "--log-group-name", "/follow", "--log-stream-name", "s")
        cli(2, "logs", "put-log-events", "--log-group-name", "/follow", "--log-stream-name", "s",
            "--log-events", self.events_arg(["before"], now_ms() - 1000))
        e = dict(ENV)
        p = subprocess.Popen([AWS_V2, "--endpoint-url", self.pierd.endpoint, "logs", "tail", "/follow",
                              "--follow", "--since", "5m"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=e)

        def stop():
            if p.poll() is None:
                p.terminate()
                p.wait(10)
            p.stdout.close()
            p.stderr.close()
        self.addCleanup(stop)
        got = b""

        def read_until(text, timeout):
            nonlocal got
            deadline = time.time() + timeout
            while text not in got and time.time() < deadline:
                r, _, _ = select.select([p.stdout], [], [], 0.5)
                if r:
                    chunk = os.read(p.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    got += chunk
            return text in got
        self.assertTrue(read_until(b"before", 30), got)
        cli(2, "logs", "put-log-events", "--log-group-name", "/follow", "--log-stream-name", "s",
            "--log-events", self.events_arg(["after"], now_ms()))
        self.assertTrue(read_until(b"after", 30), got)
        self.assertEqual(got.count(b"before"), 1, got)


if __name__ == "__main__":
    unittest.main()
