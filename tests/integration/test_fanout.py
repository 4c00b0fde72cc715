"""Fan-out (issue 14) on the real binaries: one sender with a DESTINATIONS_FILE delivering to three
receivers at once, two of ours and the Python reference receiver, each with its own Fernet key.
Every file reaches every receiver byte for byte; a receiver that is down delays no other and gets
everything once it is back on its port; ON_SUCCESS=delete waits for all three; a 409 from one
quarantines the input with every destination's outcome in the .reason; status, retry and forget
per destination; a bad destinations file stops the sender with one line naming the field."""
import glob
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import unittest

from harness import (BIN, PEER, Workdir, copy_corpus, expected_xml, get, make_key, stop, wait_until,
                     write_json)
from test_operations import metrics, readyz, sender_port

CORPUS_EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "json2xml",
                               "expected")
OURS = ("a", "b")  # our receivers; "py" is the Python reference receiver
ALL = ("a", "b", "py")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_doc(rng, i):
    return {"id": i, "name": "doc %d é <&> 東京" % i, "ok": rng.random() < 0.5, "score": rng.uniform(-1e3, 1e3),
            "tags": [rng.choice("abc") for _ in range(rng.randint(0, 3))], "nested": {"x": None, "l": [1, 2.5]}}


@unittest.skipUnless(os.path.isdir(PEER) or os.environ.get("CI") == "true",
                     "Python reference peer not found at %s" % PEER)
class FanoutTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.addCleanup(self.w.cleanup)
        self.keys, self.ports, self.receivers = {}, {}, {}
        for name in ALL:  # a different Fernet key for each destination
            self.keys[name] = self.w.path("key-" + name)
            make_key(self.keys[name])
            for d in ("out-", "rstate-"):
                os.makedirs(self.w.path(d + name))
        self.dests = self.w.path("destinations.json")

    # --- receivers -----------------------------------------------------------------------------

    def start_ours(self, name, port=0, env=None):
        ready = self.w.path("ready-" + name)
        if os.path.exists(ready):
            os.unlink(ready)
        e = dict(os.environ, OUTPUT_DIR=self.w.path("out-" + name), DECRYPTION_KEY=self.keys[name],
                 STATUS_DB_PATH=self.w.path("rstate-" + name), SERVER_PORT=str(port), SERVER_IP="127.0.0.1")
        e.update(env or {})
        with open(self.w.path("receiver-%s.log" % name), "ab") as log:
            p = subprocess.Popen([os.path.join(BIN, "receiver"), "--ready-file", ready], env=e, stdout=log, stderr=log)
        self.w.procs.append(p)
        wait_until(lambda: os.path.exists(ready) or p.poll() is not None, what="receiver %s ready" % name)
        self.assertIsNone(p.poll(), self.w.read("receiver-%s.log" % name))
        with open(ready) as fh:
            self.ports[name] = int(fh.read())
        self.receivers[name] = p
        return p

    def start_python(self, name="py", port=None):
        port = port or free_port()
        env = dict(os.environ, OUTPUT_DIR=self.w.path("out-" + name), DECRYPTION_KEY=self.keys[name],
                   SERVER_IP="127.0.0.1", SERVER_PORT=str(port))
        with open(self.w.path("gunicorn-%s.log" % name), "ab") as log:
            p = subprocess.Popen(["/usr/bin/python3", "/usr/bin/gunicorn", "-c", "gunicorn.conf.py", "receiver:app"],
                                 cwd=os.path.join(PEER, "app"), env=env, stdout=log, stderr=log)
        self.w.procs.append(p)
        self.ports[name] = port

        def healthy():
            self.assertIsNone(p.poll(), self.w.read("gunicorn-%s.log" % name))
            try:
                return get("http://127.0.0.1:%d/" % port, timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(healthy, what="python receiver %s healthy" % name)
        self.receivers[name] = p
        return p

    def start_all(self, env_a=None):
        self.start_ours("a", env=env_a)
        self.start_ours("b")
        self.start_python("py")

    def restart(self, name):
        """Back on the port it had."""
        if name == "py":
            return self.start_python(name, port=self.ports[name])
        return self.start_ours(name, port=self.ports[name])

    # --- sender --------------------------------------------------------------------------------

    def write_destinations(self, names=ALL, **per_dest):
        entries = []
        for name in names:
            entry = {"name": name, "url": "http://127.0.0.1:%d/upload" % self.ports[name], "key_file": self.keys[name],
                     "retry_base_delay": 0.2, "retry_max_delay": 1}
            entry.update(per_dest.get(name, {}))
            entries.append(entry)
        with open(self.dests, "w") as fh:
            json.dump({"destinations": entries}, fh)

    def sender_env(self, **extra):
        # No flat receiver options and no flat key: with DESTINATIONS_FILE they are not used.
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("RECEIVER_") and k not in ("ENCRYPTION_KEY", "DESTINATIONS_FILE")}
        e.update(INPUT_DIR=self.w.path("input"), STATUS_DB_PATH=self.w.path("sstate"), DESTINATIONS_FILE=self.dests,
                 SCAN_INTERVAL="0.2", CONNECT_TIMEOUT="2", MIN_FILE_AGE="0.3")
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def run_once(self, *args, timeout=60, **extra):
        return subprocess.run([os.path.join(BIN, "sender"), "--once", *args], env=self.sender_env(**extra),
                              capture_output=True, timeout=timeout)

    def start_sender(self, **extra):
        with open(self.w.path("sender.log"), "ab") as log:
            p = subprocess.Popen([os.path.join(BIN, "sender")], env=self.sender_env(**extra), stdout=log, stderr=log)
        self.w.procs.append(p)
        return p

    def admin(self, *args):
        r = subprocess.run([os.path.join(BIN, "sender"), *args], env=self.sender_env(), capture_output=True,
                           timeout=30)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def rows(self, where="1", *params):
        """{(name, destination): (state, attempts, receiver_status)} from the sender's database."""
        path = self.w.path("sstate", "sender.db")
        if not os.path.exists(path):
            return {}
        con = sqlite3.connect(path)
        try:
            return {(n, d): (s, a, r) for n, d, s, a, r in con.execute(
                "select name, destination, state, attempts, receiver_status from files where " + where, params)}
        except sqlite3.OperationalError:  # not created yet
            return {}
        finally:
            con.close()

    # --- outputs -------------------------------------------------------------------------------

    def outputs(self, name):
        return sorted(os.path.basename(p) for p in glob.glob(self.w.path("out-" + name, "*.xml")))

    def output(self, name, xml_name):
        with open(self.w.path("out-" + name, xml_name), "rb") as fh:
            return fh.read()

    def has_all(self, name, want):
        """Every file of want ({xml name: bytes}) complete at receiver `name` (the Python receiver
        writes in place, so a file that exists may still be short)."""
        for xml_name, data in want.items():
            try:
                if self.output(name, xml_name) != data:
                    return False
            except FileNotFoundError:
                return False
        return True

    def write_docs(self, prefix, n, seed):
        rng = random.Random(seed)
        want = {}
        for i in range(n):
            doc = small_doc(rng, i)
            write_json(self.w.path("input", "%s%02d.json" % (prefix, i)), doc)
            want["%s%02d.xml" % (prefix, i)] = expected_xml(doc)
        return want

    def all_delivered(self, n):
        """The sender has recorded n rows, every one delivered (it has read each 201: a receiver
        renames the file into place just before it answers)."""
        rows = self.rows()
        return len(rows) == n and {v[0] for v in rows.values()} == {"delivered"}

    def inputs(self):
        return sorted(n for n in os.listdir(self.w.path("input")) if n.endswith(".json"))

    # --- 1. every file to every receiver -------------------------------------------------------

    def test_every_file_reaches_three_receivers_with_their_own_keys(self):
        want = self.write_docs("doc", 20, seed=14)
        for case in copy_corpus(self.w.path("input")):
            with open(os.path.join(CORPUS_EXPECTED, case + ".xml"), "rb") as fh:
                want[case + ".xml"] = fh.read()
        self.start_all()
        self.write_destinations()
        r = self.run_once()
        log = r.stderr.decode()
        self.assertEqual(r.returncode, 0, log)
        for name in ALL:
            self.assertEqual(self.outputs(name), sorted(want), name)
            for xml_name, data in want.items():
                self.assertEqual(self.output(name, xml_name), data, "%s at %s" % (xml_name, name))
        # Byte-identical across the three, though each token was made with another key.
        for xml_name in want:
            self.assertEqual(self.output("a", xml_name), self.output("b", xml_name), xml_name)
            self.assertEqual(self.output("a", xml_name), self.output("py", xml_name), xml_name)
        # One state row per file and destination, each delivered; each of our receivers took each
        # file once, decrypted with its own key.
        rows = self.rows()
        self.assertEqual(len(rows), 3 * len(want))
        self.assertEqual({v[0] for v in rows.values()}, {"delivered"}, rows)
        self.assertEqual(sorted({d for _, d in rows}), sorted(ALL))
        for name in OURS:
            con = sqlite3.connect(self.w.path("rstate-" + name, "receiver.db"))
            self.assertEqual(con.execute("select count(*), count(distinct name) from uploads where outcome='accepted'")
                             .fetchone(), (len(want), len(want)), name)
            con.close()
        for name in ALL:  # the log says which destination each delivery went to
            self.assertEqual(sum(1 for line in log.splitlines()
                                 if "delivered file=" in line and "destination=%s" % name in line.split()),
                             len(want), name)
        # Nothing left to do: a second run sends nothing anywhere.
        before = {n: os.stat(self.w.path("out-a", n)).st_mtime_ns for n in want}
        r = self.run_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertNotIn("delivered file=", r.stderr.decode())
        self.assertEqual({n: os.stat(self.w.path("out-a", n)).st_mtime_ns for n in want}, before)

    # --- 2. one receiver down: the others are not held up -------------------------------------

    def test_a_stopped_receiver_holds_up_no_other_and_gets_everything_back_on_its_port(self):
        self.start_all()
        self.write_destinations()
        sender = self.start_sender(METRICS_PORT="0")
        url = "http://127.0.0.1:%d" % wait_until(lambda: sender_port(self.w), what="sender status server")
        first = self.write_docs("early", 5, seed=1)
        wait_until(lambda: all(self.has_all(n, first) for n in ALL), timeout=30, what="5 files at all three")
        wait_until(lambda: self.all_delivered(15), what="15 rows delivered")

        self.assertEqual(stop(self.receivers["b"]), 0)
        later = self.write_docs("late", 12, seed=2)
        wait_until(lambda: all(self.has_all(n, later) for n in ("a", "py")), timeout=20,
                   what="12 files at a and py while b is down")
        for name in ("a", "py"):
            self.assertEqual(self.outputs(name), sorted(list(first) + list(later)), name)
        self.assertEqual(self.outputs("b"), sorted(first))  # b, down, has only the first five
        # The sender did try b meanwhile: b's rows of the late files failed, not delivered. A
        # destination that answers nothing yields (one retry at a time probes it, not one failure
        # per file), so at least one of them was tried.
        wait_until(lambda: sum(v[1] for v in self.rows("destination='b' and name like 'late%'").values()) >= 1,
                   timeout=20, what="b tried while down")
        late_b = self.rows("destination='b' and name like 'late%'")
        self.assertEqual(len(late_b), 12, late_b)
        self.assertTrue(all(v[0] in ("pending", "failed") for v in late_b.values()), late_b)
        wait_until(lambda: [v[0] for v in self.rows("destination in ('a', 'py') and name like 'late%'").values()]
                   == ["delivered"] * 24, what="a's and py's late rows delivered")
        log = self.w.read("sender.log")
        self.assertRegex(log, r"failed file=late\d\d\.json .*destination=b")
        self.assertNotRegex(log, r"failed file=.*destination=(a|py)\b")
        # Metrics and readiness by destination: b is the one down, with the late files waiting.
        wait_until(lambda: readyz(url + "/readyz")[1]["failing"] == ["receiver:b"], timeout=20,
                   what="readyz failing receiver:b only")
        m = metrics(url + "/metrics")
        self.assertEqual([m['transfer_sender_files_delivered_total{destination="%s"}' % d] for d in ALL],
                         [17, 5, 17])
        self.assertEqual(m['transfer_sender_backlog_files{destination="b"}'], 12)
        self.assertEqual(m['transfer_sender_backlog_files{destination="a"}'], 0)
        self.assertEqual(m['transfer_sender_receiver_up{destination="b"}'], 0)
        self.assertEqual(m['transfer_sender_receiver_up{destination="a"}'], 1)
        self.assertGreaterEqual(m['transfer_sender_upload_failures_total{destination="b"}'], 12)
        self.assertEqual(m.get('transfer_sender_upload_failures_total{destination="a"}', 0), 0)
        self.assertEqual(m["transfer_sender_files_discovered_total"], 17)

        self.restart("b")  # the same port
        wait_until(lambda: self.has_all("b", later), timeout=30, what="b gets the late files once back")
        self.assertEqual(self.outputs("b"), sorted(list(first) + list(later)))
        for xml_name in list(first) + list(later):
            self.assertEqual(self.output("b", xml_name), self.output("a", xml_name), xml_name)
        wait_until(lambda: self.all_delivered(3 * 17), what="every row delivered")
        wait_until(lambda: readyz(url + "/readyz")[0] == 200, timeout=20, what="sender ready again")
        m = metrics(url + "/metrics")
        self.assertEqual(m['transfer_sender_files_delivered_total{destination="b"}'], 17)
        self.assertEqual(m['transfer_sender_backlog_files{destination="b"}'], 0)
        self.assertEqual(stop(sender), 0)
        # a and py took each file once: b's outage resent nothing to them.
        con = sqlite3.connect(self.w.path("rstate-a", "receiver.db"))
        self.assertEqual(con.execute("select count(*), count(distinct name) from uploads").fetchone(), (17, 17))
        con.close()

    def test_a_hung_receiver_holds_up_no_other(self):
        """b frozen (SIGSTOP): the kernel still accepts its connections but it never answers, so
        b's uploads hang in flight; a and py get every file meanwhile; b resumed gets them all."""
        self.start_all()
        self.write_destinations()
        sender = self.start_sender(METRICS_PORT="0")
        url = "http://127.0.0.1:%d" % wait_until(lambda: sender_port(self.w), what="sender status server")
        first = self.write_docs("early", 3, seed=5)
        wait_until(lambda: all(self.has_all(n, first) for n in ALL), timeout=30, what="3 files at all three")
        wait_until(lambda: self.all_delivered(9), what="9 rows delivered")
        b = self.receivers["b"]
        os.kill(b.pid, signal.SIGSTOP)
        later = self.write_docs("late", 10, seed=6)
        try:
            wait_until(lambda: all(self.has_all(n, later) for n in ("a", "py")), timeout=20,
                       what="10 files at a and py while b hangs")
            self.assertEqual(self.outputs("b"), sorted(first))

            # A receiver renames a file into place before it answers: the sender counts it once
            # the 201 is read, so wait for the counts to settle, with b's upload still hanging.
            def settled():
                m = metrics(url + "/metrics")
                return m if (m['transfer_sender_files_delivered_total{destination="a"}'] == 13 and
                             m['transfer_sender_files_delivered_total{destination="py"}'] == 13 and
                             m['transfer_sender_uploads_in_flight{destination="a"}'] == 0 and
                             m['transfer_sender_uploads_in_flight{destination="py"}'] == 0 and
                             m['transfer_sender_uploads_in_flight{destination="b"}'] >= 1) else None
            m = wait_until(settled, what="a and py settled at 13 while an upload to b hangs")
            self.assertEqual(m['transfer_sender_files_delivered_total{destination="b"}'], 3)
            self.assertEqual(self.outputs("b"), sorted(first))
        finally:
            os.kill(b.pid, signal.SIGCONT)
        wait_until(lambda: self.has_all("b", later), timeout=30, what="b gets the late files once resumed")
        self.assertEqual(self.outputs("b"), sorted(list(first) + list(later)))
        wait_until(lambda: self.all_delivered(39), what="every row delivered")
        self.assertEqual(stop(sender), 0)

    # --- 3. ON_SUCCESS=delete waits for every destination ------------------------------------

    def test_delete_waits_for_every_destination(self):
        self.start_all()
        self.write_destinations()
        self.assertEqual(stop(self.receivers["py"]), 0)  # the Python receiver is down from the start
        sender = self.start_sender(ON_SUCCESS="delete")
        want = self.write_docs("del", 6, seed=3)
        names = sorted(n[:-4] + ".json" for n in want)
        wait_until(lambda: all(self.has_all(n, want) for n in OURS), timeout=20, what="6 files at a and b")
        # Delivered to a and b, and py tried (and failed) at least twice since: the inputs stay.
        wait_until(lambda: all(self.rows("name=?", n).get((n, d), ("",))[0] == "delivered"
                               for n in names for d in OURS), what="a and b recorded as delivered")
        # (py answers nothing: it yields between retries, so count its attempts over all files)
        wait_until(lambda: sum(self.rows("name=? and destination='py'", n).get((n, "py"), ("", 0))[1]
                               for n in names) >= 2, timeout=20, what="py tried twice")
        self.assertEqual(self.inputs(), names, "deleted before the third destination had them")
        self.assertEqual(self.outputs("py"), [])

        self.restart("py")
        wait_until(lambda: self.inputs() == [], timeout=30, what="inputs deleted once py has them")
        self.assertTrue(self.has_all("py", want))
        for name in ALL:
            self.assertEqual(self.outputs(name), sorted(want), name)
        self.assertEqual({v[0] for v in self.rows().values()}, {"delivered"})
        self.assertEqual(stop(sender), 0)
        self.assertEqual(os.listdir(self.w.path("input")), [])  # no quarantine, no leftovers

    # --- 4. a 409 from one destination --------------------------------------------------------

    def test_a_refusal_by_one_quarantines_with_every_outcome(self):
        # a (ON_CONFLICT=reject) already holds another clash.xml.
        with open(self.w.path("out-a", "clash.xml"), "wb") as fh:
            fh.write(b"<other/>\n")
        self.start_all(env_a={"ON_CONFLICT": "reject"})
        self.write_destinations()
        write_json(self.w.path("input", "clash.json"), {"v": 2})
        want = self.write_docs("fine", 3, seed=4)
        r = self.run_once()
        log = r.stderr.decode()
        self.assertEqual(r.returncode, 1, log)
        self.assertEqual(self.output("a", "clash.xml"), b"<other/>\n")  # untouched
        for name in ("b", "py"):
            self.assertEqual(self.output(name, "clash.xml"), expected_xml({"v": 2}), name)
        for name in ALL:
            self.assertTrue(self.has_all(name, want), name)
        # The input is quarantined whole; its reason has one line per destination.
        self.assertEqual(self.inputs(), sorted(n[:-4] + ".json" for n in want))
        q = self.w.path("input", ".quarantine", "clash.json")
        with open(q) as fh:
            self.assertEqual(json.load(fh), {"v": 2})
        with open(q + ".reason") as fh:
            reason = fh.read()
        lines = [l for l in reason.splitlines() if l.startswith("destination ")]
        self.assertEqual(len(lines), 3, reason)
        self.assertIn("destination b: delivered", lines, reason)
        self.assertIn("destination py: delivered", lines, reason)
        gave_up = [l for l in lines if l.startswith("destination a: ")]
        self.assertEqual(len(gave_up), 1, reason)
        self.assertRegex(gave_up[0], r"^destination a: gave up after 1 attempts: .*409", reason)
        rows = self.rows("name='clash.json'")
        self.assertEqual(rows[("clash.json", "a")][0], "quarantined", rows)
        self.assertEqual(rows[("clash.json", "a")][2], 409, rows)
        self.assertEqual(rows[("clash.json", "b")][0], "delivered", rows)
        self.assertEqual(rows[("clash.json", "py")][0], "delivered", rows)
        self.assertRegex(log, r"destination=a")
        con = sqlite3.connect(self.w.path("rstate-a", "receiver.db"))
        self.assertEqual(con.execute("select status from uploads where name='clash'").fetchall(), [(409,)])
        con.close()

    # --- 5. status, retry and forget per destination ------------------------------------------

    def dest_counts(self, status_json):
        """{destination: {state: n}} from `sender status --json`."""
        per = status_json["destinations"]
        if isinstance(per, dict):
            return {name: d["counts"] for name, d in per.items()}
        return {d["name"]: d["counts"] for d in per}

    def test_status_retry_and_forget_per_destination(self):
        self.start_ours("a")
        self.ports["b"], self.ports["py"] = free_port(), free_port()  # b and py not up yet
        self.write_destinations()
        files = ["f%d.json" % i for i in range(4)]
        docs = {}
        for i, n in enumerate(files):
            docs[n] = {"f": i}
            write_json(self.w.path("input", n), docs[n])
        r = self.run_once()
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertEqual(self.outputs("a"), ["f0.xml", "f1.xml", "f2.xml", "f3.xml"])

        code, out, err = self.admin("status", "--json")
        self.assertEqual(code, 0, err)
        s = json.loads(out)
        counts = self.dest_counts(s)
        self.assertEqual(sorted(counts), sorted(ALL), s)
        self.assertEqual(counts["a"].get("delivered"), 4, s)
        for d in ("b", "py"):
            self.assertEqual(counts[d].get("failed"), 4, s)
            self.assertFalse(counts[d].get("delivered"), s)
        for d in ("b", "py"):
            self.assertIn(s["destinations"][d]["oldest_pending"]["name"], files, s)
        self.assertIsNone(s["destinations"]["a"]["oldest_pending"], s)
        code, out, err = self.admin("status", "--json", "--destination", "b")
        self.assertEqual(code, 0, err)
        only_b = self.dest_counts(json.loads(out))
        self.assertEqual(list(only_b), ["b"], out)
        self.assertEqual(only_b["b"].get("failed"), 4, out)

        # retry NAME --destination b: b's row of f0 only.
        before = self.rows()
        code, out, err = self.admin("retry", "f0.json", "--destination", "b")
        self.assertEqual(code, 0, err)
        after = self.rows()
        self.assertEqual(after[("f0.json", "b")][:2], ("pending", 0), after)
        changed = {k for k in before if before[k] != after[k]}
        self.assertEqual(changed, {("f0.json", "b")}, (before, after))

        # retry --all-failed --destination py: py's rows only, b's other failures stay.
        code, out, err = self.admin("retry", "--all-failed", "--destination", "py")
        self.assertEqual(code, 0, err)
        after2 = self.rows()
        for n in files:
            self.assertEqual(after2[(n, "py")][:2], ("pending", 0), after2)
            self.assertEqual(after2[(n, "a")], before[(n, "a")])
        for n in files[1:]:
            self.assertEqual(after2[(n, "b")], before[(n, "b")])

        # forget NAME --destination a: a's row of f1 only.
        code, out, err = self.admin("forget", "f1.json", "--destination", "a")
        self.assertEqual(code, 0, err)
        after3 = self.rows()
        self.assertEqual(set(after2) - set(after3), {("f1.json", "a")})
        for k in after3:
            self.assertEqual(after3[k], after2[k], k)

        # b and py come up: they get everything; a gets only f1 again (forgotten for a).
        self.start_ours("b", port=self.ports["b"])
        self.start_python("py", port=self.ports["py"])
        sender = self.start_sender()
        want = {n[:-5] + ".xml": expected_xml(d) for n, d in docs.items()}
        wait_until(lambda: all(self.has_all(n, want) for n in ALL), timeout=30, what="every file at all three")
        wait_until(lambda: self.all_delivered(12), timeout=30, what="12 rows delivered")
        code, out, err = self.admin("status", "--json")
        self.assertEqual(code, 0, err)
        counts = self.dest_counts(json.loads(out))
        for d in ALL:
            self.assertEqual(counts[d].get("delivered"), 4, out)
            self.assertFalse(counts[d].get("failed"), out)
        self.assertEqual(stop(sender), 0)
        con = sqlite3.connect(self.w.path("rstate-a", "receiver.db"))
        per_name = dict(con.execute("select name, count(*) from uploads group by name"))
        con.close()
        self.assertEqual(per_name, {"f0": 1, "f1": 2, "f2": 1, "f3": 1})
        con = sqlite3.connect(self.w.path("rstate-b", "receiver.db"))
        self.assertEqual(con.execute("select count(*), count(distinct name) from uploads").fetchone(), (4, 4))
        con.close()

    # --- 6. a bad destinations file -----------------------------------------------------------

    def test_a_bad_destinations_file_stops_the_sender_naming_the_field(self):
        self.ports.update(a=free_port(), b=free_port(), py=free_port())
        good = lambda name: {"name": name, "url": "http://127.0.0.1:%d/upload" % self.ports[name],
                             "key_file": self.keys[name]}
        no_key = good("b")
        del no_key["key_file"]
        cases = {
            "duplicate name": ([good("a"), dict(good("b"), name="a")], [r"\bname\b", "'a'"]),
            "unknown field": ([good("a"), dict(good("b"), colour="red")], ["colour"]),
            "missing key_file": ([good("a"), no_key], [r"\bkey_file\b", r"\(b\)"]),
            "key_file not there": ([good("a"), dict(good("b"), key_file=self.w.path("nope"))],
                                   [r"\bkey_file\b", re.escape(self.w.path("nope"))]),
        }
        write_json(self.w.path("input", "x.json"), {"x": 1})
        for case, (entries, patterns) in cases.items():
            for via_flag in (False, True):
                with open(self.dests, "w") as fh:
                    json.dump({"destinations": entries}, fh)
                if via_flag:
                    r = self.run_once("--destinations-file", self.dests, timeout=30, DESTINATIONS_FILE=None)
                else:
                    r = self.run_once(timeout=30)
                err = r.stderr.decode()
                self.assertEqual(r.returncode, 2, (case, via_flag, err))
                self.assertEqual(len(err.strip().splitlines()), 1, (case, via_flag, err))
                for p in patterns:
                    self.assertRegex(err, p, (case, via_flag))
        self.assertEqual(self.rows(), {})
        self.assertTrue(os.path.exists(self.w.path("input", "x.json")))


    # --- 8. each destination its own XML mapping (issue 16) ---------------------------------------

    def test_destinations_with_different_mappings_get_their_own_shape_converted_once_per_mapping(self):
        """a: the old pair's shape (defaults); b and py: compact, no type attributes, root <order>,
        list members <line>, text as CDATA. b and py share one conversion, a has its own: two
        conversions per file for three destinations. Each shape is byte-identical to dicttoxml
        1.7.4 (the old pair's library) called with the same options."""
        import collections
        import collections.abc
        import importlib.util
        import logging
        oracle = os.path.join(os.path.dirname(PEER.rstrip("/")), "..", "oracles", "dicttoxml-1.7.4",
                              "dicttoxml.py")
        collections.Iterable = collections.abc.Iterable  # the oracle's README: two lines first
        logging.disable(logging.CRITICAL)
        # Under a name of its own: Debian's dicttoxml 1.7.15 (the harness's) may be imported already.
        spec = importlib.util.spec_from_file_location("dicttoxml_1_7_4", os.path.abspath(oracle))
        dicttoxml = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(dicttoxml)
        self.assertEqual(dicttoxml.__version__, "1.7.4")

        self.start_all()
        shape = {"xml_root": "order", "xml_type_attrs": False, "xml_item_name": "line",
                 "xml_pretty": "off", "xml_cdata": True}
        self.write_destinations(ALL, b=shape, py=shape)
        docs = {"o%d.json" % i: {"id": i, "lines": [{"sku": "a%d" % i, "qty": 2}, {"sku": "b]]>c", "qty": 1.5}],
                                 "note": "x<y & \u00e9", "paid": i % 2 == 0, "gift": None}
                for i in range(4)}
        for name, obj in docs.items():
            write_json(self.w.path("input", name), obj)
        sender = self.start_sender(METRICS_PORT="0")
        mport = wait_until(lambda: sender_port(self.w), what="sender status server")
        want_default = {n[:-5] + ".xml": expected_xml(obj) for n, obj in docs.items()}
        want_order = {n[:-5] + ".xml": dicttoxml.dicttoxml(obj, custom_root="order", attr_type=False,
                                                           item_func=lambda parent: "line", cdata=True)
                      for n, obj in docs.items()}
        self.assertIn(b"<![CDATA[b]]]]><![CDATA[>c]]>", want_order["o0.xml"])  # the split CDATA
        wait_until(lambda: self.has_all("a", want_default) and self.has_all("b", want_order)
                   and self.has_all("py", want_order), timeout=30, what="both shapes at the three")
        wait_until(lambda: self.all_delivered(12), what="12 rows delivered")
        m = metrics("http://127.0.0.1:%d/metrics" % mport)
        self.assertEqual(m["transfer_sender_conversions_total"], 8)  # 4 files x 2 mappings
        rows = sqlite3.connect(self.w.path("sstate", "sender.db")).execute(
            "select destination, xml_mapping from files").fetchall()
        self.assertEqual({d for d, _ in rows}, set(ALL))
        for d, mapping in rows:
            self.assertIn("XML_ROOT=" + ("all" if d == "a" else "order"), mapping)
            self.assertIn("XML_PRETTY=" + ("on" if d == "a" else "off"), mapping)
        self.assertEqual(stop(sender), 0)

    def test_an_invalid_element_name_refuses_to_start(self):
        self.ports["a"] = free_port()  # nothing listens: the sender must not get that far
        self.write_destinations(("a",), a={"xml_root": "1st"})
        r = self.run_once()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr.decode().strip(), r"^sender: DESTINATIONS_FILE .*destination 1 \(a\): xml_root: \"1st\"")
        r = subprocess.run([os.path.join(BIN, "sender"), "--once"], env=self.sender_env(DESTINATIONS_FILE=None,
                           XML_ITEM_NAME="a b"), capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("XML_ITEM_NAME", r.stderr.decode())

    # --- 9. adding and removing a destination -------------------------------------------------------

    def test_an_added_destination_gets_the_files_already_there_a_removed_one_keeps_its_history(self):
        self.start_all()
        docs = self.write_docs("keep", 5, seed=9)
        self.write_destinations(("a", "b"))
        r = self.run_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.has_all("a", docs) and self.has_all("b", docs))
        self.assertEqual(self.outputs("py"), [])
        # py added: the files already in the input directory are due for it, and only for it.
        self.write_destinations(("a", "b", "py"))
        r = self.run_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.has_all("py", docs))
        self.assertNotRegex(r.stderr.decode(), r"delivered file=.*destination=(a|b)\b")
        # b removed: nothing more goes to it, and its rows stay.
        self.write_destinations(("a", "py"))
        more = self.write_docs("late", 2, seed=10)
        r = self.run_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.has_all("a", more) and self.has_all("py", more))
        self.assertEqual(self.outputs("b"), sorted(docs))
        b_rows = self.rows("destination='b'")
        self.assertEqual(len(b_rows), 5)
        self.assertTrue(all(v[0] == "delivered" for v in b_rows.values()), b_rows)

if __name__ == "__main__":
    unittest.main()
