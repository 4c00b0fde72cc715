"""The sender signs each upload's request head (X-Transfer-Signature, issue 13), checked here
independently of our C++: a loopback HTTP peer captures the request line, headers and body the
real sender sends, and Python's cryptography (HKDF) and hmac recompute the signature from the key
file. Covers a small file (encrypted while sent), a spooled one (token file), a name that needs
percent-encoding, and retries in quick succession (each attempt signs its own random transfer id,
so attempts in the same second still carry signatures of their own), a 401 among them."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import threading
import time
import unittest

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from harness import Workdir, count_delivered, stop, wait_until, write_json

SIGNATURE = re.compile(r"t=(0|[1-9][0-9]{0,18}),v1=([0-9a-f]{64})")


class CapturingReceiver:
    """Answers uploads with the statuses scripted (then 201) and keeps, for each request, the raw
    request line, the headers as sent (in order, repeats kept) and the body read by its
    Content-Length."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with outer.lock:
                    outer.requests.append({"line": self.requestline, "method": self.command,
                                           "headers": list(self.headers.items()), "body": body})
                    status = outer.script.pop(0) if outer.script else 201
                answer = b'{"msg":"captured","status_code":%d}' % status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def taken(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def upload_signing_key(key_path):
    """RFC 5869 HKDF-SHA256 of the 32 raw Fernet key bytes, no salt, the scheme's info."""
    with open(key_path, "rb") as fh:
        raw = base64.urlsafe_b64decode(fh.read().split()[0])
    assert len(raw) == 32
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"transfer upload signature v1").derive(raw)


def one_header(request, name):
    values = [v for k, v in request["headers"] if k.lower() == name.lower()]
    assert len(values) == 1, (name, request["headers"])
    return values[0]


class SignatureTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.peer = None

    def tearDown(self):
        if self.peer:
            self.peer.close()
        self.w.cleanup()

    def check_signed(self, request, not_before, not_after):
        """Verifies one captured upload the way the receiver must, from the bytes on the wire.
        Returns (t, v1)."""
        method, target, version = request["line"].split(" ")
        self.assertEqual((method, version), ("POST", "HTTP/1.1"))
        value = one_header(request, "X-Transfer-Signature")
        m = SIGNATURE.fullmatch(value)
        self.assertIsNotNone(m, value)
        t, v1 = int(m.group(1)), m.group(2)
        self.assertGreaterEqual(t, int(not_before))
        self.assertLessEqual(t, int(not_after) + 1)
        length = one_header(request, "Content-Length")
        self.assertEqual(int(length), len(request["body"]))  # the length signed is the one sent
        sha = one_header(request, "X-Transfer-Plaintext-SHA256")
        idem = one_header(request, "Idempotency-Key")
        transfer_id = one_header(request, "X-Transfer-Id")
        self.assertRegex(transfer_id, r"\A[0-9a-f]{16}\Z")
        canonical = "\n".join(["transfer-upload-v1", method, target, length, sha, idem, transfer_id,
                               m.group(1)])
        expected = hmac.new(upload_signing_key(self.w.key), canonical.encode(), hashlib.sha256).hexdigest()
        self.assertTrue(hmac.compare_digest(expected, v1), "signature does not verify: %r" % canonical)
        # Not the Fernet signing key used directly.
        with open(self.w.key, "rb") as fh:
            raw = base64.urlsafe_b64decode(fh.read().split()[0])
        self.assertNotEqual(hmac.new(raw[:16], canonical.encode(), hashlib.sha256).hexdigest(), v1)
        # The plaintext digest signed is that of what the token carries.
        token = re.search(rb"\r\n\r\n(.*)\r\n--[0-9a-f]{32}--\r\n$", request["body"], re.S).group(1)
        with open(self.w.key, "rb") as fh:
            xml = Fernet(fh.read().split()[0]).decrypt(token)
        self.assertEqual(hashlib.sha256(xml).hexdigest(), sha)
        return t, v1

    def test_small_and_spooled_uploads_are_signed_over_the_target_sent(self):
        self.peer = CapturingReceiver()
        write_json(self.w.path("input", "books x é.json"), {"title": "small", "n": [1, 2, 3]})
        # Past the in-memory limit (256 KiB): converted to a spooled token, sent from the file.
        write_json(self.w.path("input", "big.json"), {"rows": [{"i": i, "s": "y" * 90} for i in range(3000)]})
        self.assertGreater(os.path.getsize(self.w.path("input", "big.json")), 256 * 1024)
        before = time.time()
        r = self.w.run_sender_once(port=self.peer.port, MIN_FILE_AGE="0")
        after = time.time()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        requests = sorted(self.peer.taken(), key=lambda q: q["line"])
        self.assertEqual([q["line"].split(" ")[1] for q in requests],
                         ["/upload/big", "/upload/books%20x%20%C3%A9"])  # percent-encoded once, as signed
        signatures = [self.check_signed(q, before, after) for q in requests]
        self.assertNotEqual(signatures[0][1], signatures[1][1])

    def test_each_attempt_carries_a_signature_of_its_own(self):
        self.peer = CapturingReceiver(script=[503] * 4)
        write_json(self.w.path("input", "retried.json"), {"a": 1})
        before = time.time()
        p = self.w.start_sender(port=self.peer.port, MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.01",
                                RETRY_MAX_DELAY="0.05")
        wait_until(lambda: len(self.peer.taken()) >= 5, what="five attempts")
        after = time.time()
        stop(p)
        attempts = self.peer.taken()[:5]
        signed = [self.check_signed(q, before, after) for q in attempts]  # each one verifies
        times = [t for t, _ in signed]
        # Five attempts retried within milliseconds: some share a second (a sender that waited
        # for a second of its own per attempt would date them five different seconds), yet each
        # carries a transfer id and so a signature of its own, so a receiver's replay guard never
        # mistakes a retry for a replay.
        self.assertLess(len(set(times)), len(times), times)
        self.assertEqual(len({one_header(q, "X-Transfer-Id") for q in attempts}), 5)
        self.assertEqual(len({v1 for _, v1 in signed}), 5)
        self.assertEqual(len({one_header(q, "Idempotency-Key") for q in attempts}), 1)

    def test_a_401_is_retried_with_a_fresh_signature(self):
        """A 401 refuses a signature (stale, made before the receiver restarted, or by a key it
        has not loaded yet), not the file: the sender retries it, signed afresh, and delivers."""
        self.peer = CapturingReceiver(script=[401, 401])
        write_json(self.w.path("input", "refused.json"), {"a": 1})
        before = time.time()
        p = self.w.start_sender(port=self.peer.port, MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.01",
                                RETRY_MAX_DELAY="0.05")
        wait_until(lambda: count_delivered(self.w.path("sstate", "sender.db")) == 1, what="delivered")
        after = time.time()
        stop(p)
        attempts = self.peer.taken()
        self.assertEqual(len(attempts), 3)
        self.assertEqual(len({self.check_signed(q, before, after)[1] for q in attempts}), 3)
        self.assertFalse(os.path.exists(self.w.path("input", ".quarantine", "refused.json")))
        self.assertIn("receiver answered 401", self.w.read("sender.log"))


if __name__ == "__main__":
    unittest.main()
