"""Hold under attack (issue 13): the receiver stays up, small and clean against clients without
the key.

Real receivers on port 0, loopback only. Every hostile request goes over a raw socket, so no client
library tidies it first. Load comes from one Python thread driving many non-blocking sockets with
`selectors` (LoadLoop), spread over distinct loopback source addresses (all of 127.0.0.0/8 is
loopback on Linux) so that the per-client cap does not mix the scenarios; probes come from
127.0.0.1. Synchronisation is by polling with deadlines; the only timers are the load itself (one
byte a second) and the probe period.

Each measured figure is asserted and printed on one line starting with ATTACK, to be quoted in the
closing note:
  ATTACK memory case=get_body status=413 closed=eof hwm_delta_kib=... sent_mib=...
  ATTACK trickle200 probes=60 p99_ms=... max_ms=... upload_rc=0 ... closed_after_s=9.99..10.01 ...
  ATTACK idle2000 probes=60 p99_ms=... max_ms=... upload_rc=0 ... rss_kib=... receiver_sockets=...

UnroutedUploadBodyTest and SlowBodyTest began as expected failures: two receiver bugs found while
writing these tests (a body on POST /upload/a/b read into memory; unsigned slow bodies holding
every upload worker). They now prove the fixes.
"""
import base64
import heapq
import http.client
import itertools
import math
import os
import resource
import selectors
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from cryptography.fernet import Fernet

from harness import PEER, Workdir, vm_hwm_kib, wait_until, write_json

MIB = 1 << 20
KIB = 1 << 10
HOLD_S = 15.0            # how long each load is held while probes run
PROBE_PERIOD_S = 0.5
PROBE_TIMEOUT_S = 2.0
HEADER_TIMEOUT_S = 10.0  # the receiver's default HEADER_TIMEOUT


# ---------------------------------------------------------------------------------------------
# Small helpers: the process, raw HTTP over sockets.

def raise_nofile():
    """Thousands of sockets need the test process's soft RLIMIT_NOFILE at its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def socket_fds(pid):
    """Sockets the process holds open (its listening socket included)."""
    n = 0
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)).startswith("socket:"):
                n += 1
        except OSError:  # closed meanwhile
            pass
    return n


def connect(port, src="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def parse_response(buf):
    """(status, headers, body, rest) of the first complete response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(buf) < end + 4 + length:
        return None
    return int(lines[0].split()[1]), headers, bytes(buf[end + 4:end + 4 + length]), buf[end + 4 + length:]


def read_response(sock, timeout=5.0):
    """(status, headers, body) of the next response on sock, or None if the peer closed first."""
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        parsed = parse_response(buf)
        if parsed is not None:
            return parsed[:3]
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no complete response within %.0f s (got %r)" % (timeout, buf[:200]))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk


def exchange(port, data, timeout=5.0, src="127.0.0.1"):
    """Sends data on a new connection, reads until the server closes it (or timeout).
    Returns ([(status, headers, body), ...], closed_by_server)."""
    s = connect(port, src, timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        answers = []
        while True:
            parsed = parse_response(buf)
            if parsed is None:
                break
            answers.append(parsed[:3])
            buf = parsed[3]
        return answers, closed
    finally:
        s.close()


def drain(sock):
    """Reads what is there without blocking: (bytes, closed_by_server)."""
    data = b""
    sock.setblocking(False)
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def probe(port, path, src="127.0.0.1", timeout=PROBE_TIMEOUT_S):
    """(status or None, seconds) of GET path on a fresh connection."""
    t0 = time.monotonic()
    status = None
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        status = r.status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        c.close()
    return status, time.monotonic() - t0


def metrics(port):
    """The receiver's /metrics as {name with labels: value}."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def p99(values):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def temp_files(directory):
    """{name: size} of the hidden temporary files in directory."""
    found = {}
    for name in os.listdir(directory):
        if name.startswith(".") and name.endswith(".tmp"):
            try:
                found[name] = os.stat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                pass
    return found


BOUNDARY = b"B"
FORM_START = b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.xml.enc"\r\n\r\n'
FORM_END = b"\r\n--B--\r\n"


def upload_head(name, length, extra=b""):
    return (b"POST /upload/" + name + b" HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % length)


def form_of_length(token, total):
    """A multipart body of exactly `total` bytes: the token as part "file", then a "pad" part the
    receiver ignores."""
    pad_head = b'\r\n--B\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'
    fixed = len(FORM_START) + len(token) + len(pad_head) + len(FORM_END)
    if fixed > total:
        raise ValueError("token too long for %d bytes" % total)
    return FORM_START + token + pad_head + b"p" * (total - fixed) + FORM_END


def write_two_key_file(w):
    """A key file of two keys, the Workdir's own key second (so our sender, which encrypts with
    the Workdir's key, is verified against the second key)."""
    path = w.path("two-keys")
    with open(w.key, "rb") as fh:
        mine = fh.read().strip()
    with open(path, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n" + mine + b"\n")
    os.chmod(path, 0o600)
    return path


def run_python_sender(w, input_dir, port):
    env = dict(os.environ, INPUT_DIR=input_dir, ENCRYPTION_KEY=w.key,
               STATE_DB=w.path("sstate", "python-%d.sqlite" % port), RECEIVER_ADDRESS="127.0.0.1",
               RECEIVER_PORT=str(port), DICTTOXML_LOG="0")
    return subprocess.run(["/usr/bin/python3", os.path.join(PEER, "app", "sender.py"), "--once"],
                          env=env, capture_output=True, timeout=120)


def report(line):
    print("ATTACK " + line, flush=True)


# ---------------------------------------------------------------------------------------------
# The load generator: one thread, many non-blocking sockets.

class Flow:
    """One client connection of a load: the chunks it sends (all at once, or one chunk every
    pace_s), and what it saw."""

    def __init__(self, label, src, chunks=(), pace_s=None, close_on_answer=False):
        self.label = label
        self.src = src
        self.chunks = iter(chunks)
        self.pace_s = pace_s
        self.close_on_answer = close_on_answer
        self.sock = None
        self.pending = memoryview(b"")
        self.sent = 0
        self.sent_all = False
        self.send_failed = False
        self.response = bytearray()
        self.status = None
        self.started = None
        self.answered_at = None
        self.closed_at = None
        self.how = None  # eof | reset | answered | stopped

    def age_at_close(self):
        return self.closed_at - self.started


class LoadLoop:
    """Drives every Flow from one thread with selectors. respawn(flow) -> Flow replaces a flow the
    server closed (or that got its answer) while the loop runs."""

    def __init__(self, port, respawn=None):
        self.port = port
        self.respawn = respawn
        self.sel = selectors.DefaultSelector()
        self.flows = []
        self.open = set()
        self.timers = []
        self.seq = itertools.count()
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def open_flow(self, flow):
        """From the test before start(), or from the loop's own thread."""
        flow.sock = connect(self.port, flow.src)
        flow.sock.setblocking(False)
        flow.started = time.monotonic()
        self.flows.append(flow)
        self.open.add(flow)
        if flow.pace_s is None:
            self.sel.register(flow.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, flow)
        else:
            self.sel.register(flow.sock, selectors.EVENT_READ, flow)
            heapq.heappush(self.timers, (flow.started, next(self.seq), flow))
        return flow

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(30)
        if self.error:
            raise self.error

    def wait_all_closed(self, timeout):
        wait_until(lambda: self.error or not self.open, timeout=timeout, what="every flow closed")
        if self.error:
            raise self.error

    def _finish(self, flow, how, respawns):
        if flow.closed_at is not None:
            return
        flow.closed_at = time.monotonic()
        flow.how = how
        self.sel.unregister(flow.sock)
        flow.sock.close()
        self.open.discard(flow)
        if self.respawn and not self.stopping.is_set():
            respawns.append(flow)

    def _read(self, flow, respawns):
        while flow.closed_at is None:
            try:
                data = flow.sock.recv(65536)
            except BlockingIOError:
                return
            except (ConnectionResetError, ConnectionAbortedError):
                self._finish(flow, "reset", respawns)
                return
            if not data:
                self._finish(flow, "eof" if not flow.send_failed else "reset", respawns)
                return
            if len(flow.response) < 64 * KIB:
                flow.response += data
            if flow.status is None:
                parsed = parse_response(flow.response)
                if parsed is not None:
                    flow.status = parsed[0]
                    flow.answered_at = time.monotonic()
                    if flow.close_on_answer:
                        self._finish(flow, "answered", respawns)

    def _send_failed(self, flow, respawns):
        """The server reset the connection: what it answered before may still be queued here, so
        read it before closing."""
        flow.send_failed = True
        flow.pending = memoryview(b"")
        self.sel.modify(flow.sock, selectors.EVENT_READ, flow)
        self._read(flow, respawns)
        if flow.closed_at is None:
            self._finish(flow, "reset", respawns)

    def _write(self, flow, respawns):
        while True:
            if not flow.pending:
                chunk = next(flow.chunks, None)
                if chunk is None:
                    flow.sent_all = True
                    self.sel.modify(flow.sock, selectors.EVENT_READ, flow)
                    return
                flow.pending = memoryview(chunk)
            try:
                n = flow.sock.send(flow.pending)
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError):
                self._send_failed(flow, respawns)
                return
            flow.sent += n
            flow.pending = flow.pending[n:]

    def _paced(self, flow, respawns):
        chunk = next(flow.chunks, None)
        if chunk is None:
            flow.sent_all = True
            return
        try:
            flow.sent += flow.sock.send(chunk)
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self._send_failed(flow, respawns)
            return
        heapq.heappush(self.timers, (time.monotonic() + flow.pace_s, next(self.seq), flow))

    def _run(self):
        try:
            while not self.stopping.is_set():
                respawns = []
                now = time.monotonic()
                while self.timers and self.timers[0][0] <= now:
                    _, _, flow = heapq.heappop(self.timers)
                    if flow.closed_at is None:
                        self._paced(flow, respawns)
                timeout = 0.05
                if self.timers:
                    timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
                for key, mask in self.sel.select(timeout):
                    flow = key.data
                    if flow.closed_at is None and mask & selectors.EVENT_READ:
                        self._read(flow, respawns)
                    if flow.closed_at is None and mask & selectors.EVENT_WRITE:
                        self._write(flow, respawns)
                for gone in respawns:
                    if not self.stopping.is_set():
                        self.open_flow(self.respawn(gone))
        except Exception as e:  # reported by stop() / wait_all_closed()
            self.error = e
        finally:
            for flow in list(self.open):
                flow.closed_at = time.monotonic()
                flow.how = "stopped"
                flow.sock.close()
            self.open.clear()


class Prober(threading.Thread):
    """GET / and GET /readyz on fresh connections from 127.0.0.1 every PROBE_PERIOD_S for
    HOLD_S; also samples the receiver's VmRSS and socket count, and the load's open flows."""

    def __init__(self, port, pid, loop):
        super().__init__(daemon=True)
        self.port, self.pid, self.loop = port, pid, loop
        self.results = []  # (path, status, seconds)
        self.samples = []  # (VmRSS KiB, receiver sockets, flows open)
        self.done = threading.Event()

    def run(self):
        start = time.monotonic()
        tick = start
        while tick < start + HOLD_S:
            for path in ("/", "/readyz"):
                status, seconds = probe(self.port, path)
                self.results.append((path, status, seconds))
            self.samples.append((proc_status_kib(self.pid, "VmRSS"), socket_fds(self.pid), len(self.loop.open)))
            tick += PROBE_PERIOD_S
            self.done.wait(max(0.0, tick - time.monotonic()))  # the probe period, not a synchronisation
        self.ended = time.monotonic()

    def figures(self):
        """(probes, p99 ms, max ms, the probes not answered 200)."""
        latencies = [t for _, _, t in self.results]
        bad = [(p, s, round(t, 3)) for p, s, t in self.results if s != 200]
        return len(self.results), p99(latencies) * 1000, max(latencies) * 1000, bad

    def assert_answered(self, test, label):
        n, p99_ms, _, bad = self.figures()
        test.assertGreaterEqual(n, 2 * int(HOLD_S / PROBE_PERIOD_S) - 2)
        test.assertEqual(bad, [], "%s: probes not answered 200" % label)
        test.assertLess(p99_ms, 1000.0, "%s: probe p99 %.1f ms" % (label, p99_ms))


class Hold:
    """The probes for HOLD_S while a loop holds its load, and the real sender run once (--once,
    one JSON file in its input) during it."""

    def __init__(self, w, proc, loop, doc_name):
        self.prober = Prober(w.port, proc.pid, loop)
        self.prober.start()
        t0 = time.monotonic()
        self.sender = w.run_sender_once()
        self.sender_done = time.monotonic()
        self.sender_s = self.sender_done - t0
        self.prober.join(HOLD_S + 30)
        self.arrived = os.path.exists(w.path("output", doc_name + ".xml"))

    def upload_figure(self):
        return "upload_rc=%d upload_s=%.2f upload_arrived=%d" % (self.sender.returncode, self.sender_s, self.arrived)

    def assert_upload(self, test):
        test.assertFalse(self.prober.is_alive(), "the probes did not end")
        test.assertEqual(self.sender.returncode, 0, self.sender.stderr.decode(errors="replace")[-2000:])
        test.assertTrue(self.arrived, "the real upload did not arrive")
        test.assertLess(self.sender_done, self.prober.ended, "the real upload finished only after the load")


# ---------------------------------------------------------------------------------------------
# 1. Memory: each hostile request, then 50 at once.

ZEROS = memoryview(bytes(256 * KIB))
GARBAGE = memoryview(b"garbage!" * (32 * KIB))  # 256 KiB, no boundary in it
BIG = 256 * MIB


def body_chunks(head, block, total):
    yield head
    left = total
    while left > 0:
        n = min(left, len(block))
        yield block[:n]
        left -= n


def chunked_chunks(head, total):
    yield head
    frame = b"%x\r\n" % len(ZEROS) + bytes(ZEROS) + b"\r\n"
    for _ in range(total // len(ZEROS)):
        yield frame
    yield b"0\r\n\r\n"


def header_flood_chunks(lines=20000, line_bytes=8000):
    yield b"GET / HTTP/1.1\r\nHost: x\r\n"
    for first in range(0, lines, 32):
        yield b"".join(b"X-Flood-%05d: " % i + b"a" * line_bytes + b"\r\n"
                       for i in range(first, min(lines, first + 32)))
    yield b"\r\n"


# name: (expected statuses, the chunks a client sends; each capped at its stated size)
HOSTILE = {
    "get_body": ({413}, lambda: body_chunks(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG,
                                            ZEROS, BIG)),
    # PUT is no upload method: refused as a body on a route that takes none (405 would also do).
    "put_upload": ({413, 405}, lambda: body_chunks(
        b"PUT /upload/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG, ZEROS, BIG)),
    "multipart_garbage": ({400}, lambda: body_chunks(
        b"POST /upload/x HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZzY\r\n"
        b"Content-Length: %d\r\n\r\n" % (200 * MIB), GARBAGE, 200 * MIB)),
    "header_flood": ({431}, header_flood_chunks),
    "chunked_get": ({413}, lambda: chunked_chunks(
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", BIG)),
}


class MemoryTest(unittest.TestCase):
    """Peak RSS (VmHWM) of a receiver on default settings: each hostile request adds at most
    16 MiB, fifty of them at once at most 64 MiB, measured from after a warm-up."""

    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.proc = cls.w.start_receiver()
        with open(cls.w.key, "rb") as fh:
            fernet = Fernet(fh.read().strip())
        # Warm-up: the health, readiness, upload and refusal paths once each.
        for path in ("/", "/readyz", "/metrics"):
            status, _ = probe(cls.w.port, path)
            assert status == 200, (path, status)
        token = fernet.encrypt(b"<all><warm>1</warm></all>")
        body = FORM_START + token + FORM_END
        answers, _ = exchange(cls.w.port, upload_head(b"warm", len(body), b"Connection: close\r\n") + body)
        assert [a[0] for a in answers] == [201], answers
        answers, _ = exchange(cls.w.port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert [a[0] for a in answers] == [413], answers
        cls.baseline = vm_hwm_kib(cls.proc.pid)

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def run_flows(self, names, timeout=120):
        loop = LoadLoop(self.w.port)
        for i, name in enumerate(names):
            # Distinct source addresses: 50 at once stay well under the per-client cap anyway.
            loop.open_flow(Flow(name, "127.0.1.%d" % (1 + i % 200), HOSTILE[name][1]()))
        loop.start()
        try:
            loop.wait_all_closed(timeout)
        finally:
            loop.stop()
        return loop.flows

    def single(self, name):
        before = vm_hwm_kib(self.proc.pid)
        [flow] = self.run_flows([name])
        delta = vm_hwm_kib(self.proc.pid) - before
        report("memory case=%s status=%s closed=%s hwm_delta_kib=%d sent_mib=%.1f hwm_kib=%d" %
               (name, flow.status, flow.how, delta, flow.sent / MIB, vm_hwm_kib(self.proc.pid)))
        self.assertIn(flow.status, HOSTILE[name][0], bytes(flow.response[:300]))
        self.assertIn(flow.how, ("eof", "reset"), "the server did not close the connection")
        self.assertLessEqual(delta, 16 * 1024, "%s raised VmHWM by %d KiB" % (name, delta))
        # Refused before it was read: the server drops at most 1 MiB after its answer, so only
        # that and what the socket buffers held ever left the client.
        self.assertLess(flow.sent, 32 * MIB, "%s: %d bytes were taken" % (name, flow.sent))
        self.assertEqual(self.proc.poll(), None)

    def test_1_body_on_get(self):
        self.single("get_body")

    def test_2_body_on_put_upload(self):
        self.single("put_upload")

    def test_3_malformed_multipart(self):
        self.single("multipart_garbage")

    def test_4_header_flood(self):
        self.single("header_flood")

    def test_5_chunked_body_on_get(self):
        self.single("chunked_get")

    def test_6_fifty_at_once(self):
        names = [name for name in HOSTILE for _ in range(10)]
        flows = self.run_flows(names)
        hwm = vm_hwm_kib(self.proc.pid)
        delta = hwm - self.baseline
        statuses = {}
        for f in flows:
            statuses.setdefault(f.label, []).append(f.status)
        answered = sum(1 for f in flows if f.status is not None)
        report("memory case=fifty_at_once flows=%d answered=%d hwm_delta_kib=%d hwm_kib=%d sent_mib=%.1f statuses=%s" %
               (len(flows), answered, delta, hwm, sum(f.sent for f in flows) / MIB,
                " ".join("%s:%s" % (k, ",".join(sorted(set(str(s) for s in v)))) for k, v in statuses.items())))
        self.assertEqual(len(flows), 50)
        for f in flows:
            # Under load a reset may come before the answer is read; any answer is the right one.
            self.assertTrue(f.status is None or f.status in HOSTILE[f.label][0], (f.label, f.status))
            self.assertIn(f.how, ("eof", "reset"), f.label)
        self.assertGreaterEqual(answered, 45, "only %d of 50 saw their answer" % answered)
        self.assertLessEqual(delta, 64 * 1024, "fifty at once raised VmHWM by %d KiB" % delta)
        self.assertEqual(self.proc.poll(), None)
        self.assertEqual(probe(self.w.port, "/")[0], 200)


class UnroutedUploadBodyTest(unittest.TestCase):
    """Every POST under /upload/ is streamed by the upload route, whatever its name: /upload/a/b,
    /upload/ and /upload/a%2Fb (which cpp-httplib decodes to a/b) are refused by the name rules
    before the body is read. (Found writing these tests: no route matched those paths, and
    cpp-httplib read the whole body into memory, up to MAX_UPLOAD_BYTES, before its 404; 256 MiB
    raised VmHWM by 256 MiB.)"""

    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.proc = cls.w.start_receiver()
        assert probe(cls.w.port, "/")[0] == 200

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def test_body_on_upload_path_with_no_route(self):
        size = 64 * MIB
        for path in (b"/upload/a/b", b"/upload/", b"/upload/a%2Fb"):
            head = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
                    b"Content-Length: %d\r\n\r\n" % size)
            before = vm_hwm_kib(self.proc.pid)
            loop = LoadLoop(self.w.port)
            flow = loop.open_flow(Flow("upload_bad_path", "127.0.0.1", body_chunks(head, ZEROS, size),
                                       close_on_answer=True))
            loop.start()
            try:
                loop.wait_all_closed(120)
            finally:
                loop.stop()
            delta = vm_hwm_kib(self.proc.pid) - before
            report("memory case=post_%s status=%s hwm_delta_kib=%d sent_mib=%.1f" %
                   (path.decode(), flow.status, delta, flow.sent / MIB))
            self.assertEqual(flow.status, 400, path)
            self.assertLess(flow.sent, 32 * MIB, "the whole body was read for %r" % path)
            self.assertLessEqual(delta, 16 * 1024, "POST %r raised VmHWM by %d KiB" % (path, delta))


# ---------------------------------------------------------------------------------------------
# 2. and 3. Slow heads and idle connections hold no worker.

TRICKLE_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200  # never completes


class SlowHeadTest(unittest.TestCase):
    """200 clients trickling a head at one byte per second, held for 15 s (each one the server
    times out is replaced at once): probes answer, a real upload completes, and the head has one
    deadline for the whole head (HEADER_TIMEOUT, 10 s): every trickler is answered 408 (or closed)
    about 10 s after it connected, never after 12 s."""

    CLIENTS = 200

    def setUp(self):
        raise_nofile()
        self.w = Workdir()
        write_json(self.w.path("input", "during-trickle.json"), {"load": "trickle", "n": [1, 2, 3]})
        self.proc = self.w.start_receiver()

    def tearDown(self):
        self.w.cleanup()

    def test_trickling_heads(self):
        def trickler(src):
            return Flow("trickle", src, (bytes([b]) for b in TRICKLE_HEAD), pace_s=1.0, close_on_answer=True)

        loop = LoadLoop(self.w.port, respawn=lambda gone: trickler(gone.src))
        for i in range(self.CLIENTS):
            loop.open_flow(trickler("127.0.0.%d" % (10 + i % 10)))  # 20 per address
        first = list(loop.flows)
        loop.start()
        try:
            wait_until(lambda: socket_fds(self.proc.pid) > self.CLIENTS, what="the tricklers accepted")
            hold = Hold(self.w, self.proc, loop, "during-trickle")
            # The first generation must all have timed out by now (15 s > HEADER_TIMEOUT).
            wait_until(lambda: all(f.closed_at is not None for f in first), timeout=5,
                       what="the first tricklers closed")
        finally:
            loop.stop()
        end = time.monotonic()
        n, p99_ms, max_ms, _ = hold.prober.figures()
        by_server = [f for f in loop.flows if f.how in ("answered", "eof", "reset")]
        ages = [f.age_at_close() for f in by_server] or [0.0]
        got_408 = sum(1 for f in by_server if f.status == 408)
        head_timeouts = metrics(self.w.port)["transfer_receiver_head_timeouts_total"]
        report("trickle200 probes=%d p99_ms=%.1f max_ms=%.1f %s closed_by_server=%d got_408=%d "
               "head_timeouts_total=%d closed_after_s=%.2f..%.2f bytes_each_max=%d flows=%d hwm_kib=%d" %
               (n, p99_ms, max_ms, hold.upload_figure(), len(by_server), got_408, head_timeouts, min(ages),
                max(ages), max([0] + [f.sent for f in by_server]), len(loop.flows), vm_hwm_kib(self.proc.pid)))
        self.assertGreaterEqual(head_timeouts, len(by_server))
        hold.prober.assert_answered(self, "trickle200")
        hold.assert_upload(self)
        for f in first:
            self.assertIn(f.how, ("answered", "eof", "reset"), "a trickler was still open after 15 s")
        for f in loop.flows:
            if f.how == "stopped":  # still trickling when the load stopped: must be young
                self.assertLess(f.closed_at - f.started, 12.0, "a trickler was still open after 12 s")
                continue
            self.assertIn(f.status, (408, None), bytes(f.response[:200]))
            self.assertGreaterEqual(f.age_at_close(), HEADER_TIMEOUT_S - 0.5, "closed before HEADER_TIMEOUT")
            self.assertLessEqual(f.age_at_close(), 12.0, "closed %.1f s after it connected" % f.age_at_close())
        self.assertGreater(end - min(f.started for f in first), 12.0)
        self.assertEqual(self.proc.poll(), None)


class IdleFloodTest(unittest.TestCase):
    """2,000 connections that send nothing (each one the server closes after HEADER_TIMEOUT is
    reopened at once), from 10 source addresses, held for 15 s: probes answer, a real upload
    completes, and the receiver's RSS with all of them open stays under 64 MiB."""

    CONNS = 2000
    ADDRESSES = 10

    def setUp(self):
        raise_nofile()
        self.w = Workdir()
        write_json(self.w.path("input", "during-idle.json"), {"load": "idle", "n": [1, 2, 3]})
        self.proc = self.w.start_receiver()

    def tearDown(self):
        self.w.cleanup()

    def test_idle_connections(self):
        def idle(src):
            return Flow("idle", src)

        loop = LoadLoop(self.w.port, respawn=lambda gone: idle(gone.src))
        per_address = self.CONNS // self.ADDRESSES
        self.assertLessEqual(per_address, 200)
        for i in range(self.CONNS):
            loop.open_flow(idle("127.0.0.%d" % (20 + i % self.ADDRESSES)))
        loop.start()
        try:
            wait_until(lambda: socket_fds(self.proc.pid) > self.CONNS, timeout=30,
                       what="%d idle connections accepted" % self.CONNS)
            rss_all_open = proc_status_kib(self.proc.pid, "VmRSS")
            hold = Hold(self.w, self.proc, loop, "during-idle")
        finally:
            loop.stop()
        n, p99_ms, max_ms, _ = hold.prober.figures()
        samples = hold.prober.samples
        full = [rss for rss, fds, _ in samples if fds > self.CONNS]
        rss_max = max([rss_all_open] + full)
        opened = len(loop.flows)
        head_timeouts = metrics(self.w.port)["transfer_receiver_head_timeouts_total"]
        report("idle2000 probes=%d p99_ms=%.1f max_ms=%.1f %s rss_kib=%d rss_kib_max=%d hwm_kib=%d "
               "samples_all_open=%d/%d receiver_sockets=%d..%d client_open_min=%d reopened=%d head_timeouts_total=%d" %
               (n, p99_ms, max_ms, hold.upload_figure(), rss_all_open, rss_max, vm_hwm_kib(self.proc.pid),
                len(full), len(samples), min(s[1] for s in samples), max(s[1] for s in samples),
                min(s[2] for s in samples), opened - self.CONNS, head_timeouts))
        hold.prober.assert_answered(self, "idle2000")
        hold.assert_upload(self)
        self.assertLess(rss_max, 64 * 1024, "VmRSS %d KiB with %d idle connections" % (rss_max, self.CONNS))
        # The hold outlasted HEADER_TIMEOUT: the server closed the silent ones and they came back.
        self.assertGreaterEqual(opened - self.CONNS, self.CONNS, "the idle connections were not timed out")
        self.assertGreaterEqual(head_timeouts, self.CONNS)
        # Most samples saw every connection open in the receiver (all but those taken while the
        # server was closing the timed-out ones and they were coming back).
        self.assertGreaterEqual(len(full), len(samples) // 2, "the load was not held")
        self.assertEqual(self.proc.poll(), None)


class SlowBodyTest(unittest.TestCase):
    """Keyless clients that send a valid upload head and then their body a byte a second (the
    default UPLOAD_SIGNATURES=optional, so they pass the gate unsigned) take at most half of the
    upload workers, and no longer than READ_TIMEOUT plus what MIN_BODY_RATE allows for the bytes
    they sent; signed uploads are served all the while. (Found writing these tests: READ_TIMEOUT
    bounded each read only, so THREADS such clients stopped every upload.) Here THREADS=4,
    READ_TIMEOUT=3 and 8 slow bodies: 2 are admitted, 6 get 503 with Retry-After at once."""

    def setUp(self):
        self.w = Workdir()
        write_json(self.w.path("input", "signed.json"), {"during": "slow bodies"})
        self.proc = self.w.start_receiver(env={"THREADS": "4", "READ_TIMEOUT": "3"})

        def slow_body(i):
            return itertools.chain([upload_head(b"slow%d" % i, 1000) + b"-"], itertools.repeat(b"-", 999))

        self.loop = LoadLoop(self.w.port)
        self.flows = [self.loop.open_flow(Flow("slow_body", "127.0.0.40", slow_body(i), pace_s=1.0))
                      for i in range(8)]
        self.t0 = time.monotonic()
        self.loop.start()
        self.addCleanup(self.w.cleanup)
        self.addCleanup(self.loop.stop)

    def test_slow_bodies_leave_uploads_served(self):
        wait_until(lambda: sum(1 for f in self.flows if f.status == 503) >= 6, timeout=10,
                   what="the unsigned uploads beyond half the workers refused")
        refused = [f for f in self.flows if f.status == 503]
        self.assertEqual(len(refused), 6)
        self.assertTrue(all(b"retry-after:" in bytes(f.response).lower() for f in refused))
        # A signed upload (our sender) is served while two slow bodies hold their workers.
        t_upload = time.monotonic()
        r = self.w.run_sender_once(timeout=60)
        upload_s = time.monotonic() - t_upload
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-2000:])
        self.assertTrue(os.path.exists(self.w.path("output", "signed.xml")))
        # The two admitted trickles are cut off: READ_TIMEOUT (3 s) of grace, then 1 KiB/s.
        wait_until(lambda: all(f.closed_at or f.status for f in self.flows), timeout=20,
                   what="the slow bodies cut off")
        cut = [f for f in self.flows if f.status != 503]
        ages = [(f.answered_at or f.closed_at) - f.started for f in cut]
        report("slow_body threads=4 slow_bodies=8 refused_503=%d admitted=%d cut_after_s=%s statuses=%s "
               "signed_upload_s=%.2f" % (len(refused), len(cut), ",".join("%.1f" % a for a in ages),
                                        [f.status for f in cut], upload_s))
        self.assertEqual(len(cut), 2)
        for age in ages:
            self.assertLess(age, 3 + 1 + 2, "a trickling body held its worker for %.1f s" % age)
        self.assertLess(upload_s, 10)
        self.assertEqual(self.proc.poll(), None)


# ---------------------------------------------------------------------------------------------
# 4. Connection caps.

GET_KEEP_ALIVE = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class ConnectionCapTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.w.cleanup()

    def test_per_client_cap(self):
        self.w.start_receiver(env={"MAX_CONNECTIONS_PER_CLIENT": "20", "HEADER_TIMEOUT": "60"})
        conns = [connect(self.w.port, "127.0.0.5") for _ in range(25)]
        self.socks += conns
        seen = [[b"", False] for _ in conns]

        def refused():
            for i, s in enumerate(conns):
                if not seen[i][1]:
                    data, closed = drain(s)
                    seen[i][0] += data
                    seen[i][1] = closed
            return sum(1 for _, closed in seen if closed) >= 5

        wait_until(refused, timeout=10, what="five connections refused")
        # Another client is not affected; and a round trip later nothing else was closed.
        self.assertEqual(probe(self.w.port, "/")[0], 200)
        refused()
        closed = [i for i, (_, c) in enumerate(seen) if c]
        self.assertEqual(closed, list(range(20, 25)))
        for i in closed:
            status, headers, body, _ = parse_response(seen[i][0])
            self.assertEqual(status, 429)
            self.assertIn("retry-after", headers)
            self.assertIn(b'"status_code":429', body)
        for i in range(20):
            self.assertEqual(seen[i], [b"", False], "connection %d of the first 20" % i)
        over = metrics(self.w.port)["transfer_receiver_connections_over_client_limit_total"]
        self.assertEqual(over, 5)
        report("cap per_client=20 opened=25 open=%d refused_429=%d over_client_limit_total=%d other_client=200" %
               (25 - len(closed), len(closed), over))
        # The cap counts open connections: one closed, the client gets one back.
        conns[0].close()
        wait_until(lambda: probe(self.w.port, "/", src="127.0.0.5")[0] == 200, timeout=10,
                   what="a slot freed for 127.0.0.5")

    def test_total_cap_closes_oldest_idle(self):
        self.w.start_receiver(env={"MAX_CONNECTIONS": "50", "KEEP_ALIVE_TIMEOUT": "60"})
        olds = []
        for _ in range(50):
            s = connect(self.w.port)
            self.socks.append(s)
            s.sendall(GET_KEEP_ALIVE)
            self.assertEqual(read_response(s)[0], 200)
            olds.append(s)
        news = []
        for _ in range(10):
            s = connect(self.w.port)
            self.socks.append(s)
            s.sendall(GET_KEEP_ALIVE)
            answer = read_response(s)
            self.assertIsNotNone(answer, "a new connection was closed instead of an idle one")
            self.assertEqual(answer[0], 200)
            news.append(s)
        state = {}

        def ten_closed():
            for i, s in enumerate(olds):
                if not state.get(i):
                    state[i] = drain(s)[1]
            return sum(state.values()) >= 10

        wait_until(ten_closed, timeout=10, what="ten idle connections closed")
        closed = sorted(i for i, c in state.items() if c)
        self.assertEqual(closed, list(range(10)), "not the ten oldest idle connections")
        for s in news:
            self.assertEqual(drain(s), (b"", False))
            s.sendall(GET_KEEP_ALIVE)  # still served on the same connection
            self.assertEqual(read_response(s)[0], 200)
        report("cap total=50 idle=50 new=10 served_new=10 closed_oldest=%s" % ",".join(map(str, closed)))


# ---------------------------------------------------------------------------------------------
# 5. Strict framing.

FRAMING = [
    # name, request, status
    ("two different Content-Length",
     b"POST /upload/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("two equal Content-Length",
     b"POST /upload/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("Content-Length and Transfer-Encoding with a body on GET /",
     b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n", 400),
    ("control character in a header name", b"GET / HTTP/1.1\r\nHost: x\r\nX-\x01A: b\r\n\r\n", 400),
    ("header line without a colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A b\r\n\r\n", 400),
    ("space inside a header name", b"GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400),
    ("whitespace before the colon", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 400),
    ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("Transfer-Encoding: gzip", b"POST /upload/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("header line over 8 KiB", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("request line over 8 KiB", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("101 header fields", b"GET / HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", 431),
]


class FramingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.proc = cls.w.start_receiver()

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def test_ambiguous_framing_refused_and_closed(self):
        for name, request, want in FRAMING:
            with self.subTest(name):
                answers, closed = exchange(self.w.port, request)
                self.assertEqual([a[0] for a in answers], [want], answers)
                status, headers, body = answers[0]
                self.assertEqual(headers.get("connection"), "close")
                self.assertIn(b'"status_code":%d' % want, body)
                self.assertTrue(closed, "the connection was left open")
        self.assertEqual(probe(self.w.port, "/")[0], 200)
        report("framing cases=%d all_refused_and_closed=1" % len(FRAMING))

    def test_pipelined_requests_answered_in_order(self):
        answers, closed = exchange(self.w.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                                                b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                                                b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual([a[0] for a in answers], [200, 200, 404], answers)
        self.assertIn(b"Server is healthy", answers[0][2])
        self.assertTrue(closed, "not closed after Connection: close")
        report("pipelining statuses=200,200,404 closed=1")


# ---------------------------------------------------------------------------------------------
# 6. Disk before authentication.

def fake_token(length):
    """`length` characters that start like a Fernet token (gAAAAA...) and never verify."""
    raw = b"\x80" + bytes(8) + os.urandom(length * 3 // 4 - 9)
    token = base64.urlsafe_b64encode(raw)
    assert len(token) == length and token.startswith(b"gAAAAA")
    return token


class DiskBeforeAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.opt = Workdir()  # two keys, UPLOAD_SIGNATURES=optional (the default)
        cls.opt.start_receiver(env={"DECRYPTION_KEY": write_two_key_file(cls.opt)})
        cls.req = Workdir()  # two keys, signatures required
        cls.req.start_receiver(env={"DECRYPTION_KEY": write_two_key_file(cls.req), "UPLOAD_SIGNATURES": "required"})
        cls.bud = Workdir()  # one key, UNSIGNED_UPLOAD_BUDGET=1M
        cls.bud.start_receiver(env={"UNSIGNED_UPLOAD_BUDGET": "1M"})

    @classmethod
    def tearDownClass(cls):
        for w in (cls.opt, cls.req, cls.bud):
            w.cleanup()

    def test_fake_token_keeps_one_temp_file_no_larger_than_sent(self):
        out = self.opt.path("output")
        body = FORM_START + fake_token(30 * MIB) + FORM_END
        s = connect(self.opt.port, timeout=30)
        try:
            s.sendall(upload_head(b"fake", len(body)))
            sent = 0
            most_files = 0
            largest = 0
            for off in range(0, len(body), MIB):
                piece = body[off:off + MIB]
                s.sendall(piece)
                sent += len(piece)
                if sent >= 15 * MIB and largest == 0:
                    # Halfway: the receiver is storing the ciphertext; wait to see it on disk.
                    wait_until(lambda: any(temp_files(out).values()), timeout=10, what="the temporary file")
                temps = temp_files(out)
                most_files = max(most_files, len(temps))
                largest = max([largest] + list(temps.values()))
                self.assertLessEqual(len(temps), 1, "temporary files %s after %d bytes" % (temps, sent))
                for name, size in temps.items():
                    self.assertLessEqual(size, sent, "%s holds %d bytes after %d sent" % (name, size, sent))
            answer = read_response(s, timeout=30)
        finally:
            s.close()
        self.assertIsNotNone(answer)
        self.assertEqual(answer[0], 422, answer)
        wait_until(lambda: not temp_files(out), timeout=5, what="the temporary file removed")
        self.assertFalse(os.path.exists(os.path.join(out, "fake.xml")))
        self.assertGreater(largest, 0)
        report("disk fake_token_mib=30 keys=2 temp_files_max=%d temp_bytes_max=%d sent=%d status=422 left=0" %
               (most_files, largest, sent))

    def test_required_signatures_refuse_before_the_body(self):
        out = self.req.path("output")
        body = FORM_START + fake_token(30 * MIB) + FORM_END
        s = connect(self.req.port)
        try:
            s.sendall(upload_head(b"fake", len(body)))
            answer = read_response(s, timeout=5)  # no byte of body sent
            # What a client still pushes after the refusal is dropped, never stored.
            dropped = 0
            try:
                for off in range(0, 4 * MIB, 256 * KIB):
                    s.sendall(body[off:off + 256 * KIB])
                    dropped += 256 * KIB
                    self.assertEqual(temp_files(out), {})
            except (BrokenPipeError, ConnectionResetError):
                pass
        finally:
            s.close()
        self.assertIsNotNone(answer)
        status, headers, payload = answer
        self.assertEqual(status, 401, payload)
        self.assertEqual(headers.get("www-authenticate"), "X-Transfer-Signature")
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual([n for n in os.listdir(out)], [])
        # Our sender signs: it still delivers here.
        write_json(self.req.path("input", "signed.json"), {"signed": True})
        r = self.req.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-2000:])
        self.assertTrue(os.path.exists(os.path.join(out, "signed.xml")))
        report("disk required unsigned_status=401 body_bytes_sent_before_answer=0 pushed_after=%d temp_files=0 "
               "our_sender=delivered" % dropped)

    @unittest.skipUnless(os.path.isdir(PEER) or os.environ.get("CI") == "true",
                         "Python reference peer not found at %s" % PEER)
    def test_python_sender_refused_when_required_delivers_when_optional(self):
        for w, name in ((self.req, "pyreq"), (self.opt, "pyopt")):
            os.makedirs(w.path(name), exist_ok=True)
            write_json(w.path(name, name + ".json"), {"from": "python", "to": name})
        r = run_python_sender(self.req, self.req.path("pyreq"), self.req.port)
        log = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 1, log[-2000:])
        self.assertIn("HTTP 401", log)
        self.assertFalse(os.path.exists(self.req.path("output", "pyreq.xml")))
        r = run_python_sender(self.opt, self.opt.path("pyopt"), self.opt.port)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace")[-2000:])
        with open(self.opt.path("pyopt", "pyopt.xml"), "rb") as fh:
            sent = fh.read()
        with open(self.opt.path("output", "pyopt.xml"), "rb") as fh:
            self.assertEqual(fh.read(), sent)
        report("disk python_sender required=401 optional=201")

    def test_unsigned_budget(self):
        w = self.bud
        with open(w.key, "rb") as fh:
            fernet = Fernet(fh.read().strip())
        out = w.path("output")
        first = form_of_length(fernet.encrypt(b"<all>" + b"1" * 500000 + b"</all>"), 700000)
        third = form_of_length(fernet.encrypt(b"<all>" + b"3" * 500000 + b"</all>"), 700000)
        s1 = connect(w.port, timeout=10)
        try:
            s1.sendall(upload_head(b"first", len(first)) + first[:350000])
            # The first is admitted and streaming to its temporary file.
            wait_until(lambda: temp_files(out), timeout=10, what="the first upload under way")
            answers, closed = exchange(w.port, upload_head(b"second", 700000), timeout=5)  # head only
            self.assertEqual([a[0] for a in answers], [503], answers)
            retry_after = answers[0][1].get("retry-after")
            self.assertTrue(retry_after and int(retry_after) >= 1, answers[0][1])
            self.assertTrue(closed)
            s1.sendall(first[350000:])
            answer = read_response(s1, timeout=30)
        finally:
            s1.close()
        self.assertEqual(answer[0], 201, answer)
        answers, _ = exchange(w.port, upload_head(b"third", len(third), b"Connection: close\r\n") + third, timeout=30)
        self.assertEqual([a[0] for a in answers], [201], answers)
        # One alone over the whole budget: 413 before its body.
        answers, _ = exchange(w.port, upload_head(b"huge", 2 * MIB), timeout=5)
        self.assertEqual([a[0] for a in answers], [413], answers)
        self.assertEqual(sorted(n for n in os.listdir(out) if not n.startswith(".")), ["first.xml", "third.xml"])
        report("disk budget=1M first=201 second=503 retry_after=%s third=201 over_budget=413" % retry_after)

    def test_min_free_bytes(self):
        mountpoint = tempfile.mkdtemp(prefix="transfer-tmpfs-")
        self.addCleanup(os.rmdir, mountpoint)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mountpoint],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a 32 MiB tmpfs (needs root or CAP_SYS_ADMIN): %s" %
                          r.stderr.decode(errors="replace").strip())
        self.addCleanup(subprocess.run, ["umount", "-l", mountpoint], capture_output=True)
        w = Workdir()
        self.addCleanup(w.cleanup)  # runs first: the receiver stops before the unmount
        w.start_receiver(env={"OUTPUT_DIR": mountpoint, "MIN_FREE_BYTES": "24M"})
        before = sorted(os.listdir(mountpoint))
        answers, closed = exchange(w.port, upload_head(b"big", 10 * 1000 * 1000), timeout=5)  # head only
        self.assertEqual([a[0] for a in answers], [507], answers)
        self.assertTrue(closed)
        self.assertEqual(sorted(os.listdir(mountpoint)), before, "something was written")
        with open(w.key, "rb") as fh:
            token = Fernet(fh.read().strip()).encrypt(b"<all><small>1</small></all>")
        body = FORM_START + token + FORM_END
        answers, _ = exchange(w.port, upload_head(b"small", len(body), b"Connection: close\r\n") + body)
        self.assertEqual([a[0] for a in answers], [201], answers)
        self.assertTrue(os.path.exists(os.path.join(mountpoint, "small.xml")))
        self.assertEqual(temp_files(mountpoint), {})
        report("disk tmpfs=32M min_free=24M upload_10MB=507 written=0 small=201")


if __name__ == "__main__":
    unittest.main()
