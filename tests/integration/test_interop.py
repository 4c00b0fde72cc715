"""Interoperability with the Python reference pair, both ways."""
import json
import os
import shutil
import subprocess
import sys
import unittest

from harness import PEER, Workdir, assert_corpus_outputs, copy_corpus, expected_xml, get, stop, wait_until, write_json


def _split_repeated(xml, item_start):
    """A document whose list holds one record: (text before it, its block, text after)."""
    i = xml.index(item_start)
    j = xml.index("\n\t</rows>", i)
    return xml[:i], xml[i:j + 1], xml[j + 1:]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Skipped only outside CI; in CI (CI=true) a missing reference peer is a failure, not a pass.
@unittest.skipUnless(os.path.isdir(PEER) or os.environ.get("CI") == "true",
                     "Python reference peer not found at %s" % PEER)
class InteropTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()

    def tearDown(self):
        self.w.cleanup()

    def test_python_sender_to_our_receiver(self):
        docs = {"alpha": {"a": 1, "list": [1, "two", None]}, "beta": [{"x": "é<&>"}], "gamma": {"n": 1.5}}
        for name, doc in docs.items():
            write_json(self.w.path("input", name + ".json"), doc)
        self.w.start_receiver()
        env = dict(os.environ, INPUT_DIR=self.w.path("input"), ENCRYPTION_KEY=self.w.key,
                   STATE_DB=self.w.path("sstate", "state.sqlite"), RECEIVER_ADDRESS="127.0.0.1",
                   RECEIVER_PORT=str(self.w.port), DICTTOXML_LOG="0")
        r = subprocess.run(["/usr/bin/python3", os.path.join(PEER, "app", "sender.py"), "--once"],
                           env=env, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        for name in docs:
            # What the Python sender encrypted is what our receiver wrote, byte for byte.
            with open(self.w.path("input", name + ".xml"), "rb") as fh:
                sent = fh.read()
            with open(self.w.path("output", name + ".xml"), "rb") as fh:
                self.assertEqual(fh.read(), sent, name)

    def test_our_sender_to_python_receiver(self):
        names = copy_corpus(self.w.path("input"))
        gunicorn = self._start_python_receiver()
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        assert_corpus_outputs(self, names, self.w.path("output"))
        stop(gunicorn)

    def test_large_files_both_receivers(self):
        """Inputs too large for memory go through the spool, their token encrypted while they are
        converted (on a second thread from 8 MiB): Python's Fernet and our receiver both take
        them, and the XML is dicttoxml's. The oracle converts one record and repeats it, so
        multi-megabyte files need no slow reference run."""
        rec = {"id": 7, "name": "x \u00e9 <&> \U0001F680", "vals": [1.5, None, True, "a\tb"], "nested": {"k": "v", "2": []}}
        cases = {"mid": (3000, None), "big": (110000, None), "bigdup": (110000, 2)}  # ~0.3, ~11 MB
        expected = {}
        for name, (n, dup) in cases.items():
            record = json.dumps(rec, ensure_ascii=False)
            with open(self.w.path("input", name + ".json"), "w", encoding="utf-8") as fh:
                fh.write('{"a": 1, "rows": [' + ",".join([record] * n) + "]" + (', "a": %d' % dup if dup else "") + "}")
            one = expected_xml({"a": dup or 1, "rows": [rec]}).decode()
            head, block, tail = _split_repeated(one, "\t\t<item ")
            expected[name] = (head + block * n + tail).encode()
        self.assertGreater(os.path.getsize(self.w.path("input", "big.json")), 8 << 20)
        self.assertGreater(os.path.getsize(self.w.path("input", "mid.json")), 256 << 10)
        gunicorn = self._start_python_receiver()
        r = self.w.run_sender_once(timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        stop(gunicorn)
        for name, want in expected.items():
            with open(self.w.path("output", name + ".xml"), "rb") as fh:
                self.assertTrue(fh.read() == want, name + ": not dicttoxml's XML (Python receiver)")
            os.unlink(self.w.path("output", name + ".xml"))
        # The same files again, to our receiver (the sender's state is per receiver run: fresh).
        shutil.rmtree(self.w.path("sstate"))
        os.makedirs(self.w.path("sstate"))
        self.w.start_receiver()
        r = self.w.run_sender_once(timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        for name, want in expected.items():
            with open(self.w.path("output", name + ".xml"), "rb") as fh:
                self.assertTrue(fh.read() == want, name + ": not dicttoxml's XML (our receiver)")

    def _start_python_receiver(self):
        """The reference receiver under gunicorn on a free port, healthy; self.w.port points at it."""
        port = free_port()
        env = dict(os.environ, OUTPUT_DIR=self.w.path("output"), DECRYPTION_KEY=self.w.key,
                   SERVER_IP="127.0.0.1", SERVER_PORT=str(port))
        log = open(self.w.path("gunicorn.log"), "wb")
        gunicorn = subprocess.Popen(["/usr/bin/python3", "/usr/bin/gunicorn", "-c", "gunicorn.conf.py", "receiver:app"],
                                    cwd=os.path.join(PEER, "app"), env=env, stdout=log, stderr=log)
        log.close()
        self.w.procs.append(gunicorn)
        self.w.port = port
        wait_until(lambda: self._healthy(), what="gunicorn health")
        return gunicorn

    def _healthy(self):
        try:
            return get(self.w.url("/"))[0] == 200
        except OSError:
            return False

    def test_tokens_python_accepts_our_receiver_accepts(self):
        """Odd but valid token spellings (standard alphabet, whitespace, junk after padding)."""
        from cryptography.fernet import Fernet, InvalidToken
        self.w.start_receiver()
        key = open(self.w.key, "rb").read().strip()
        f = Fernet(key)
        token = f.encrypt(b"<a/>")
        variants = [token, token.replace(b"-", b"+").replace(b"_", b"/"), b"  " + token + b"\r\n",
                    token[:20] + b"\n" + token[20:], token + b"trailing", token.rstrip(b"="), token[:-10], b""]
        import urllib.request
        for i, v in enumerate(variants):
            try:
                f.decrypt(v)
                python_ok = True
            except InvalidToken:
                python_ok = False
            body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t\"\r\n\r\n" + v +
                    b"\r\n--B--\r\n")
            req = urllib.request.Request(self.w.url("/upload/v%d" % i), data=body, method="POST",
                                         headers={"Content-Type": "multipart/form-data; boundary=B"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status = resp.status
            except urllib.error.HTTPError as e:
                status = e.code
            self.assertEqual(status == 201, python_ok, (i, v, status))


if __name__ == "__main__":
    unittest.main()
