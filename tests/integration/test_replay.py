"""Replays of a captured signed upload, on the real receiver: a request our sender signed
(X-Transfer-Signature, signed here in Python with the derivation of upload_signature.hpp) is
captured byte for byte, a newer version of the same document is uploaded, and the captured bytes
are sent again within the 300 s window. A replay that lands rolls doc.xml back to the old version.

  - across a restart (SIGTERM, started again on the same port and directories): the replay memory
    is in the process, so the new process has not seen the signature; it refuses every signature
    timed before its start (401), and an honest sender, which signs each attempt afresh, gets
    through on its next attempt;
  - after the replay memory is full (REPLAY_MEMORY signatures newer than the captured one): the
    memory forgets its oldest signature, and then refuses every signature timed at or before the
    one it forgot (503 with Retry-After), rather than taking a forgotten one as new. Once with
    REPLAY_MEMORY=64, and once at the default size, 65,536, with as many signed uploads as it
    takes, sent pipelined on keep-alive connections (time-bound).

Each figure is printed on a line starting with "ATTACK replay", to be quoted in the closing note.
Run against a receiver built before the fix, the same attacks land (201, doc.xml rolled back):
the lines then show it, and the assertions fail.
"""
import hashlib
import hmac
import os
import socket
import time
import unittest

from cryptography.fernet import Fernet

from harness import Workdir, stop, wait_until, write_json
from test_attack import connect, parse_response, read_response
from test_signature import upload_signing_key

V1 = b"<all><doc>version 1</doc></all>\n"
V2 = b"<all><doc>version 2</doc></all>\n"
V3 = b"<all><doc>version 3</doc></all>\n"
FILL = b"<all><fill/></all>\n"
FULL_SIZE = 65536          # the receiver's default REPLAY_MEMORY
FILL_DEADLINE_S = 240      # the real-size fill must finish well inside the 300 s window
BATCH = 256                # requests pipelined per write in the fill


def report(line):
    print("ATTACK replay " + line, flush=True)


class Signer:
    """Makes complete upload requests as our sender does: a multipart body carrying a Fernet token
    of the XML, and a signed head (method, target, Content-Length, plaintext digest, idempotency
    key, transfer id, time)."""

    def __init__(self, key_path):
        self.key = upload_signing_key(key_path)
        with open(key_path, "rb") as fh:
            self.fernet = Fernet(fh.read().split()[0])
        self.tokens = {}

    def request(self, name, xml, t=None):
        token = self.tokens.get(xml)
        if token is None:
            token = self.tokens[xml] = self.fernet.encrypt(xml)
        boundary = os.urandom(16).hex().encode()
        body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' +
                name.encode() + b'.xml.enc"\r\n\r\n' + token + b"\r\n--" + boundary + b"--\r\n")
        target = "/upload/" + name
        sha = hashlib.sha256(xml).hexdigest()
        idempotency_key = "replay-test:" + sha[:16]
        transfer_id = os.urandom(8).hex()
        t = int(time.time()) if t is None else t
        canonical = "\n".join(["transfer-upload-v1", "POST", target, str(len(body)), sha,
                               idempotency_key, transfer_id, str(t)])
        v1 = hmac.new(self.key, canonical.encode(), hashlib.sha256).hexdigest()
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n"
                "X-Transfer-Plaintext-SHA256: %s\r\nIdempotency-Key: %s\r\nX-Transfer-Id: %s\r\n"
                "X-Transfer-Signature: t=%d,v1=%s\r\n\r\n" %
                (target, boundary.decode(), len(body), sha, idempotency_key, transfer_id, t, v1))
        return head.encode() + body


def send(port, data):
    """Sends one request on a connection of its own; (status, headers, body)."""
    s = connect(port, timeout=10)
    try:
        s.sendall(data)
        answer = read_response(s, timeout=10)
    finally:
        s.close()
    if answer is None:
        raise AssertionError("the receiver closed the connection without answering")
    return answer


def fill(port, requests, deadline):
    """Sends `requests` pipelined, BATCH at a time, on keep-alive connections; a connection the
    receiver closes (it does after a refusal) is replaced and what it left unanswered is sent
    again. Returns {status: count}."""
    statuses = {}
    pending = list(requests)
    s = None
    buf = b""
    while pending:
        if time.monotonic() > deadline:
            raise AssertionError("the fill did not finish in time: %d of %d left" % (len(pending), len(requests)))
        if s is None:
            s = connect(port, timeout=30)
            buf = b""
        batch, pending = pending[:BATCH], pending[BATCH:]
        try:
            s.sendall(b"".join(batch))
        except (BrokenPipeError, ConnectionResetError):
            pass
        answered = 0
        closed = False
        while answered < len(batch):
            parsed = parse_response(buf)
            if parsed is not None:
                status, headers, _, buf = parsed
                statuses[status] = statuses.get(status, 0) + 1
                answered += 1
                if headers.get("connection") == "close":
                    closed = True
                    break
                continue
            try:
                chunk = s.recv(1 << 16)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                closed = True
                break
            buf += chunk
        if closed:
            s.close()
            s = None
            pending = batch[answered:] + pending
    if s is not None:
        s.close()
    return statuses


def read_doc(w):
    with open(w.path("output", "doc.xml"), "rb") as fh:
        return fh.read()


def version(content):
    return {V1: "v1", V2: "v2", V3: "v3"}.get(content, "other")


class RestartReplayTest(unittest.TestCase):
    """(a) The replay memory does not survive a restart: the new process refuses what predates it."""

    def setUp(self):
        self.w = Workdir()
        self.signer = Signer(self.w.key)
        self.env = {"UPLOAD_SIGNATURES": "required", "FSYNC": "off"}

    def tearDown(self):
        self.w.cleanup()

    def test_a_captured_upload_is_refused_after_a_restart(self):
        p = self.w.start_receiver(env=self.env)
        port = self.w.port
        # Start at the beginning of a second, so that the capture, the newer version and the
        # restart most likely share one second (the case a start time in whole seconds must cover).
        time.sleep(1 - time.time() % 1)
        captured_t = int(time.time())
        captured = self.signer.request("doc", V1, t=captured_t)
        self.assertEqual(send(port, captured)[0], 201)
        self.assertEqual(send(port, self.signer.request("doc", V2))[0], 201)
        self.assertEqual(read_doc(self.w), V2)

        restart_started = time.time()
        self.assertEqual(stop(p), 0)
        self.w.start_receiver(env=self.env, port=port)
        restarted = time.time()
        status, headers, body = send(port, captured)
        replayed_at = time.time()
        doc = version(read_doc(self.w))
        # Restarted within the second the captured upload was signed and accepted in: the new
        # process must refuse signatures of its own start second.
        same_second = int(restart_started) == captured_t
        report("restart captured_t=%d restarted_in_same_second=%d restart_s=%.2f replay_after_s=%.2f "
               "window_s=300 status=%d doc_after=%s" % (captured_t, same_second, restarted - restart_started,
                                                        replayed_at - captured_t, status, doc))
        self.assertEqual(status, 401, body)
        self.assertIn(b"predates", body)
        self.assertEqual(doc, "v2")

        # An honest client signs afresh: accepted, since the receiver listens only from the second
        # its signatures are accepted (one whose clock lags is refused with 401 until its clock
        # reaches that second, and passes when it signs again then).
        fresh = self.signer.request("doc", V3)
        status = send(port, fresh)[0]
        tries = 1
        while status == 401 and tries < 3:
            time.sleep(1 - time.time() % 1)
            status = send(port, self.signer.request("doc", V3))[0]
            tries += 1
        report("restart honest_status=%d honest_attempts=%d" % (status, tries))
        self.assertEqual(status, 201)
        self.assertEqual(read_doc(self.w), V3)

    def test_our_sender_delivers_right_after_a_restart(self):
        """Our sender keeps delivering across a restart: the restarted receiver listens only from
        the second its signatures are accepted, and a 401 (a clock a little behind) is retried
        with a fresh signature, never a reason to give the file up."""
        p = self.w.start_receiver(env=self.env)
        port = self.w.port
        sender = self.w.start_sender(port=port, MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.05",
                                     RETRY_MAX_DELAY="0.2")
        write_json(self.w.path("input", "before.json"), {"when": "before"})
        wait_until(lambda: os.path.exists(self.w.path("output", "before.xml")), what="before.xml")
        stop(p)
        write_json(self.w.path("input", "after.json"), {"when": "after"})
        self.w.start_receiver(env=self.env, port=port)
        wait_until(lambda: os.path.exists(self.w.path("output", "after.xml")), timeout=30, what="after.xml")
        stop(sender)
        log = self.w.read("sender.log")
        self.assertFalse(os.path.exists(self.w.path("input", ".quarantine", "after.json")), log)
        refusals = log.count("receiver answered 401")
        report("restart our_sender delivered=1 refused_401_first=%d quarantined=0" % refusals)


class FullMemoryReplayTest(unittest.TestCase):
    """(b) A full replay memory does not forget quietly: what it had to drop stays refused."""

    def setUp(self):
        self.w = Workdir()
        self.signer = Signer(self.w.key)

    def tearDown(self):
        self.w.cleanup()

    def attack(self, capacity, env):
        self.w.start_receiver(env=dict({"UPLOAD_SIGNATURES": "required", "FSYNC": "off"}, **env))
        port = self.w.port
        # The captured upload is the oldest signature the receiver holds (signed 2 s ago, well
        # inside the window), so it is the first one a full memory drops; the next (1 s ago) the
        # second. Both after the receiver started (it refuses older ones): 2 s after it listens.
        ready = int(time.time())
        time.sleep(ready + 2 - time.time())
        now = int(time.time())
        captured = self.signer.request("doc", V1, t=now - 2)
        self.assertEqual(send(port, captured)[0], 201)
        self.assertEqual(send(port, self.signer.request("doc", V2, t=now - 1))[0], 201)
        self.assertEqual(read_doc(self.w), V2)

        # `capacity` newer signatures (with the two above, two more than the memory holds).
        requests = [self.signer.request("fill", FILL) for _ in range(capacity)]
        started = time.monotonic()
        statuses = fill(port, requests, started + FILL_DEADLINE_S)
        took = time.monotonic() - started
        status, headers, body = send(port, captured)
        doc = version(read_doc(self.w))
        replay_after_s = time.time() - (now - 2)
        report("full_memory capacity=%d newer_signatures=%d fill_s=%.1f rate_per_s=%.0f fill_statuses=%s "
               "replay_after_s=%.0f window_s=300 status=%d retry_after=%s doc_after=%s" %
               (capacity, capacity + 1, took, capacity / took,
                ",".join("%d:%d" % kv for kv in sorted(statuses.items())), replay_after_s, status,
                headers.get("retry-after", "-"), doc))
        self.assertLess(replay_after_s, 300)  # still inside the window: a real replay attempt
        self.assertEqual(status, 503, body)
        self.assertIsNotNone(headers.get("retry-after"))
        self.assertIn(b"replay memory", body)
        self.assertEqual(doc, "v2")
        self.assertEqual(statuses.get(201, 0), capacity, statuses)

        # An honest upload, signed now, is accepted; or, when the memory is full of signatures of
        # this very second (a burst: the small memory's fill takes a tenth of a second), refused
        # with 503 like the replay, and accepted when signed again in the next second.
        statuses = [send(port, self.signer.request("doc", V3))[0]]
        while statuses[-1] == 503 and len(statuses) < 3:
            time.sleep(1 - time.time() % 1)
            statuses.append(send(port, self.signer.request("doc", V3))[0])
        report("full_memory capacity=%d fresh_statuses=%s" % (capacity, ",".join(map(str, statuses))))
        self.assertEqual(statuses[-1], 201)
        self.assertEqual(read_doc(self.w), V3)

    def test_small_memory(self):
        self.attack(64, {"REPLAY_MEMORY": "64"})

    def test_default_size(self):
        self.attack(FULL_SIZE, {})


if __name__ == "__main__":
    unittest.main()
