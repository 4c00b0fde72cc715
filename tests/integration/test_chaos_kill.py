"""Chaos: sender and receiver on loopback with a few hundred files, each killed with SIGKILL at
random moments and restarted, for a bounded number of rounds (CHAOS_ROUNDS, default 8; CHAOS_SEED
picks the moments). At the end every input is delivered exactly once (ON_CONFLICT=version makes
a second write visible as <name>.1.xml), every output is byte-identical to the expected XML, no
temporary or partial file remains and both databases pass PRAGMA integrity_check.

The fan-out case (issue 14) does the same with one sender and two receivers with different keys
named in a DESTINATIONS_FILE: each round SIGKILLs the sender, one of the receivers chosen at
random, or both, and every file must end at each receiver exactly once."""
import glob
import os
import random
import sqlite3
import time
import unittest

from harness import Workdir, count_delivered, expected_xml, integrity_ok, outbox_states, stop, wait_until, write_json

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "8"))
FILES = int(os.environ.get("CHAOS_FILES", "300"))
SEED = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
# The fan-out case: its own file count, written in a batch per round so that the work outlasts the
# rounds (the sender takes ~200 small files a second to both receivers on the 2-core CI machine),
# with as few large files as the single-destination case (the oracle, dicttoxml, takes ~5 s for
# each), and a bound on the time its rounds may take besides their number.
FANOUT_FILES = int(os.environ.get("CHAOS_FANOUT_FILES", "600"))
FANOUT_BIG_EVERY = 100
FANOUT_CHAOS_SECONDS = float(os.environ.get("CHAOS_FANOUT_SECONDS", "10"))

SENDER_ENV = dict(MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.05", RETRY_MAX_DELAY="0.5", SCAN_INTERVAL="0.5")
RECEIVER_ENV = {"ON_CONFLICT": "version"}


def write_inputs(rng, numbers, input_dir, big_every=50):
    """The JSON files f<number>.json (f0000.json...) in input_dir; returns {name: document}."""
    docs = {}
    for i in numbers:
        big = i % big_every == 0  # a few large files so kills also land mid-upload and mid-conversion
        doc = {"id": i, "payload": ["row %d %s" % (j, "x" * 40) for j in range(20000 if big else rng.randint(1, 30))],
               "nested": {"k%d" % j: rng.random() for j in range(rng.randint(0, 5))}}
        docs["f%04d" % i] = doc
        write_json(os.path.join(input_dir, "f%04d.json" % i), doc)
    return docs


def assert_received_exactly_once(test, want, receiver_dir, label=""):
    """The receiver of Workdir receiver_dir holds each document once as its expected XML (want:
    {name: XML bytes}) and nothing else (no <name>.1.xml second write, no temporary or partial
    file); its ledger agrees."""
    out = receiver_dir.path("output")
    test.assertEqual(sorted(os.listdir(out)), sorted(n + ".xml" for n in want),
                     "%s missing, extra (second write) or temporary files" % label)
    for name, xml in want.items():
        with open(os.path.join(out, name + ".xml"), "rb") as fh:
            test.assertEqual(fh.read(), xml, label + " " + name)
    db = receiver_dir.path("rstate", "receiver.db")
    test.assertTrue(integrity_ok(db), label)
    con = sqlite3.connect(db)
    try:
        test.assertEqual(con.execute("select count(*) from deliveries").fetchone()[0], len(want), label)
        print("%sretries answered as duplicates: %d" % (
            label + ": " if label else "", con.execute("select count(*) from uploads where duplicate=1").fetchone()[0]))
        test.assertEqual(con.execute("select count(*) from (select name from deliveries group by name "
                                     "having count(*) > 1)").fetchone()[0], 0, label)
    finally:
        con.close()


class ChaosKillTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()

    def tearDown(self):
        self.w.cleanup()

    def test_sigkill_at_random_moments_loses_and_duplicates_nothing(self):
        rng = random.Random(SEED)
        print("chaos seed=%d rounds=%d files=%d" % (SEED, ROUNDS, FILES))
        docs = write_inputs(rng, range(FILES), self.w.path("input"))
        receiver = self.w.start_receiver(env=RECEIVER_ENV)
        port = self.w.port
        log_at_last_start = 0  # where the last sender's lines begin in sender.log
        sender = self.w.start_sender(port=port, **SENDER_ENV)
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
                receiver = self.w.start_receiver(env=RECEIVER_ENV, port=port)
            if victim in ("sender", "both"):
                log_at_last_start = len(self.w.read("sender.log"))
                sender = self.w.start_sender(port=port, **SENDER_ENV)
        print("kills: %s" % kills)

        wait_until(lambda: count_delivered(self.w.path("sstate", "sender.db")) == FILES, timeout=300, what="every file delivered after the chaos")
        # The last sender started: let it install its signal handling before SIGTERM. (Counting
        # every start's line would wait forever for a sender killed before it logged one: a kill
        # can come 50 ms after a start, sooner than a sanitizer build under load gets that far.)
        wait_until(lambda: "watching input_dir=" in self.w.read("sender.log")[log_at_last_start:], what="sender up")
        self.assertEqual(stop(sender), 0)
        self.assertEqual(stop(receiver), 0)

        assert_received_exactly_once(self, {name: expected_xml(doc) for name, doc in docs.items()}, self.w)
        self.assertEqual(os.listdir(self.w.path("sstate", "spool")), [])
        self.assertTrue(integrity_ok(self.w.path("sstate", "sender.db")))
        self.assertEqual(len(glob.glob(self.w.path("input", "*.json"))), FILES)  # ON_SUCCESS=keep


class ChaosKillFanOutTest(unittest.TestCase):
    """Fan-out (issue 14) under SIGKILL: one sender, two receivers "a" and "b" with keys of their
    own (a file encrypted for the wrong destination would be refused and never delivered), each
    restarted on its port after a kill. The other receiver and the sender's other destination
    keep going while one is down."""

    def setUp(self):
        self.w = Workdir()  # the sender's input and state
        self.receivers = {"a": Workdir(), "b": Workdir()}  # each receiver's output, state, key, log

    def tearDown(self):
        for d in (self.w, *self.receivers.values()):
            d.cleanup()

    def test_fan_out_sigkill_of_sender_and_one_receiver_loses_and_duplicates_nothing(self):
        rng = random.Random(SEED)
        print("chaos fan-out seed=%d rounds=%d files=%d" % (SEED, ROUNDS, FANOUT_FILES))
        t0 = time.monotonic()
        # A batch before the start and one more each round, so that every kill lands while files
        # are being found, converted and uploaded.
        batches = [range(FANOUT_FILES * k // (ROUNDS + 1), FANOUT_FILES * (k + 1) // (ROUNDS + 1))
                   for k in range(ROUNDS + 1)]
        docs = write_inputs(rng, batches.pop(0), self.w.path("input"), FANOUT_BIG_EVERY)
        procs, ports = {}, {}
        for name, d in self.receivers.items():
            procs[name] = d.start_receiver(env=RECEIVER_ENV)
            ports[name] = d.port
        destinations = self.w.path("destinations.json")
        write_json(destinations, {"destinations": [
            {"name": name, "url": "http://127.0.0.1:%d/upload" % ports[name], "key_file": d.key}
            for name, d in sorted(self.receivers.items())]})
        # The flat options stay in the environment with the sender's own key, which neither
        # receiver holds: with DESTINATIONS_FILE they must not be used.
        sender_env = dict(SENDER_ENV, DESTINATIONS_FILE=destinations)
        log_at_last_start = 0  # where the last sender's lines begin in sender.log
        sender = self.w.start_sender(port=ports["a"], **sender_env)
        kills = {"sender": 0, "a": 0, "b": 0}
        chaos_until = time.monotonic() + FANOUT_CHAOS_SECONDS
        for _ in range(ROUNDS):
            if time.monotonic() > chaos_until:
                break
            docs.update(write_inputs(rng, batches.pop(0), self.w.path("input"), FANOUT_BIG_EVERY))
            time.sleep(rng.uniform(0.05, 0.6))  # the fault's timing is the random part of the test
            victim = rng.choice(["sender", "receiver", "both"])
            target = rng.choice(sorted(self.receivers))  # the one receiver of this round
            if victim in ("sender", "both"):
                sender.kill()
                sender.wait()
                kills["sender"] += 1
            if victim == "both":
                time.sleep(rng.uniform(0, 0.2))  # the two kills at moments of their own
            if victim in ("receiver", "both"):
                procs[target].kill()
                procs[target].wait()
                kills[target] += 1
                procs[target] = self.receivers[target].start_receiver(env=RECEIVER_ENV, port=ports[target])
            if victim in ("sender", "both"):
                log_at_last_start = len(self.w.read("sender.log"))
                sender = self.w.start_sender(port=ports["a"], **sender_env)
        db = self.w.path("sstate", "sender.db")
        print("kills: %s after %.1f s; then: %s" % (kills, time.monotonic() - t0, sorted(outbox_states(db).items())))
        for batch in batches:  # the rounds' time ran out first
            docs.update(write_inputs(rng, batch, self.w.path("input"), FANOUT_BIG_EVERY))
        want = {(name, "delivered"): FANOUT_FILES for name in self.receivers}
        wait_until(lambda: outbox_states(db) == want, timeout=300,
                   what="every file delivered to both destinations after the chaos")
        print("delivered to both after %.1f s" % (time.monotonic() - t0))
        wait_until(lambda: "watching input_dir=" in self.w.read("sender.log")[log_at_last_start:], what="sender up")
        self.assertEqual(stop(sender), 0)
        for name, p in procs.items():
            self.assertEqual(stop(p), 0, name)

        self.assertEqual(len(docs), FANOUT_FILES)
        want_xml = {name: expected_xml(doc) for name, doc in docs.items()}
        for name, d in sorted(self.receivers.items()):
            assert_received_exactly_once(self, want_xml, d, "receiver " + name)
        self.assertEqual(outbox_states(db), want)  # one row per file and destination, no other
        self.assertEqual(os.listdir(self.w.path("sstate", "spool")), [])
        self.assertTrue(integrity_ok(db))
        self.assertEqual(len(glob.glob(self.w.path("input", "*.json"))), FANOUT_FILES)  # ON_SUCCESS=keep
        print("fan-out chaos took %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    unittest.main()
