"""Chaos: sender and receiver on loopback with a few hundred files, each killed with SIGKILL at
random moments and restarted, for a bounded number of rounds (CHAOS_ROUNDS, default 8; CHAOS_SEED
picks the moments). At the end every input is delivered exactly once (ON_CONFLICT=version makes
a second write visible as <name>.1.xml), every output is byte-identical to the expected XML, no
temporary or partial file remains and both databases pass PRAGMA integrity_check."""
import glob
import os
import random
import sqlite3
import time
import unittest

from harness import Workdir, count_delivered, expected_xml, integrity_ok, stop, wait_until, write_json

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "8"))
FILES = int(os.environ.get("CHAOS_FILES", "300"))
SEED = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))


class ChaosKillTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()

    def tearDown(self):
        self.w.cleanup()

    def test_sigkill_at_random_moments_loses_and_duplicates_nothing(self):
        rng = random.Random(SEED)
        print("chaos seed=%d rounds=%d files=%d" % (SEED, ROUNDS, FILES))
        docs = {}
        for i in range(FILES):
            big = i % 50 == 0  # a few large files so kills also land mid-upload and mid-conversion
            doc = {"id": i, "payload": ["row %d %s" % (j, "x" * 40) for j in range(20000 if big else rng.randint(1, 30))],
                   "nested": {"k%d" % j: rng.random() for j in range(rng.randint(0, 5))}}
            docs["f%04d" % i] = doc
            write_json(self.w.path("input", "f%04d.json" % i), doc)
        env = {"ON_CONFLICT": "version"}
        sender_env = dict(MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.05", RETRY_MAX_DELAY="0.5", SCAN_INTERVAL="0.5")
        receiver = self.w.start_receiver(env=env)
        port = self.w.port
        log_at_last_start = 0  # where the last sender's lines begin in sender.log
        sender = self.w.start_sender(port=port, **sender_env)
        kills = {"sender": 0, "receiver": 0}
        for _ in range(ROUNDS):
            time.sleep(rng.uniform(0.05, 0.6))  # the fault's timing is the random part of the test
            victim = rng.choice(["sender", "receiver", "both"])
            if victim in ("sender", "both"):
                sender.kill()
                sender.wait()
                kills["sender"] += 1
            if victim in ("receiver", "both"):
                receiver.kill()
                receiver.wait()
                kills["receiver"] += 1
                receiver = self.w.start_receiver(env=env, port=port)
            if victim in ("sender", "both"):
                log_at_last_start = len(self.w.read("sender.log"))
                sender = self.w.start_sender(port=port, **sender_env)
        print("kills: %s" % kills)

        wait_until(lambda: count_delivered(self.w.path("sstate", "sender.db")) == FILES, timeout=300, what="every file delivered after the chaos")
        # The last sender started: let it install its signal handling before SIGTERM. (Counting
        # every start's line would wait forever for a sender killed before it logged one: a kill
        # can come 50 ms after a start, sooner than a sanitizer build under load gets that far.)
        wait_until(lambda: "watching input_dir=" in self.w.read("sender.log")[log_at_last_start:], what="sender up")
        self.assertEqual(stop(sender), 0)
        self.assertEqual(stop(receiver), 0)

        out = self.w.path("output")
        names = sorted(os.listdir(out))
        self.assertEqual(names, sorted(n + ".xml" for n in docs), "missing, extra (second write) or temporary files")
        for name, doc in docs.items():
            with open(os.path.join(out, name + ".xml"), "rb") as fh:
                self.assertEqual(fh.read(), expected_xml(doc), name)
        self.assertEqual(os.listdir(self.w.path("sstate", "spool")), [])
        self.assertTrue(integrity_ok(self.w.path("sstate", "sender.db")))
        self.assertTrue(integrity_ok(self.w.path("rstate", "receiver.db")))
        con = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        self.assertEqual(con.execute("select count(*) from deliveries").fetchone()[0], FILES)
        print("retries answered as duplicates: %d" % con.execute("select count(*) from uploads where duplicate=1").fetchone()[0])
        self.assertEqual(con.execute("select count(*) from (select name from deliveries group by name having count(*) > 1)").fetchone()[0], 0)
        con.close()
        self.assertEqual(len(glob.glob(self.w.path("input", "*.json"))), FILES)  # ON_SUCCESS=keep


if __name__ == "__main__":
    unittest.main()
