"""curl against the real receiver: the exact health body, an upload, and every error status."""
import os
import subprocess
import unittest

from cryptography.fernet import Fernet

from harness import Workdir


class CurlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.w.start_receiver(env={"MAX_UPLOAD_BYTES": "64K"})
        key = open(cls.w.key, "rb").read().strip()
        cls.tok = cls.w.path("tok")
        with open(cls.tok, "wb") as fh:
            fh.write(Fernet(key).encrypt(b"<all/>\n"))

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def curl(self, path, *args):
        r = subprocess.run(["curl", "-s", "-o", self.w.path("body"), "-w", "%{http_code}", *args, self.w.url(path)],
                           capture_output=True, timeout=30)
        with open(self.w.path("body"), "rb") as fh:
            return int(r.stdout), fh.read()

    def test_health_body_is_exactly_the_old_one(self):
        status, body = self.curl("/")
        self.assertEqual(status, 200)
        self.assertEqual(body, b'{"msg":"Server is healthy","status_code":200}\n')

    def test_upload_then_file_on_disk(self):
        status, body = self.curl("/upload/curl-ok", "-F", "file=@" + self.tok)
        self.assertEqual(status, 201, body)
        self.assertIn(b'"msg":"File is decrypted and saved to ' + self.w.path("output", "curl-ok.xml").encode(), body)
        self.assertIn(b'"status_code":201', body)
        self.assertEqual(open(self.w.path("output", "curl-ok.xml"), "rb").read(), b"<all/>\n")

    def test_error_statuses(self):
        big = self.w.path("big")
        with open(big, "wb") as fh:
            fh.write(b"x" * 100000)
        cases = [
            ("/upload/..", ["--path-as-is", "-F", "file=@" + self.tok], 400),
            ("/upload/.hidden", ["-F", "file=@" + self.tok], 400),
            ("/upload/a%00b", ["-F", "file=@" + self.tok], 400),
            ("/upload/" + "a" * 201, ["-F", "file=@" + self.tok], 400),
            ("/upload/nofile", ["-F", "other=@" + self.tok], 400),
            ("/upload/x/y", ["-F", "file=@" + self.tok], 400),  # every POST under /upload/ streams: the
            ("/upload/..%2Fescape", ["-F", "file=@" + self.tok], 400),  # name is refused, body unread
            ("/nowhere", [], 404),
            ("/upload/x", [], 405),
            ("/", ["-X", "POST"], 405),
            ("/upload/chunked", ["-H", "Transfer-Encoding: chunked", "-F", "file=@" + self.tok], 411),
            ("/upload/big", ["-F", "file=@" + big], 413),
            ("/upload/raw", ["--data-binary", "@" + self.tok, "-H", "Content-Type: application/octet-stream"], 415),
            ("/upload/gz", ["-H", "Content-Encoding: gzip", "-F", "file=@" + self.tok], 415),
            ("/upload/notatoken", ["-F", "file=@/etc/hostname"], 422),
        ]
        for path, args, want in cases:
            status, body = self.curl(path, *args)
            self.assertEqual(status, want, (path, body))
            self.assertIn(b'"status_code":%d' % want, body, path)
            self.assertIn(b'"msg":', body, path)
        written = sorted(os.listdir(self.w.path("output")))
        self.assertTrue(all(n == "curl-ok.xml" for n in written), written)


if __name__ == "__main__":
    unittest.main()
