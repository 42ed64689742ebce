"""kill -9 of pierd during a burst of concurrent RegisterTaskDefinition calls:
after a restart every acknowledged revision is there, and revisions have no
gaps or duplicates."""
import threading
import time
import unittest

from pier_harness import Pierd


class KillNine(unittest.TestCase):
    def test_acknowledged_revisions_survive(self):
        first = Pierd().start()
        home = first.home
        self.addCleanup(first.cleanup)
        acknowledged = set()
        pierd = first
        for round_no in range(3):
            stop = threading.Event()
            lock = threading.Lock()

            def burst(ecs):
                while not stop.is_set():
                    try:
                        td = ecs.register_task_definition(
                            family="burst", containerDefinitions=[{"name": "a", "image": "busybox"}])
                    except Exception:
                        return  # pierd is gone
                    with lock:
                        acknowledged.add(td["taskDefinition"]["revision"])

            # Clients made here: boto3's default session is not safe to make them from threads.
            threads = [threading.Thread(target=burst, args=(pierd.client("ecs"),)) for _ in range(8)]
            for t in threads:
                t.start()
            time.sleep(1.0 + 0.3 * round_no)
            pierd.kill9()
            stop.set()
            for t in threads:
                t.join(30)
            pierd = Pierd(home=home).start()
            first.proc = pierd.proc  # so cleanup stops the newest one
            first.log = pierd.log

            ecs = pierd.client("ecs")
            revs, token = [], None
            while True:
                kw = {"familyPrefix": "burst", "maxResults": 100}
                if token:
                    kw["nextToken"] = token
                page = ecs.list_task_definitions(**kw)
                revs += [int(a.rsplit(":", 1)[1]) for a in page["taskDefinitionArns"]]
                token = page.get("nextToken")
                if not token:
                    break
            self.assertGreater(len(acknowledged), 0)
            self.assertEqual(len(revs), len(set(revs)), "duplicate revisions")
            self.assertEqual(sorted(revs), list(range(1, len(revs) + 1)), "gaps in revisions")
            missing = acknowledged - set(revs)
            self.assertEqual(missing, set(), "acknowledged revisions lost in round %d" % round_no)


if __name__ == "__main__":
    unittest.main()
