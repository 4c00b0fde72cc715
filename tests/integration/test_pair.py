"""The real sender and receiver over loopback: delivery, restarts, changes, bad input, outages."""
import glob
import json
import os
import random
import signal
import sqlite3
import subprocess
import unittest

from harness import BIN, Workdir, assert_corpus_outputs, copy_corpus, expected_xml, stop, wait_until, write_json


def random_doc(rng, i):
    return {"id": i, "name": "doc %d ünïcødé 東京" % i, "ok": rng.random() < 0.5,
            "score": rng.uniform(-1e6, 1e6), "tags": [rng.choice("abc") for _ in range(rng.randint(0, 4))],
            "nested": {"deep": [{"x": None}, [1, 2.5, "s<&>\""]]}, "1st key": rng.randint(-10**20, 10**20)}


class PairTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()

    def tearDown(self):
        self.w.cleanup()

    def outputs(self):
        return sorted(os.path.basename(p) for p in glob.glob(self.w.path("output", "*.xml")))

    def test_many_files_delivered_byte_identical_and_not_resent(self):
        rng = random.Random(7)
        docs = {"doc-%03d" % i: random_doc(rng, i) for i in range(150)}
        for name, doc in docs.items():
            write_json(self.w.path("input", name + ".json"), doc)
        self.w.start_receiver()
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(len(self.outputs()), 150)
        for name, doc in docs.items():
            with open(self.w.path("output", name + ".xml"), "rb") as fh:
                self.assertEqual(fh.read(), expected_xml(doc), name)
        # Only the JSON files are in the input directory: no intermediates.
        self.assertEqual(len(os.listdir(self.w.path("input"))), 150)
        # A restart of the sender resends nothing.
        before = os.stat(self.w.path("output", "doc-000.xml")).st_mtime_ns
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0)
        self.assertEqual(os.stat(self.w.path("output", "doc-000.xml")).st_mtime_ns, before)
        db = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        self.assertEqual(db.execute("select count(*) from uploads where outcome='accepted'").fetchone()[0], 150)
        sdb = sqlite3.connect(self.w.path("sstate", "sender.db"))
        self.assertEqual(sdb.execute("select count(*) from files where state='delivered'").fetchone()[0], 150)

    def test_golden_corpus_through_the_pair(self):
        names = copy_corpus(self.w.path("input"))
        self.w.start_receiver()
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        assert_corpus_outputs(self, names, self.w.path("output"))

    def test_changed_file_is_sent_again(self):
        write_json(self.w.path("input", "a.json"), {"v": 1})
        self.w.start_receiver()
        self.assertEqual(self.w.run_sender_once().returncode, 0)
        write_json(self.w.path("input", "a.json"), {"v": 2})
        self.assertEqual(self.w.run_sender_once().returncode, 0)
        self.assertIn(b'<v type="int">2</v>', open(self.w.path("output", "a.xml"), "rb").read())
        sdb = sqlite3.connect(self.w.path("sstate", "sender.db"))
        self.assertEqual(sdb.execute("select count(*) from files where name='a.json' and state='delivered'").fetchone()[0], 2)

    def test_dotted_names_do_not_collide(self):
        write_json(self.w.path("input", "a.json"), {"v": "plain"})
        write_json(self.w.path("input", "a.b.json"), {"v": "dotted"})
        self.w.start_receiver()
        self.assertEqual(self.w.run_sender_once().returncode, 0)
        self.assertEqual(self.outputs(), ["a.b.xml", "a.xml"])

    def test_invalid_json_quarantined_while_the_rest_flow(self):
        bad = {"trailing.json": b'{"a": 1} x', "nul.json": b'{"a": 1}\x00junk', "utf8.json": b'{"a": "\xff"}',
               "empty.json": b"", "truncated.json": b'{"a": [1, 2'}
        for name, data in bad.items():
            with open(self.w.path("input", name), "wb") as fh:
                fh.write(data)
        for i in range(5):
            write_json(self.w.path("input", "good%d.json" % i), {"i": i})
        self.w.start_receiver()
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.outputs(), ["good%d.xml" % i for i in range(5)])
        log = r.stderr.decode()
        qdir = self.w.path("input", ".quarantine")
        for name in bad:
            self.assertRegex(log, r"quarantined file=%s error=\"%s: invalid JSON at byte offset \d+" % (name, name))
            with open(os.path.join(qdir, name), "rb") as fh:
                self.assertEqual(fh.read(), bad[name])  # moved whole
            reason = open(os.path.join(qdir, name + ".reason")).read()
            self.assertIn("invalid JSON", reason)
            self.assertIn("attempts: 1", reason)
        sdb = sqlite3.connect(self.w.path("sstate", "sender.db"))
        rows = dict(sdb.execute("select name, state from files"))
        for name in bad:
            self.assertEqual(rows[name], "quarantined")
        self.assertEqual(sorted(os.listdir(self.w.path("input"))), [".quarantine"] + ["good%d.json" % i for i in range(5)])
        # Nothing left to do: the good ones are not resent, the bad ones are out of the way.
        self.assertEqual(self.w.run_sender_once().returncode, 0)

    def test_receiver_down_then_up_delivers(self):
        for i in range(3):
            write_json(self.w.path("input", "f%d.json" % i), {"i": i})
        self.w.start_receiver()
        port = self.w.port
        stop(self.w.procs[-1])
        sender = self.w.start_sender(port=port, SCAN_INTERVAL="0.2")
        wait_until(lambda: "failed file=f0.json" in self.w.read("sender.log"), what="a failed attempt")
        self.assertEqual(self.outputs(), [])
        self.w.start_receiver(port=port)
        wait_until(lambda: len(self.outputs()) == 3, what="delivery after the receiver came back")
        self.assertEqual(stop(sender), 0)
        sdb = sqlite3.connect(self.w.path("sstate", "sender.db"))
        self.assertEqual(sdb.execute("select count(*) from files where state='delivered'").fetchone()[0], 3)
        self.assertGreater(sdb.execute("select max(attempts) from files").fetchone()[0], 1)

    def test_daemon_picks_up_new_files_and_stops_cleanly(self):
        self.w.start_receiver()
        sender = self.w.start_sender()
        write_json(self.w.path("input", "late.json"), {"late": True})
        wait_until(lambda: self.outputs() == ["late.xml"], what="pickup of a new file")
        self.assertEqual(stop(sender), 0)
        self.assertEqual(stop(self.w.procs[0]), 0)

    def test_refuses_to_start_without_a_valid_key(self):
        for content in (None, "not a key\n", ""):
            key = self.w.path("badkey")
            if os.path.exists(key):
                os.unlink(key)
            if content is not None:
                with open(key, "w") as fh:
                    fh.write(content)
            for prog, var in (("receiver", "DECRYPTION_KEY"), ("sender", "ENCRYPTION_KEY")):
                env = dict(os.environ, **{var: key, "OUTPUT_DIR": self.w.path("output"),
                                          "INPUT_DIR": self.w.path("input"),
                                          "STATUS_DB_PATH": self.w.path("sstate"), "SERVER_PORT": "0"})
                r = subprocess.run([os.path.join(BIN, prog), "--once"] if prog == "sender" else [os.path.join(BIN, prog)],
                                   env=env, capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 2, (prog, content, r.stderr))
                err = r.stderr.decode()
                self.assertIn(key, err)
                self.assertIn("openssl base64", err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_health_check_probes_the_configured_receiver(self):
        probe = lambda port, ip: subprocess.run(
            [os.path.join(BIN, "receiver"), "--health-check"], capture_output=True, timeout=20,
            env=dict(os.environ, SERVER_PORT=str(port), SERVER_IP=ip))
        self.w.start_receiver(ip="0.0.0.0")
        up = probe(self.w.port, "0.0.0.0")  # the image's setting: dial the loopback
        self.assertEqual(up.returncode, 0, up.stdout)
        self.assertIn(b"/readyz: ready", up.stdout)
        stop(self.w.procs[-1])
        down = probe(self.w.port, "0.0.0.0")
        self.assertEqual(down.returncode, 1, down.stdout)
        self.assertIn(b"unhealthy: http://127.0.0.1:%d/" % self.w.port, down.stdout)

    def test_sender_health_check_beside_a_running_sender(self):
        check = lambda: subprocess.run([os.path.join(BIN, "sender"), "--health-check"], capture_output=True,
                                       timeout=20, env=self.w.sender_env(port=1))
        before = check()  # no database yet: not healthy
        self.assertEqual(before.returncode, 1, before.stdout)
        self.assertIn(b"state database", before.stdout)
        sender = self.w.start_sender(port=1)
        wait_until(lambda: check().returncode == 0, what="sender healthy")
        os.rename(self.w.path("input"), self.w.path("input-gone"))
        gone = check()
        self.assertEqual(gone.returncode, 1, gone.stdout)
        self.assertIn(b"unhealthy: input directory " + self.w.path("input").encode(), gone.stdout)
        os.rename(self.w.path("input-gone"), self.w.path("input"))
        self.assertEqual(stop(sender), 0)

    def test_eight_uploads_in_flight_deliver_each_file_once(self):
        rng = random.Random(8)
        docs = {"c%03d" % i: random_doc(rng, i) for i in range(200)}
        for name, doc in docs.items():
            write_json(self.w.path("input", name + ".json"), doc)
        self.w.start_receiver(env={"THREADS": "8"})
        r = self.w.run_sender_once(UPLOAD_CONCURRENCY="8", MIN_FILE_AGE="0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.outputs(), sorted(n + ".xml" for n in docs))
        for name, doc in docs.items():
            self.assertEqual(open(self.w.path("output", name + ".xml"), "rb").read(), expected_xml(doc), name)
        con = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        self.assertEqual(con.execute("select count(*), count(distinct name) from uploads").fetchone(), (200, 200))
        con.close()
        self.assertIn(b"delivered=200 ", r.stderr)
        r = self.w.run_sender_once(UPLOAD_CONCURRENCY="8", MIN_FILE_AGE="0")  # nothing is sent twice
        self.assertIn(b"delivered=0 already_delivered=0", r.stderr)

    def test_fsync_switch(self):
        """FSYNC=on (the default) syncs each upload's file and then the directory before the 201;
        FSYNC=off syncs neither. Counted with strace on the real receiver. One upload at a time,
        each has its own directory fsync; concurrent ones may share one (group commit), never
        more than one each."""
        for setting, files, concurrency in (("on", 3, "1"), ("off", 3, "1"), ("on", 24, "8")):
            tag = "%s%s" % (setting, concurrency)
            trace = self.w.path("strace-%s" % tag)
            # LeakSanitizer cannot run under ptrace (it aborts at exit): off for the traced run.
            asan = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
            self.w.start_receiver(env={"FSYNC": setting, "ASAN_OPTIONS": asan},
                                  prefix=("strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o", trace))
            for i in range(files):
                write_json(self.w.path("input", "f%s-%d.json" % (tag, i)), {"i": i})
            r = self.w.run_sender_once(UPLOAD_CONCURRENCY=concurrency)
            self.assertEqual(r.returncode, 0, r.stderr)
            tracer = self.w.procs[-1]
            receiver = int(subprocess.check_output(["pgrep", "-P", str(tracer.pid)]))  # strace's child
            os.kill(receiver, signal.SIGTERM)
            self.assertEqual(tracer.wait(timeout=15), 0)
            out = self.w.path("output")
            with open(trace) as fh:  # -y names each descriptor's file: count those in OUTPUT_DIR
                calls = [l for l in fh if "sync(" in l and ("<%s/" % out in l or "<%s>" % out in l)]
            directory = sum("<%s>" % out in l for l in calls)
            if setting == "off":
                self.assertEqual(calls, [])
            else:
                self.assertEqual(len(calls) - directory, files, calls)  # each upload's own file
                if concurrency == "1":
                    self.assertEqual(directory, files, calls)
                else:
                    self.assertGreaterEqual(directory, 1, calls)
                    self.assertLessEqual(directory, files, calls)
            for i in range(files):
                self.assertEqual(open(self.w.path("output", "f%s-%d.xml" % (tag, i)), "rb").read(),
                                 expected_xml({"i": i}))
        self.assertIn("FSYNC=off: files answered 201 may be lost", self.w.read("receiver.log"))

    def test_thread_pool_sized_for_the_machine(self):
        self.w.start_receiver()
        want = max(16, 4 * os.cpu_count())
        self.assertIn("threads=%d" % want, self.w.read("receiver.log"))
        stop(self.w.procs[-1])
        self.w.start_receiver(env={"THREADS": "3"})
        self.assertIn("threads=3", self.w.read("receiver.log"))

    def test_help_and_version(self):
        for prog, names in (("receiver", ["OUTPUT_DIR", "DECRYPTION_KEY", "SERVER_IP", "SERVER_PORT", "LOG_LEVEL", "STATUS_DB_PATH", "/usr/src/app-receiver/output"]),
                            ("sender", ["INPUT_DIR", "ENCRYPTION_KEY", "SCAN_INTERVAL", "STATUS_DB_PATH", "RECEIVER_ADDRESS", "RECEIVER_PORT", "RECEIVER_URI", "LOG_LEVEL", "/usr/src/app-sender/input"])):
            r = subprocess.run([os.path.join(BIN, prog), "--help"], capture_output=True, timeout=10)
            self.assertEqual(r.returncode, 0)
            for n in names:
                self.assertIn(n, r.stdout.decode(), (prog, n))
            v = subprocess.run([os.path.join(BIN, prog), "--version"], capture_output=True, timeout=10)
            self.assertEqual(v.returncode, 0)
            self.assertRegex(v.stdout.decode(), r"\d+\.\d+\.\d+")


if __name__ == "__main__":
    unittest.main()
