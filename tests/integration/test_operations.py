"""Operations against the real binaries: /readyz flipping for each condition and back, metrics
checked by promtool and moving as files flow, /files pagination, the sender's status server and
subcommands against a live daemon, transfer ids in both logs, JSON logs, and key rotation while
files flow."""
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import unittest

from cryptography.fernet import Fernet

from harness import BIN, Workdir, expected_xml, get, stop, wait_until, write_json

PROMTOOL = "/usr/bin/promtool"


def metrics(url):
    """{series: value} from a Prometheus text page."""
    status, body = get(url)
    assert status == 200, (status, body)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def promtool_check(test, url):
    status, body = get(url)
    test.assertEqual(status, 200)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    test.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    test.assertEqual(r.stdout + r.stderr, b"", "promtool found lint problems")


def readyz(url):
    status, body = get(url)
    return status, json.loads(body)


def sender_port(w):
    m = re.search(r"status server listening address=http://127\.0\.0\.1:(\d+)", w.read("sender.log"))
    return int(m.group(1)) if m else None


class ReceiverOperationsTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.addCleanup(self.w.cleanup)

    def health_check(self):
        return subprocess.run([os.path.join(BIN, "receiver"), "--health-check"], capture_output=True, timeout=20,
                              env=dict(os.environ, SERVER_PORT=str(self.w.port), SERVER_IP="127.0.0.1"))

    def assert_flips(self, check, break_it, fix_it):
        status, body = readyz(self.w.url("/readyz"))
        self.assertEqual((status, body["failing"]), (200, []), body)
        break_it()
        status, body = readyz(self.w.url("/readyz"))
        self.assertEqual(status, 503, body)
        self.assertEqual(body["failing"], [check], body)
        self.assertEqual(body["status"], "not ready")
        self.assertFalse(body["checks"][check]["ok"])
        probe = self.health_check()
        self.assertEqual(probe.returncode, 1, probe.stdout)
        self.assertIn(check.encode(), probe.stdout)
        self.assertEqual(get(self.w.url("/"))[0], 200)  # liveness is not readiness
        fix_it()
        status, body = readyz(self.w.url("/readyz"))
        self.assertEqual((status, body["failing"]), (200, []), body)
        self.assertEqual(self.health_check().returncode, 0)
        return body

    @unittest.skipUnless(os.geteuid() == 0, "needs root for a tmpfs and a read-only remount")
    def test_readyz_flips_for_each_condition_and_back(self):
        out = self.w.path("output")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", out], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", out])
        self.w.start_receiver(env={"MIN_FREE_BYTES": "1M"})
        key = self.w.key
        self.assert_flips("key", lambda: os.rename(key, key + ".away"), lambda: os.rename(key + ".away", key))
        with open(key, "rb") as fh:
            good = fh.read()

        def garble():
            with open(key, "wb") as fh:
                fh.write(b"not a key\n")

        def restore():
            with open(key, "wb") as fh:
                fh.write(good)

        body = self.assert_flips("key", garble, restore)
        self.assertNotIn("not a key", self.w.read("receiver.log"))
        self.assert_flips("output_writable",
                          lambda: subprocess.run(["mount", "-o", "remount,ro", out], check=True),
                          lambda: subprocess.run(["mount", "-o", "remount,rw", out], check=True))
        filler = os.path.join(out, "filler")

        def fill():
            with open(filler, "wb") as fh:
                fh.write(b"\0" * (3 * 1024 * 1024 + 512 * 1024))

        self.assert_flips("free_space", fill, lambda: os.unlink(filler))
        holder = {}

        def lock():
            con = sqlite3.connect(self.w.path("rstate", "receiver.db"), isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            holder["con"] = con

        def unlock():
            holder["con"].execute("COMMIT")
            holder["con"].close()

        self.assert_flips("database", lock, unlock)
        self.assertEqual(set(body["checks"]), {"key", "output_writable", "free_space", "database"})

    def test_metrics_valid_and_moving_and_files_pages(self):
        self.w.start_receiver()
        promtool_check(self, self.w.url("/metrics"))
        before = metrics(self.w.url("/metrics"))
        self.assertEqual(before['transfer_receiver_build_info{version="1.0.0"}'], 1)
        docs = {"doc%02d" % i: {"n": i, "text": "x" * i} for i in range(7)}
        for name, obj in docs.items():
            write_json(self.w.path("input", name + ".json"), obj)
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr)
        key = open(self.w.key, "rb").read().strip()
        bad = Fernet(Fernet.generate_key()).encrypt(b"<x/>")
        subprocess.run(["curl", "-s", "-F", "file=@-;filename=t", self.w.url("/upload/wrongkey")], input=bad,
                       capture_output=True, timeout=30, check=True)
        ok = Fernet(key).encrypt(expected_xml(docs["doc00"]))
        subprocess.run(["curl", "-s", "-F", "file=@-;filename=t", self.w.url("/upload/doc00")], input=ok,
                       capture_output=True, timeout=30, check=True)  # same name and content: a duplicate
        promtool_check(self, self.w.url("/metrics"))
        after = metrics(self.w.url("/metrics"))
        self.assertEqual(after['transfer_receiver_uploads_total{outcome="accepted",code="201"}'], 7)
        self.assertEqual(after['transfer_receiver_uploads_total{outcome="duplicate",code="201"}'], 1)
        self.assertEqual(after['transfer_receiver_uploads_total{outcome="rejected",code="422"}'], 1)
        self.assertEqual(after['transfer_receiver_rejections_total{reason="invalid_token"}'], 1)
        self.assertEqual(after["transfer_receiver_duplicates_total"], 1)
        self.assertEqual(after['transfer_receiver_decrypts_total{key_index="0"}'], 8)
        self.assertEqual(after["transfer_receiver_written_bytes_total"],
                         sum(len(expected_xml(o)) for o in docs.values()))
        self.assertEqual(after['transfer_receiver_upload_duration_seconds_bucket{le="+Inf"}'], 9)
        self.assertEqual(after["transfer_receiver_uploads_in_flight"], 0)
        self.assertGreater(after["transfer_receiver_free_bytes"], 0)

        pages, seen, cursor = 0, [], None
        while True:
            status, body = get(self.w.url("/files?limit=3" + ("&after=" + cursor if cursor else "")))
            self.assertEqual(status, 200, body)
            page = json.loads(body)
            self.assertLessEqual(len(page["files"]), 3)
            seen += page["files"]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(sorted(f["name"] for f in seen), sorted(docs))  # each once, in arrival order
        for f in seen:
            want = expected_xml(docs[f["name"]])
            self.assertEqual(f["file"], f["name"] + ".xml")
            self.assertEqual(f["bytes"], len(want))
            import hashlib
            self.assertEqual(f["sha256"], hashlib.sha256(want).hexdigest())
            self.assertEqual(f["key_index"], 0)
            self.assertNotIn("content", f)
        status, body = get(self.w.url("/files/doc00.xml"))
        self.assertEqual(status, 200)
        one = json.loads(body)
        self.assertEqual((one["name"], one["duplicates"]), ("doc00", 1))
        self.assertLessEqual(one["first_received_at"], one["last_received_at"])
        self.assertEqual(json.loads(get(self.w.url("/files/doc03"))[1])["file"], "doc03.xml")
        self.assertEqual(get(self.w.url("/files/nothing"))[0], 404)
        self.assertEqual(get(self.w.url("/files?limit=5000"))[0], 400)
        self.assertEqual(get(self.w.url("/files?after=abc"))[0], 400)

    def test_json_logs_and_one_transfer_id_on_both_sides(self):
        self.w.start_receiver(env={"LOG_FORMAT": "json"})
        write_json(self.w.path("input", "t.json"), {"a": [1, 2]})
        r = self.w.run_sender_once(LOG_FORMAT="json")
        self.assertEqual(r.returncode, 0, r.stderr)
        stop(self.w.procs[-1])
        receiver_lines = [json.loads(l) for l in self.w.read("receiver.log").splitlines()]
        sender_lines = [json.loads(l) for l in r.stderr.decode().splitlines()]
        for line in receiver_lines + sender_lines:
            self.assertTrue({"time", "level", "logger", "event"} <= set(line), line)
        sent = [l for l in sender_lines if l["event"] == "delivered"]
        got = [l for l in receiver_lines if l["event"] == "upload accepted"]
        self.assertEqual(len(sent), 1)
        self.assertEqual(len(got), 1)
        self.assertRegex(sent[0]["transfer_id"], r"^[0-9a-f]{16}$")
        self.assertEqual(sent[0]["transfer_id"], got[0]["transfer_id"])
        self.assertEqual(got[0]["status"], 201)
        self.assertEqual(got[0]["name"], "t")

    def test_transfer_id_from_curl_is_echoed_and_logged(self):
        self.w.start_receiver()
        key = open(self.w.key, "rb").read().strip()
        tok = Fernet(key).encrypt(b"<a/>")
        r = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H", "X-Transfer-Id: my-id_1",
                            "-F", "file=@-;filename=t", self.w.url("/upload/tid")], input=tok,
                           capture_output=True, timeout=30, check=True)
        self.assertIn(b"X-Transfer-Id: my-id_1", r.stdout)
        r = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H", "X-Transfer-Id: bad id\"",
                            "-F", "file=@-;filename=t", self.w.url("/upload/tid2")], input=tok,
                           capture_output=True, timeout=30, check=True)
        made = re.search(rb"X-Transfer-Id: ([0-9a-f]{16})\r", r.stdout)
        self.assertIsNotNone(made, r.stdout)
        log = self.w.read("receiver.log")
        self.assertIn("name=tid transfer_id=my-id_1 ", log)
        self.assertIn("name=tid2 transfer_id=%s " % made.group(1).decode(), log)


class SenderOperationsTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.addCleanup(self.w.cleanup)

    def admin(self, *args):
        r = subprocess.run([os.path.join(BIN, "sender"), *args], capture_output=True, timeout=30,
                           env=self.w.sender_env(port=1))
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def status(self):
        code, out, err = self.admin("status", "--json")
        self.assertEqual(code, 0, err)
        return json.loads(out)

    def test_status_server_and_subcommands_against_a_live_daemon(self):
        self.w.start_receiver()
        port = self.w.port
        sender = self.w.start_sender(METRICS_PORT="0", SCAN_INTERVAL="0.5", CONNECT_TIMEOUT="1",
                                     RETRY_BASE_DELAY="600", RETRY_MAX_DELAY="600")
        mport = wait_until(lambda: sender_port(self.w), what="sender status server")
        url = "http://127.0.0.1:%d" % mport
        wait_until(lambda: get(url + "/readyz")[0] == 200, what="sender ready")
        for i in range(3):
            write_json(self.w.path("input", "a%d.json" % i), {"i": i})
        wait_until(lambda: self.status()["counts"]["delivered"] == 3, what="3 delivered")
        promtool_check(self, url + "/metrics")
        m = metrics(url + "/metrics")
        self.assertEqual(m["transfer_sender_files_discovered_total"], 3)
        self.assertEqual(m['transfer_sender_files_delivered_total{destination="default"}'], 3)
        self.assertEqual(m['transfer_sender_upload_duration_seconds_bucket{le="+Inf"}'], 3)
        self.assertGreater(m['transfer_sender_last_success_timestamp_seconds{destination="default"}'], time.time() - 60)
        self.assertEqual(m['transfer_sender_backlog_files{destination="default"}'], 0)

        # The receiver goes away: files fail (backoff 600 s), readiness says why.
        stop(self.w.procs[0])
        for i in range(2):
            write_json(self.w.path("input", "b%d.json" % i), {"b": i})
        # One fails; the receiver answers nothing, so the sender yields and the other waits
        # untried (pending) until that retry, a probe's answer or an operator's retry.
        def waiting():
            counts = self.status()["counts"]
            return counts["failed"] >= 1 and counts["failed"] + counts["pending"] == 2
        wait_until(waiting, what="b0 and b1 waiting, one failed")
        status, body = readyz(url + "/readyz")
        wait_until(lambda: readyz(url + "/readyz")[0] == 503, timeout=30, what="sender not ready")
        status, body = readyz(url + "/readyz")
        self.assertEqual(body["failing"], ["receiver:default"], body)
        m = metrics(url + "/metrics")
        self.assertEqual(m['transfer_sender_backlog_files{destination="default"}'], 2)
        self.assertGreater(m["transfer_sender_oldest_pending_age_seconds"], 0)
        self.assertGreaterEqual(m['transfer_sender_upload_failures_total{destination="default"}'], 1)
        self.assertEqual(m['transfer_sender_receiver_up{destination="default"}'], 0)
        s = self.status()
        self.assertIn(s["oldest_pending"]["name"], ("b0.json", "b1.json"))
        self.assertTrue(all("no answer" in e["error"] for e in s["last_errors"]), s)
        code, out, _ = self.admin("status")
        self.assertIn("failed", out)
        self.assertIn("b0.json", out)

        # Back up; `retry --all-failed` sends them now instead of in 600 s.
        self.w.start_receiver(port=port)
        wait_until(lambda: readyz(url + "/readyz")[0] == 200, timeout=30, what="sender ready again")
        code, out, err = self.admin("retry", "--all-failed")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"b[01]\.json: failed -> pending")
        wait_until(lambda: self.status()["counts"]["delivered"] == 5, timeout=15, what="retried files delivered")

        # `forget` makes the next scan send a delivered file again (a duplicate to the receiver).
        code, out, err = self.admin("forget", "a0.json")
        self.assertEqual(code, 0, err)
        wait_until(lambda: json.loads(get(self.w.url("/files/a0.xml"))[1]).get("duplicates") == 1, timeout=15,
                   what="a0 sent again")
        wait_until(lambda: self.status()["counts"]["delivered"] == 5, what="a0 delivered again")
        code, out, err = self.admin("verify")
        self.assertEqual(code, 0, out + err)
        self.assertIn("integrity ok", out)

        # Readiness follows the state database too.
        con = sqlite3.connect(self.w.path("sstate", "sender.db"), isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        status, body = readyz(url + "/readyz")
        self.assertEqual((status, body["failing"]), (503, ["state_db"]), body)
        con.execute("COMMIT")
        con.close()
        self.assertEqual(readyz(url + "/readyz")[0], 200)
        self.assertEqual(stop(sender), 0)
        self.assertEqual(len(os.listdir(self.w.path("output"))), 5)

    def test_retry_brings_a_quarantined_file_back(self):
        self.w.start_receiver()
        sender = self.w.start_sender()
        with open(self.w.path("input", "broken.json"), "w") as fh:
            fh.write('{"a": ')
        quarantined = self.w.path("input", ".quarantine", "broken.json")
        wait_until(lambda: os.path.exists(quarantined), what="quarantined")
        with open(quarantined, "w") as fh:  # an operator repairs it where it lies
            fh.write('{"a": 1}')
        code, out, err = self.admin("retry", "broken.json")
        self.assertEqual(code, 0, err)
        self.assertIn("moved back", out)
        wait_until(lambda: os.path.exists(self.w.path("output", "broken.xml")), what="delivered after retry")
        self.assertEqual(open(self.w.path("output", "broken.xml"), "rb").read(), expected_xml({"a": 1}))
        self.assertFalse(os.path.exists(quarantined + ".reason"))
        self.assertEqual(stop(sender), 0)

    def test_subcommand_errors_are_clear(self):
        code, _, err = self.admin("status")
        self.assertEqual(code, 1)
        self.assertIn("no state database at", err)
        code, _, err = self.admin("forget")
        self.assertEqual(code, 2)
        self.assertIn("usage: sender status", err)
        code, _, err = self.admin("retry", "--all-failed", "--bogus")
        self.assertEqual(code, 2)


class KeyRotationTest(unittest.TestCase):
    """README "Key rotation" while files flow: nothing lost, nothing refused, the old key's
    decrypt count stops growing once the sender has switched."""

    def test_rotation_while_files_flow(self):
        w = Workdir()
        self.addCleanup(w.cleanup)
        with open(w.key, "rb") as fh:
            old = fh.read().strip()
        new = Fernet.generate_key()
        rkey, skey = w.path("receiver.key"), w.path("sender.key")

        def put(path, *keys):  # in place, as an operator's editor or a bind-mounted file
            with open(path, "r+b" if os.path.exists(path) else "wb") as fh:
                fh.write(b"\n".join(keys) + b"\n")
                fh.truncate()

        put(rkey, old)
        put(skey, old)
        w.start_receiver(env={"DECRYPTION_KEY": rkey})
        sender = w.start_sender(ENCRYPTION_KEY=skey, MIN_FILE_AGE="0", SCAN_INTERVAL="0.2")
        written = []
        stop_flow = threading.Event()

        def flow():
            i = 0
            while not stop_flow.is_set() and i < 400:
                name = "f%04d" % i
                write_json(w.path("input", name + ".json"), {"i": i, "pad": "p" * (i % 50)})
                written.append(name)
                i += 1
                time.sleep(0.01)

        feeder = threading.Thread(target=flow)
        feeder.start()
        self.addCleanup(stop_flow.set)

        def decrypts(index):
            return metrics(w.url("/metrics")).get('transfer_receiver_decrypts_total{key_index="%d"}' % index, 0)

        wait_until(lambda: decrypts(0) >= 20, what="files flowing with the old key")
        put(rkey, old, new)  # 1. the receiver accepts both (old still first: nothing changes yet)
        wait_until(lambda: "key file reloaded" in w.read("receiver.log"), what="receiver reloaded")
        # 2. both files NEW then OLD (one shared file in compose): the sender encrypts with the new
        # key; on the receiver the old key is now line 2, key_index 1.
        put(rkey, new, old)
        put(skey, new, old)
        wait_until(lambda: "key file reloaded" in w.read("sender.log"), what="sender switched")
        switched = decrypts(0)
        wait_until(lambda: decrypts(0) >= switched + 20, what="uploads with the new key")
        settled = decrypts(1)  # old-key uploads that were in flight at the switch, if any
        wait_until(lambda: len(written) >= 250, timeout=60, what="more files")
        self.assertEqual(decrypts(1), settled, "the old key still in use after the sender switched")
        put(rkey, new)  # 3. retire the old key
        put(skey, new)
        stop_flow.set()
        feeder.join()
        wait_until(lambda: len(os.listdir(w.path("output"))) == len(written), timeout=60, what="all delivered")
        for name in written:
            i = int(name[1:])
            self.assertEqual(open(w.path("output", name + ".xml"), "rb").read(),
                             expected_xml({"i": i, "pad": "p" * (i % 50)}), name)
        m = metrics(w.url("/metrics"))
        self.assertFalse([k for k in m if k.startswith("transfer_receiver_rejections_total")], m)
        self.assertEqual(m['transfer_receiver_uploads_total{outcome="accepted",code="201"}'], len(written))
        tok = Fernet(old).encrypt(b"<x/>")
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-F", "file=@-;filename=t",
                            w.url("/upload/oldkey")], input=tok, capture_output=True, timeout=30)
        self.assertEqual(r.stdout, b"422")  # retired
        self.assertEqual(stop(sender), 0)


if __name__ == "__main__":
    unittest.main()
