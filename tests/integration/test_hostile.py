"""Hostile input against the real receiver, one case each, over raw sockets (so no client
library tidies the request first) and curl: each gets a JSON 4xx, nothing is written outside
$OUTPUT_DIR or under a final name, and memory stays bounded."""
import json
import os
import socket
import subprocess
import time
import unittest

from cryptography.fernet import Fernet

from harness import Workdir, vm_hwm_kib, wait_until


def raw(port, data, timeout=20):
    """Sends `data` (bytes or a list of bytes sent one after the other) and returns
    (status, headers, body) of the first response, or (None, None, b"") if the peer closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        for part in (data if isinstance(data, list) else [data]):
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return None, None, buf
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]), headers, body[:length]
    finally:
        s.close()


class HostileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.proc = cls.w.start_receiver(env={"MAX_UPLOAD_BYTES": "1M", "READ_TIMEOUT": "1", "THREADS": "4",
                                             "HEADER_TIMEOUT": "1"})
        with open(cls.w.key, "rb") as fh:
            cls.fernet = Fernet(fh.read().strip())
        cls.outer = sorted(os.listdir(cls.w.root))

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def tearDown(self):
        # Nothing ever lands outside the output directory, and no temporary file survives.
        self.assertEqual(sorted(os.listdir(self.w.root)), self.outer)
        wait_until(lambda: not [n for n in os.listdir(self.w.path("output")) if n.endswith(".tmp")],
                   what="temporary files removed")

    def finals(self):
        return sorted(n for n in os.listdir(self.w.path("output")) if not n.startswith("."))

    @staticmethod
    def form(token, boundary=b"B", name=b"file"):
        return (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name +
                b"\"; filename=\"x.xml.enc\"\r\n\r\n" + token + b"\r\n--" + boundary + b"--\r\n")

    def post(self, path, body, ctype=b"multipart/form-data; boundary=B", extra=b""):
        req = (b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nContent-Type: " + ctype + b"\r\n" + extra +
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        return raw(self.w.port, req)

    def assert_json_error(self, status, headers, body, want):
        self.assertEqual(status, want, body)
        self.assertTrue(headers["content-type"].startswith("application/json"), headers)
        doc = json.loads(body)
        self.assertEqual(doc["status_code"], want)
        self.assertIsInstance(doc["msg"], str)
        return doc

    def test_traversal_in_every_spelling(self):
        token = self.fernet.encrypt(b"<evil/>")
        before = self.finals()
        for path in (b"/upload/..", b"/upload/%2e%2e", b"/upload/%2E%2E%2Fescape", b"/upload/..%2Fescape",
                     b"/upload/a%2Fb", b"/upload/a%5Cb", b"/upload/..%5C..%5Cescape", b"/upload/a%00b",
                     b"/upload/" + b"n" * 300, b"/upload/...", b"/upload/.", b"/upload/%2e",
                     b"/upload/.hidden", b"/upload/a%0Ab", b"/upload/%C0%AE%C0%AE", b"/upload/%ff"):
            status, headers, body = self.post(path, self.form(token))
            self.assertIn(status, (400, 404), path)
            if status == 400:
                self.assert_json_error(status, headers, body, 400)
            self.assertEqual(self.finals(), before, path)

    def test_too_large_by_content_length_and_memory_bounded_without_one(self):
        status, headers, body = raw(self.w.port, b"POST /upload/big HTTP/1.1\r\nHost: t\r\nContent-Type: "
                                    b"multipart/form-data; boundary=B\r\nContent-Length: 5000000\r\n\r\n")
        self.assert_json_error(status, headers, body, 413)
        # Chunked: refused (411) before the body is read, however much is sent.
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
        status, headers, body = raw(self.w.port, [b"POST /upload/chunky HTTP/1.1\r\nHost: t\r\nContent-Type: "
                                                  b"multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n"]
                                    + [chunk] * 8)
        self.assert_json_error(status, headers, body, 411)
        # gzip would be inflated before any limit applies: refused (415).
        status, headers, body = self.post(b"/upload/zipped", b"\x1f\x8b" + b"\x00" * 100, extra=b"Content-Encoding: gzip\r\n")
        self.assert_json_error(status, headers, body, 415)
        self.assertEqual(self.finals(), [])

    def test_malformed_multipart(self):
        tok = self.fernet.encrypt(b"<x/>")
        cases = [
            (b"multipart/form-data", self.form(tok), 415),                     # no boundary
            (b"text/plain", tok, 415),                                         # not multipart
            (b"multipart/form-data; boundary=B", tok, 400),                    # no delimiter at all
            (b"multipart/form-data; boundary=OTHER", self.form(tok), 400),     # wrong boundary
            (b"multipart/form-data; boundary=B", self.form(tok, name=b"other"), 400),  # no file part
            (b"multipart/form-data; boundary=B", self.form(tok)[:-8] + b"\r\n--B\r\nContent-Disposition: form-data; "
             b"name=\"file\"\r\n\r\n" + tok + b"\r\n--B--\r\n", 400),         # two file parts
            (b"multipart/form-data; boundary=B", self.form(tok) + b"garbage", 400),    # after the close
            (b"multipart/form-data; boundary=B", self.form(tok)[:-4], 400),    # never closed
            (b"multipart/form-data; boundary=B", b"--B\r\nContent-Disposition: form-data; name=\"file\"" +
             b"X" * 200000, 400),                                              # endless part header
        ]
        for ctype, body, want in cases:
            status, headers, answer = self.post(b"/upload/mp", body, ctype=ctype)
            self.assert_json_error(status, headers, answer, want)
        self.assertEqual(self.finals(), [])

    def test_bad_tokens_are_422_and_leave_nothing(self):
        good = self.fernet.encrypt(b"<x>" + b"y" * 5000 + b"</x>")
        tampered = bytearray(good)
        tampered[len(good) // 2] ^= 1
        other = Fernet(Fernet.generate_key()).encrypt(b"<x/>")
        enormous = Fernet(Fernet.generate_key()).encrypt(b"z" * 700000)  # under 1M, wrong key, streamed
        for token in (good[:-10], bytes(tampered), other, b"", b"not base64 at all!", enormous,
                      b"gAAAAA" + b"A" * 80):
            status, headers, body = self.post(b"/upload/tok", self.form(token))
            self.assert_json_error(status, headers, body, 422)
        self.assertEqual(self.finals(), [])

    def test_stalled_clients_are_cut_off_by_the_read_timeout(self):
        t0 = time.monotonic()
        status, _, _ = raw(self.w.port, b"POST /upload/slow HTTP/1.1\r\nHost: t\r\n")  # headers never end
        self.assertEqual(status, 408)  # HEADER_TIMEOUT=1
        body = self.form(self.fernet.encrypt(b"<x/>"))
        status, _, _ = raw(self.w.port, b"POST /upload/slow HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; "
                           b"boundary=B\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:30])  # body stalls
        self.assertIn(status, (None, 400))
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(self.finals(), [])

    def test_more_connections_than_threads_costs_no_unbounded_memory(self):
        base = vm_hwm_kib(self.proc.pid)
        idle = []
        for _ in range(30):  # connect without waiting, then send nothing
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.w.port))
            idle.append(s)
        try:
            # Idle connections cost no thread: GET / is answered while they are open.
            status = None
            deadline = time.monotonic() + 60
            while status != 200 and time.monotonic() < deadline:
                try:
                    status, _, body = raw(self.w.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
                except (socket.timeout, ConnectionError):
                    status = None
            self.assertEqual(status, 200)
        finally:
            for s in idle:
                s.close()
        self.assertLess(vm_hwm_kib(self.proc.pid) - base, 32 * 1024)

    def test_oversized_headers_and_garbage_request_lines(self):
        for req in (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
                    b"\x00\x01\x02garbage\r\n\r\n",
                    b"POST /upload/x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"):
            status, headers, body = raw(self.w.port, req)
            self.assertTrue(status is None or 400 <= status < 500, (req[:40], status))
        self.assertEqual(raw(self.w.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")[0], 200)

    def test_curl_sees_json_errors_too(self):
        r = subprocess.run(["curl", "-s", "--path-as-is", "-w", "\n%{http_code}", "-F", "file=@/dev/null",
                            self.w.url("/upload/../../etc/passwd")], capture_output=True, timeout=30)
        body, code = r.stdout.rsplit(b"\n", 1)
        self.assertIn(int(code), (400, 404))
        self.assertEqual(json.loads(body)["status_code"], int(code))


if __name__ == "__main__":
    unittest.main()
