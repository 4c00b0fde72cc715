"""Sender and receiver behaviours under faults, on the real binaries: files still being written,
rescans without inotify, retries with backoff and Retry-After that survive restarts, give-up and
quarantine (moved, or in place on a read-only input), ON_SUCCESS and ON_CONFLICT modes,
duplicates answered from the receiver's ledger, drain on SIGTERM, damaged state databases."""
import glob
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import unittest

from fake_receiver import FakeReceiver
from harness import BIN, Workdir, expected_xml, stop, wait_until, write_json


def mounted_tmpfs(path, size="4m"):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path], capture_output=True)
    return r.returncode == 0


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.mounts = []
        self.fakes = []

    def tearDown(self):
        for f in self.fakes:
            f.close()
        for p in self.w.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        self.w.cleanup()

    def outputs(self):
        return sorted(os.path.basename(p) for p in glob.glob(self.w.path("output", "*.xml")))

    def sdb(self):
        return sqlite3.connect(self.w.path("sstate", "sender.db"))

    def fake(self, **kw):
        f = FakeReceiver(**kw)
        self.fakes.append(f)
        return f

    # --- discovery -------------------------------------------------------------------------

    def test_a_file_still_being_written_is_not_taken_early(self):
        self.w.start_receiver()
        self.w.start_sender(MIN_FILE_AGE="1", SCAN_INTERVAL="0.2")
        doc = {"rows": [{"i": i, "s": "x" * 50} for i in range(40)]}
        data = json.dumps(doc).encode()
        path = self.w.path("input", "slow.json")
        chunks = [data[i:i + len(data) // 8 + 1] for i in range(0, len(data), len(data) // 8 + 1)]
        with open(path, "wb") as fh:
            for chunk in chunks:  # an appender that pauses 0.3 s between writes, never 1 s
                fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
                time.sleep(0.3)
                self.assertEqual(self.outputs(), [], "picked up while still being written")
        wait_until(lambda: self.outputs() == ["slow.xml"], what="delivery once the writer stopped")
        with open(self.w.path("output", "slow.xml"), "rb") as fh:
            self.assertEqual(fh.read(), expected_xml(doc))
        self.assertNotIn("invalid JSON", self.w.read("sender.log"))

    def test_rescans_alone_deliver_everything(self):
        self.w.start_receiver()
        self.w.start_sender(INOTIFY="off", SCAN_INTERVAL="0.3", MIN_FILE_AGE="0")
        for i in range(20):
            write_json(self.w.path("input", "r%02d.json" % i), {"i": i})
        wait_until(lambda: len(self.outputs()) == 20, what="20 files through rescans only")
        self.assertIn("inotify=off", self.w.read("sender.log"))

    def test_inotify_picks_a_file_up_long_before_the_next_rescan(self):
        self.w.start_receiver()
        self.w.start_sender(SCAN_INTERVAL="600", MIN_FILE_AGE="0")
        wait_until(lambda: "watching" in self.w.read("sender.log"), what="sender started")
        tmp = self.w.path("input", ".incoming.tmp")
        write_json(tmp, {"moved": True})
        os.rename(tmp, self.w.path("input", "moved.json"))        # IN_MOVED_TO
        write_json(self.w.path("input", "closed.json"), {"x": 1})   # IN_CLOSE_WRITE
        wait_until(lambda: self.outputs() == ["closed.xml", "moved.xml"], timeout=15,
                   what="inotify pickup with a 600 s scan interval")
        self.assertIn("inotify=on", self.w.read("sender.log"))

    def test_partial_and_ignored_names_are_left_alone(self):
        for name in ("a.json.part", "b.json.tmp", ".c.json", "d.json.swp", "e.json.partial", "draft-f.json"):
            with open(self.w.path("input", name), "w") as fh:
                fh.write("{}")
        write_json(self.w.path("input", "g.json"), {})
        self.w.start_receiver()
        r = self.w.run_sender_once(IGNORE_GLOBS="draft-*, other*")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.outputs(), ["g.xml"])

    # --- retries and give-up ---------------------------------------------------------------

    def test_retry_after_is_honoured_and_backoff_survives_a_restart(self):
        fake = self.fake(script=[503] * 100, retry_after=4)
        write_json(self.w.path("input", "a.json"), {"a": 1})
        r = self.w.run_sender_once(port=fake.port, RETRY_MAX_DELAY="10", MIN_FILE_AGE="0")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(len(fake.requests), 1)
        self.assertRegex(r.stderr.decode(), r"failed file=a.json destination=default error=\"receiver answered 503: scripted\" attempt=1 retry_in_s=4\.00")
        attempts, nxt, first = self.sdb().execute("select attempts, next_attempt_at, first_failure_at from files").fetchone()
        self.assertEqual(attempts, 1)
        self.assertGreater(nxt, time.time() + 2)
        # Restarted inside the backoff: no new request.
        r = self.w.run_sender_once(port=fake.port, RETRY_MAX_DELAY="10", MIN_FILE_AGE="0")
        self.assertEqual(len(fake.requests), 1, r.stderr.decode())
        self.assertEqual(r.returncode, 1)  # still not delivered
        # The headers that let a receiver recognise a retry were sent.
        headers = {k.lower(): v for k, v in fake.requests[0][1].items()}
        self.assertRegex(headers["idempotency-key"], "^[0-9a-f]{64}$")
        self.assertRegex(headers["x-transfer-plaintext-sha256"], "^[0-9a-f]{64}$")

    def test_gives_up_after_max_attempts_and_quarantines_with_a_reason(self):
        fake = self.fake(script=[500] * 100)
        write_json(self.w.path("input", "a.json"), {"a": 1})
        self.w.start_sender(port=fake.port, MAX_ATTEMPTS="3", RETRY_BASE_DELAY="0.05", MIN_FILE_AGE="0")
        q = self.w.path("input", ".quarantine", "a.json")
        wait_until(lambda: os.path.exists(q), what="quarantine after 3 attempts")
        self.assertEqual(len(fake.requests), 3)
        reason = open(q + ".reason").read()
        self.assertIn("gave up after 3 attempts", reason)
        self.assertIn("receiver answered 500", reason)
        self.assertIn("attempts: 3", reason)
        self.assertRegex(reason, r"time: \d{4}-\d\d-\d\dT")
        self.assertFalse(os.path.exists(self.w.path("input", "a.json")))
        # Moved back by an operator: tried again from scratch.
        fake.script = []
        os.rename(q, self.w.path("input", "a.json"))
        wait_until(lambda: len(fake.requests) == 4, what="retry of a file put back")
        wait_until(lambda: self.sdb().execute("select state from files").fetchone()[0] == "delivered",
                   what="delivered after being put back")

    def test_a_permanent_refusal_quarantines_at_once(self):
        self.w.start_receiver(env={"ON_CONFLICT": "reject"})
        write_json(self.w.path("input", "a.json"), {"v": 1})
        self.assertEqual(self.w.run_sender_once().returncode, 0)
        write_json(self.w.path("input", "a.json"), {"v": 2})
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 1)
        reason = open(self.w.path("input", ".quarantine", "a.json.reason")).read()
        self.assertIn("receiver answered 409", reason)
        self.assertIn("receiver_status: 409", reason)
        self.assertIn(b'<v type="int">1</v>', open(self.w.path("output", "a.xml"), "rb").read())

    def test_quarantine_in_place_on_a_read_only_input(self):
        inp = self.w.path("input")
        if not mounted_tmpfs(inp):
            self.skipTest("cannot mount a tmpfs here (needs root): read-only input not tested")
        self.mounts.append(inp)
        with open(os.path.join(inp, "bad.json"), "w") as fh:
            fh.write("{oops")
        write_json(os.path.join(inp, "good.json"), {"ok": True})
        subprocess.run(["mount", "-o", "remount,ro", inp], check=True)
        self.w.start_receiver()
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("it stays in place and is not retried until its content changes", r.stderr.decode())
        self.assertEqual(self.outputs(), ["good.xml"])
        state, qpath = self.sdb().execute("select state, quarantine_path from files where name='bad.json'").fetchone()
        self.assertEqual((state, qpath), ("quarantined", None))
        r = self.w.run_sender_once()  # not retried, nothing else to do
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertNotIn("bad.json", r.stderr.decode())
        subprocess.run(["mount", "-o", "remount,rw", inp], check=True)
        write_json(os.path.join(inp, "bad.json"), {"fixed": True})  # new content: tried again
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.outputs(), ["bad.xml", "good.xml"])

    # --- after delivery, conflicts, duplicates ----------------------------------------------

    def test_on_success_delete_and_move(self):
        self.w.start_receiver()
        write_json(self.w.path("input", "a.json"), {"a": 1})
        self.assertEqual(self.w.run_sender_once(ON_SUCCESS="delete").returncode, 0)
        self.assertEqual(os.listdir(self.w.path("input")), [])
        done = self.w.path("done")
        write_json(self.w.path("input", "b.json"), {"b": 1})
        self.assertEqual(self.w.run_sender_once(ON_SUCCESS="move:" + done).returncode, 0)
        self.assertEqual(os.listdir(self.w.path("input")), [])
        self.assertEqual(os.listdir(done), ["b.json"])
        write_json(self.w.path("input", "b.json"), {"b": 2})  # same name again: kept apart
        self.assertEqual(self.w.run_sender_once(ON_SUCCESS="move:" + done).returncode, 0)
        self.assertEqual(sorted(os.listdir(done)), ["b.json", "b.json.1"])
        self.assertEqual(self.outputs(), ["a.xml", "b.xml"])
        bad = subprocess.run([os.path.join(BIN, "sender"), "--once"], env=self.w.sender_env(ON_SUCCESS="archive"),
                             capture_output=True, timeout=10)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("ON_SUCCESS must be keep, delete or move:<dir>", bad.stderr.decode())

    def test_on_conflict_version_keeps_every_version(self):
        self.w.start_receiver(env={"ON_CONFLICT": "version"})
        for v in (1, 2, 3):
            write_json(self.w.path("input", "a.json"), {"v": v})
            self.assertEqual(self.w.run_sender_once().returncode, 0)
        self.assertEqual(self.outputs(), ["a.1.xml", "a.2.xml", "a.xml"])
        for name, v in (("a.xml", 1), ("a.1.xml", 2), ("a.2.xml", 3)):
            self.assertEqual(open(self.w.path("output", name), "rb").read(), expected_xml({"v": v}))

    def test_a_resend_is_answered_from_the_ledger_without_rewriting(self):
        self.w.start_receiver()
        for i in range(3):
            write_json(self.w.path("input", "d%d.json" % i), {"i": i})
        self.assertEqual(self.w.run_sender_once().returncode, 0)
        mtimes = {n: os.stat(self.w.path("output", n)).st_mtime_ns for n in self.outputs()}
        # The sender forgets everything (its state lost): it sends again, the receiver recognises.
        for f in glob.glob(self.w.path("sstate", "sender.db*")):
            os.unlink(f)
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stderr.decode().count("duplicate=true"), 3, r.stderr.decode())
        self.assertEqual({n: os.stat(self.w.path("output", n)).st_mtime_ns for n in self.outputs()}, mtimes)
        db = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        self.assertEqual(db.execute("select sum(duplicates), count(*) from deliveries").fetchone(), (3, 3))
        self.assertEqual(db.execute("select count(*) from uploads where duplicate=1").fetchone()[0], 3)

    # --- shutdown and state ------------------------------------------------------------------

    def test_sender_sigterm_abandons_a_stalled_upload_within_the_drain_timeout(self):
        fake = self.fake(stall=True)
        write_json(self.w.path("input", "a.json"), {"a": "x" * 100000})
        sender = self.w.start_sender(port=fake.port, DRAIN_TIMEOUT="1", MIN_FILE_AGE="0", IO_TIMEOUT="60")
        wait_until(lambda: len(fake.requests) == 1, what="upload in flight")
        t0 = time.monotonic()
        self.assertEqual(stop(sender, timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("drain timeout", self.w.read("sender.log"))
        self.assertEqual(self.sdb().execute("select state from files").fetchone()[0], "pending")
        self.assertEqual(os.listdir(self.w.path("sstate", "spool")), [])

    def start_slow_upload(self, name, plaintext, sent):
        """Opens an upload and sends its first `sent` bytes; returns (socket, body). Waits until
        the receiver is writing the plaintext (its temporary file exists)."""
        from cryptography.fernet import Fernet
        with open(self.w.key, "rb") as fh:
            token = Fernet(fh.read().strip()).encrypt(plaintext)
        body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n" + token +
                b"\r\n--B--\r\n")
        s = socket.create_connection(("127.0.0.1", self.w.port), timeout=20)
        s.sendall(b"POST /upload/%s HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
                  b"Content-Length: %d\r\n\r\n" % (name.encode(), len(body)) + body[:sent])
        wait_until(lambda: any(n.startswith(".upload-") for n in os.listdir(self.w.path("output"))),
                   what="the receiver writing the upload")
        return s, body

    def test_receiver_sigterm_finishes_an_upload_in_flight(self):
        rec = self.w.start_receiver(env={"DRAIN_TIMEOUT": "10"})
        plaintext = b"<all>" + b"d" * 200000 + b"</all>"
        s, body = self.start_slow_upload("drained", plaintext, 50000)
        rec.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping" in self.w.read("receiver.log"), what="stop logged")
        s.sendall(body[50000:])
        answer = s.recv(4096)
        s.close()
        self.assertIn(b"201", answer.split(b"\r\n")[0])
        self.assertEqual(rec.wait(timeout=15), 0)
        with open(self.w.path("output", "drained.xml"), "rb") as fh:
            self.assertEqual(fh.read(), plaintext)

    def test_receiver_sigterm_gives_up_on_a_stalled_upload_after_the_drain_timeout(self):
        rec = self.w.start_receiver(env={"DRAIN_TIMEOUT": "1", "READ_TIMEOUT": "60"})
        s, _ = self.start_slow_upload("stalled", b"x" * 200000, 50000)
        t0 = time.monotonic()
        rec.send_signal(signal.SIGTERM)
        self.assertEqual(rec.wait(timeout=15), 0)
        self.assertLess(time.monotonic() - t0, 6)
        s.close()
        self.assertIn("drain timeout", self.w.read("receiver.log"))
        # Nothing under a final name; a restart removes the temporary file.
        self.assertEqual(self.outputs(), [])
        self.w.start_receiver()
        self.assertEqual(os.listdir(self.w.path("output")), [])
        self.assertIn("removed leftover temporary file", self.w.read("receiver.log"))

    def test_a_damaged_state_database_is_moved_aside_and_reported(self):
        self.assertEqual(stop(self.w.start_receiver()), 0)  # creates receiver.db
        write_json(self.w.path("input", "a.json"), {"a": 1})
        for db in ("sstate/sender.db", "rstate/receiver.db"):
            with open(self.w.path(db), "wb") as fh:
                fh.write(b"garbage, not a database" * 100)
        self.w.start_receiver()
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertRegex(r.stderr.decode(), r"state database .*sender.db is damaged.*moved it aside to .*sender.db.corrupt-")
        self.assertRegex(self.w.read("receiver.log"), r"receiver.db is damaged.*moved it aside")
        self.assertEqual(len(glob.glob(self.w.path("sstate", "sender.db.corrupt-*"))), 1)
        self.assertEqual(len(glob.glob(self.w.path("rstate", "receiver.db.corrupt-*"))), 1)
        self.assertEqual(self.outputs(), ["a.xml"])


if __name__ == "__main__":
    unittest.main()
