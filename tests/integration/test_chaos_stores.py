"""Chaos with the S3 and SFTP destinations of issue 21: one sender delivering CHAOS_FILES (300)
files to an S3 bucket (radosgw, payload "xml", multipart from 5 MiB so that the few large files go
in parts) and to an SFTP directory (sshd, payload "fernet" with a key of its own) is SIGKILLed at
random moments and restarted, for a bounded number of rounds (CHAOS_ROUNDS, default 8; CHAOS_SEED
picks the moments and is printed). Files are written in a batch per round, each batch with a large
one, so that the kills land while files are converted, mid-multipart upload and mid-SFTP write
(the rounds take turns: a kill after a random delay, or at a random moment once a multipart upload
or an SFTP temporary file has appeared; the kills that interrupted each are printed).
The last sender started then runs until its state says every file is delivered to both.

At the end each input is at both exactly once by name: the bucket's keys and the directory's
names are exactly the expected ones (a file sent again after a kill between the remote rename and
the state write replaces itself: on_conflict overwrite, the same XML); each is byte-identical to
the expected XML (dicttoxml's output; the SFTP token decrypted with that destination's key); no
temporary name is left on the SFTP server, no incomplete multipart upload in the bucket; the
sender's spool is empty and its database passes PRAGMA integrity_check.

The servers are those the test command started for the run (servers.py), each test with a bucket
and a directory of its own."""
import os
import random
import re
import shutil
import time
import unittest

from harness import expected_xml, integrity_ok, outbox_states, stop, wait_until, write_json
from servers import S3Server, SftpServer, temporaries
from test_destinations import DestinationsBase, decrypt

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "8"))
FILES = int(os.environ.get("CHAOS_FILES", "300"))
SEED = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
# One large file in each of the ROUNDS + 1 batches: ~9.5 MB of XML (two 5 MiB parts at S3, ~12.7 MB
# of Fernet token at SFTP); the oracle, dicttoxml, takes ~2 s for each on the 2-core CI machine.
BIG_ROWS = int(os.environ.get("CHAOS_BIG_ROWS", "40000"))
# A bound on the time the rounds may take besides their number.
CHAOS_SECONDS = float(os.environ.get("CHAOS_STORES_SECONDS", "30"))
MIB = 1 << 20
PART = 5 * MIB  # S3's smallest part

SENDER_ENV = dict(MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.05", RETRY_MAX_DELAY="0.5", SCAN_INTERVAL="0.5")
S3_NAME, SFTP_NAME = "s3", "sftp"
# The rounds take turns: a kill after a random delay, or at a random moment of a multipart upload
# or of an SFTP write (once an upload id, or a temporary name, has appeared).
MOMENTS = ("any", "multipart", "sftp temporary")


def write_batch(rng, numbers, input_dir):
    """The JSON files f<number>.json in input_dir, the first of the batch large; returns
    {name: document}."""
    docs = {}
    for k, i in enumerate(numbers):
        if k == 0:
            doc = {"id": i, "payload": ["row %d %s" % (j, "x" * 200) for j in range(BIG_ROWS)]}
        else:
            doc = {"id": i, "payload": ["row %d %s" % (j, "x" * 40) for j in range(rng.randint(1, 30))],
                   "nested": {"k%d" % j: rng.random() for j in range(rng.randint(0, 5))}, "name": "doc %d é <&>" % i}
        docs["f%04d" % i] = doc
        write_json(os.path.join(input_dir, "f%04d.json" % i), doc)
    return docs


class ChaosStoresTest(DestinationsBase):
    """DestinationsBase also starts our receiver: no destination names it here."""

    def setUp(self):
        super().setUp()
        self.s3, self.sftp = S3Server(), SftpServer()
        self.bucket = self.s3.make_bucket("chaos", self)
        self.sftp_dir = self.sftp.make_dir("chaos")
        if not os.environ.get("TRANSFER_KEEP_WORKDIR"):  # kept beside the workdir for a post-mortem
            self.addCleanup(shutil.rmtree, self.sftp_dir, True)

    def in_flight(self):
        """{incomplete multipart uploads in the bucket} | {temporary names in the SFTP directory}."""
        return ({("multipart", upload_id) for _, upload_id in self.s3.incomplete_uploads(self.bucket)} |
                {("sftp temporary", n) for n in os.listdir(self.sftp_dir) if n.startswith(".")})

    def test_sigkill_at_random_moments_each_file_at_s3_and_sftp_exactly_once(self):
        rng = random.Random(SEED)
        print("\nchaos stores seed=%d rounds=%d files=%d" % (SEED, ROUNDS, FILES))
        t0 = time.monotonic()
        self.write_destinations([
            self.s3.destination(S3_NAME, self.bucket, self.w.root, payload="xml",
                                multipart_threshold=PART, part_size=PART),
            self.sftp.destination(SFTP_NAME, self.sftp_dir, key_file=self.key_for(SFTP_NAME)),
        ])
        env = self.sender_env(**SENDER_ENV)
        input_dir = self.w.path("input")
        batches = [range(FILES * k // (ROUNDS + 1), FILES * (k + 1) // (ROUNDS + 1)) for k in range(ROUNDS + 1)]
        docs = write_batch(rng, batches.pop(0), input_dir)
        log_at_last_start = 0  # where the last sender's lines begin in sender.log
        sender = self.w.start_sender(**env)
        kills, seen, left = 0, set(), {"multipart": 0, "sftp temporary": 0}
        chaos_until = time.monotonic() + CHAOS_SECONDS
        for _ in range(ROUNDS):
            if time.monotonic() > chaos_until:
                break
            docs.update(write_batch(rng, batches.pop(0), input_dir))
            # The fault's timing is the random part of the test. (A start takes ~0.6 s to its first
            # SFTP upload: the SSH handshake.)
            moment, t_round = MOMENTS[kills % len(MOMENTS)], time.monotonic()
            if moment == "any":
                time.sleep(rng.uniform(0.1, 1.5))
            else:  # a random moment of an upload of that kind (a large file's takes ~0.3 s at each)
                try:
                    wait_until(lambda: any(k == moment for k, _ in self.in_flight() - seen), timeout=5,
                               what="a new " + moment)
                except AssertionError:
                    pass  # that store has no large file left to send this round: kill anyway
                time.sleep(rng.uniform(0, 0.1))
            sender.kill()
            sender.wait()
            kills += 1
            interrupted = self.in_flight() - seen  # what this kill interrupted, for the record
            seen |= interrupted
            print("round %d: kill (%s) after %.2f s interrupted %s" % (
                kills, moment, time.monotonic() - t_round, sorted(k for k, _ in interrupted) or "no upload"))
            for kind in left:
                left[kind] += any(k == kind for k, _ in interrupted)
            log_at_last_start = len(self.w.read("sender.log"))
            sender = self.w.start_sender(**env)
        db = self.w.path("sstate", "sender.db")
        print("kills: %d after %.1f s, of which interrupted: %s; then: %s" % (
            kills, time.monotonic() - t0, left, sorted(outbox_states(db).items())))
        for batch in batches:  # the rounds' time ran out first
            docs.update(write_batch(rng, batch, input_dir))
        self.assertEqual(len(docs), FILES)

        want = {(S3_NAME, "delivered"): FILES, (SFTP_NAME, "delivered"): FILES}
        wait_until(lambda: outbox_states(db) == want, timeout=300,
                   what="every file delivered to S3 and SFTP after the chaos")
        print("delivered to both after %.1f s" % (time.monotonic() - t0))
        # The last sender started: let it install its signal handling before SIGTERM.
        wait_until(lambda: "watching input_dir=" in self.w.read("sender.log")[log_at_last_start:], what="sender up")
        self.assertEqual(stop(sender), 0)
        log = self.w.read("sender.log")
        for dest in (S3_NAME, SFTP_NAME):
            sent = re.findall(r"delivered file=(\S+) destination=%s " % dest, log)
            print("%s: %d uploads, %d files sent again after a kill" % (dest, len(sent), len(sent) - len(set(sent))))

        want_xml = {name: expected_xml(doc) for name, doc in docs.items()}
        # Each property on its own: a failing run names every one it breaks.
        with self.subTest("S3: each name exactly once, nothing else"):
            self.assertEqual(sorted(self.s3.keys(self.bucket)), sorted(n + ".xml" for n in want_xml))
        with self.subTest("S3: byte-identical"):
            for name, xml in sorted(want_xml.items()):
                self.assertEqual(self.s3.get(self.bucket, name + ".xml"), xml, name)
        with self.subTest("S3: the large files went in parts"):
            for name, xml in sorted(want_xml.items()):
                if len(xml) > PART:
                    etag = self.s3.head(self.bucket, name + ".xml")["etag"]
                    self.assertRegex(etag, r'^"[0-9a-f]{32}-%d"$' % -(-len(xml) // PART), name)
        with self.subTest("S3: no incomplete multipart upload"):
            self.assertEqual(self.s3.incomplete_uploads(self.bucket), [])
        listing = os.listdir(self.sftp_dir)
        with self.subTest("SFTP: each name exactly once, nothing else"):
            self.assertEqual(sorted(n for n in listing if not n.startswith(".")),
                             sorted(n + ".xml.fernet" for n in want_xml))
        with self.subTest("SFTP: byte-identical once decrypted"):
            for name, xml in sorted(want_xml.items()):
                path = os.path.join(self.sftp_dir, name + ".xml.fernet")
                if not os.path.exists(path):
                    self.fail("missing at SFTP: " + name)
                with open(path, "rb") as fh:
                    self.assertEqual(decrypt(self.keys[SFTP_NAME], fh.read()), xml, name)
        with self.subTest("SFTP: no temporary name left"):
            self.assertEqual(temporaries(self.sftp_dir), [])
            self.assertEqual(sorted(n for n in listing if n.startswith(".")), [])
        with self.subTest("sender: spool empty, database intact"):
            self.assertEqual(os.listdir(self.w.path("sstate", "spool")), [])
            self.assertTrue(integrity_ok(db))
            self.assertEqual(outbox_states(db), want)  # one row per file and destination, no other
        print("chaos stores took %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    unittest.main()
