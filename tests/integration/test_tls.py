"""TLS and mutual TLS between the real binaries, with certificates made by openssl here: HTTPS
delivery, curl --cacert, a wrong CA and a wrong host name refused with a clear sender error,
client certificates required (none or a wrong one refused), clear errors for bad files."""
import os
import subprocess
import unittest

from harness import BIN, Workdir, expected_xml, stop, wait_until, write_json


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=" + name,
            "-keyout", name + ".key", "-out", name + ".pem", cwd=d)


def make_cert(d, name, ca, san, client=False):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout", name + ".key",
            "-out", name + ".csr", cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as fh:
        fh.write("subjectAltName=%s\nextendedKeyUsage=%s\n" % (san, "clientAuth" if client else "serverAuth,clientAuth"))
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", name + ".pem", cwd=d)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Workdir()
        d = cls.certs.path("pki")
        os.makedirs(d)
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_cert(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
        make_cert(d, "wrong-host", "ca", "DNS:elsewhere.example")
        make_cert(d, "client", "ca", "DNS:sender", client=True)
        make_cert(d, "stranger", "other-ca", "DNS:sender", client=True)
        cls.pki_dir = d

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def pki(self, name):
        return os.path.join(self.pki_dir, name)

    def setUp(self):
        self.w = Workdir()
        self.addCleanup(self.w.cleanup)

    def start(self, cert="server", client_ca=None):
        env = {"TLS_CERT_FILE": self.pki(cert + ".pem"), "TLS_KEY_FILE": self.pki(cert + ".key")}
        if client_ca:
            env["CLIENT_CA_FILE"] = self.pki(client_ca)
        return self.w.start_receiver(env=env)

    def send(self, name, **extra):
        write_json(self.w.path("input", name + ".json"), {"name": name})
        env = dict(RECEIVER_SCHEME="https", CA_FILE=self.pki("ca.pem"), MIN_FILE_AGE="0", MAX_ATTEMPTS="1")
        env.update(extra)
        return self.w.run_sender_once(**{k: v for k, v in env.items() if v is not None})

    def delivered(self, name):
        path = self.w.path("output", name + ".xml")
        return os.path.exists(path) and open(path, "rb").read() == expected_xml({"name": name})

    def curl(self, path, *args):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args,
                            "https://localhost:%d%s" % (self.w.port, path)], capture_output=True, timeout=30)
        return r.stdout.decode()

    def health_check(self, **env):
        return subprocess.run([os.path.join(BIN, "receiver"), "--health-check"], capture_output=True, timeout=20,
                              env=dict(os.environ, SERVER_PORT=str(self.w.port), **env))

    def test_https_delivery_and_curl_with_cacert(self):
        self.start()
        self.assertIn("listening address=https://", self.w.read("receiver.log"))
        r = self.send("secure")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.delivered("secure"))
        self.assertEqual(self.curl("/", "--cacert", self.pki("ca.pem")), "200")
        self.assertEqual(self.curl("/readyz", "--cacert", self.pki("ca.pem")), "200")
        self.assertEqual(self.curl("/", "--cacert", self.pki("other-ca.pem")), "000")  # not trusted
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                "http://127.0.0.1:%d/" % self.w.port], capture_output=True, timeout=30)
        self.assertNotEqual(plain.stdout, b"200")  # no plain HTTP on a TLS port
        hc = self.health_check(TLS_CERT_FILE=self.pki("server.pem"), TLS_KEY_FILE=self.pki("server.key"))
        self.assertEqual(hc.returncode, 0, hc.stdout)
        self.assertIn(b"https://127.0.0.1", hc.stdout)

    def test_wrong_ca_and_wrong_host_name_refused_with_a_clear_error(self):
        self.start()
        r = self.send("untrusted", CA_FILE=self.pki("other-ca.pem"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"TLS: the receiver's certificate was refused", r.stderr)
        self.assertIn(b"CA_FILE=" + self.pki("other-ca.pem").encode(), r.stderr)
        self.assertFalse(self.delivered("untrusted"))
        stop(self.w.procs[-1])
        self.start(cert="wrong-host")  # signed by the trusted CA, but for another name
        r = self.send("misnamed")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"not issued for the host name '127.0.0.1'", r.stderr)
        self.assertFalse(os.listdir(self.w.path("output")))

    def test_mutual_tls(self):
        self.start(client_ca="ca.pem")
        self.assertIn("client_certificates=required", self.w.read("receiver.log"))
        r = self.send("anonymous")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"client certificate", r.stderr)
        r = self.send("stranger", CLIENT_CERT_FILE=self.pki("stranger.pem"), CLIENT_KEY_FILE=self.pki("stranger.key"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"refuse this one", r.stderr)
        self.assertFalse(os.listdir(self.w.path("output")))
        r = self.send("member", CLIENT_CERT_FILE=self.pki("client.pem"), CLIENT_KEY_FILE=self.pki("client.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.delivered("member"))
        self.assertEqual(self.curl("/", "--cacert", self.pki("ca.pem")), "000")
        self.assertEqual(self.curl("/", "--cacert", self.pki("ca.pem"), "--cert", self.pki("client.pem"),
                                   "--key", self.pki("client.key")), "200")
        hc = self.health_check(TLS_CERT_FILE=self.pki("server.pem"), TLS_KEY_FILE=self.pki("server.key"),
                               CLIENT_CA_FILE=self.pki("ca.pem"))
        self.assertEqual(hc.returncode, 0, hc.stdout)

    def test_bad_tls_files_give_clear_errors_and_never_their_content(self):
        bad = self.w.path("bad.pem")
        with open(bad, "w") as fh:
            fh.write("SECRET-BYTES\n")
        cases = [
            ("receiver", {"TLS_CERT_FILE": self.pki("server.pem"), "TLS_KEY_FILE": self.pki("client.key")}, b"does not match"),
            ("receiver", {"TLS_CERT_FILE": self.pki("server.pem"), "TLS_KEY_FILE": bad}, b"TLS_KEY_FILE"),
            ("receiver", {"TLS_CERT_FILE": self.pki("missing.pem"), "TLS_KEY_FILE": bad}, b"cannot read"),
            ("receiver", {"TLS_CERT_FILE": self.pki("server.pem")}, b"must be given together"),
            ("receiver", {"CLIENT_CA_FILE": self.pki("ca.pem")}, b"CLIENT_CA_FILE needs TLS_CERT_FILE"),
            ("sender", {"RECEIVER_SCHEME": "https", "CA_FILE": bad}, b"CA_FILE"),
            ("sender", {"CA_FILE": self.pki("ca.pem")}, b"need RECEIVER_SCHEME=https"),
            ("sender", {"RECEIVER_SCHEME": "ftp"}, b"RECEIVER_SCHEME"),
        ]
        for prog, env, want in cases:
            r = subprocess.run([os.path.join(BIN, prog), "--health-check" if prog == "receiver" else "--once"],
                               capture_output=True, timeout=20, env=dict(self.w.sender_env(port=1), **env))
            self.assertEqual(r.returncode, 2, (prog, env, r.stderr))
            self.assertIn(want, r.stderr, (prog, env))
            self.assertNotIn(b"SECRET-BYTES", r.stdout + r.stderr)
            for name in ("client.key", "server.key"):
                with open(self.pki(name), "rb") as fh:
                    body = fh.read().splitlines()[1]
                self.assertNotIn(body, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
