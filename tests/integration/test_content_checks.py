"""The receiver's plaintext checks with the real parts: libxml2 in the receiver, a real clamd the
test starts (clamd_server.py: one custom signature for EICAR), our sender, curl-shaped uploads.

Only content that passes lands: every refusal is checked for its status, its message, an empty
output directory (no file, no temporary file), the ledger's row and the metrics."""
import glob
import json
import os
import re
import sqlite3
import stat
import subprocess
import time
import unittest
import urllib.request
import uuid

from cryptography.fernet import Fernet

from clamd_server import Clamd, eicar
from harness import BIN, Workdir, get, stop, wait_until, write_json

SCHEMA = b"""<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="all">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="id"><xs:complexType><xs:simpleContent>
          <xs:extension base="xs:integer"><xs:attribute name="type" type="xs:string"/></xs:extension>
        </xs:simpleContent></xs:complexType></xs:element>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def form(token, boundary="checksboundary"):
    return (b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + token + b"\r\n--" + boundary.encode() + b"--\r\n",
            "multipart/form-data; boundary=" + boundary)


class Checks:
    """Uploads to a Workdir's receiver and looks at what landed."""

    def __init__(self, w):
        self.w = w
        with open(w.key, "rb") as fh:
            self.fernet = Fernet(fh.read().split()[0])

    def upload(self, name, plaintext, timeout=60):
        body, ctype = form(self.fernet.encrypt(plaintext))
        req = urllib.request.Request(self.w.url("/upload/" + name), data=body, method="POST",
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), dict(e.headers)

    def output(self):
        return sorted(os.listdir(self.w.path("output")))

    def metric(self, name, **labels):
        _, body = get(self.w.url("/metrics"))
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in body.decode().splitlines():
            if line.startswith(name + ("{" + want + "}" if labels else " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def ledger_reason(self, name):
        con = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        try:
            row = con.execute("select status, reason from uploads where name=? order by id desc limit 1",
                              (name,)).fetchone()
        finally:
            con.close()
        return row


class XmlCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Workdir()
        cls.w.start_receiver()
        cls.c = Checks(cls.w)

    @classmethod
    def tearDownClass(cls):
        cls.w.cleanup()

    def assert_refused(self, name, plaintext, reason, message_re):
        before = self.c.metric("transfer_receiver_check_refusals_total", check="xml", reason=reason)
        status, body, _ = self.c.upload(name, plaintext)
        self.assertEqual(status, 422, body)
        self.assertRegex(body["msg"], message_re)
        self.assertNotIn(name + ".xml", self.c.output())
        self.assertEqual([f for f in self.c.output() if f.startswith(".")], [], "a temporary file was left")
        self.assertEqual(self.c.ledger_reason(name), (422, body["msg"]))
        self.assertEqual(self.c.metric("transfer_receiver_check_refusals_total", check="xml", reason=reason),
                         before + 1)
        log = self.w.read("receiver.log")
        self.assertRegex(log, r"upload rejected name=%s .*status=422 check=xml check_reason=%s" % (name, reason))

    def test_well_formed_xml_lands(self):
        status, body, _ = self.c.upload("good", b'<?xml version="1.0" ?>\n<all><a type="str">x &amp; y</a></all>\n')
        self.assertEqual(status, 201, body)
        self.assertIn("good.xml", self.c.output())

    def test_what_is_not_xml_is_refused_with_line_and_column(self):
        self.assert_refused("binary", b"\x00\x01\x02 binary \xff", "not_wellformed",
                            r"^not well-formed XML at line 1, column \d+: ")
        self.assert_refused("empty", b"", "not_wellformed", r"^not well-formed XML at line 1, column 1: .*empty")
        self.assert_refused("half", b"<all>\n  <a>one</a>\n  <b>tw", "not_wellformed",
                            r"^not well-formed XML at line 3, column \d+: ")
        self.assert_refused("mismatch", b"<all>\n<a>x</b>\n</all>", "not_wellformed",
                            r"^not well-formed XML at line 2, column \d+: .*mismatch")
        self.assert_refused("text", b"just some text", "not_wellformed", r"^not well-formed XML at line 1, column 1: ")

    def test_entities_and_external_dtds_are_refused(self):
        laughs = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                  b' <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n<lolz>&lol1;</lolz>')
        self.assert_refused("laughs", laughs, "entity", r"declaring an entity \('lol'\) at line 3")
        xxe = b'<!DOCTYPE all [<!ENTITY x SYSTEM "file:///etc/passwd">]><all>&x;</all>'
        self.assert_refused("xxe", xxe, "entity", r"declaring an entity \('x'\)")
        self.assert_refused("extdtd", b'<!DOCTYPE all SYSTEM "http://example.com/a.dtd"><all/>', "external_dtd",
                            r"external DTD \('http://example.com/a.dtd'\)")

    def test_depth_over_the_limit_is_refused(self):
        deep = b"<e>" * 257 + b"</e>" * 257
        self.assert_refused("deep", deep, "too_deep", r"deeper than 256 elements")
        status, body, _ = self.c.upload("deep256", b"<e>" * 256 + b"</e>" * 256)
        self.assertEqual(status, 201, body)

    def test_our_sender_delivers_and_a_refusal_is_quarantined_with_the_receivers_reason(self):
        # Our sender always makes well-formed XML: the whole corpus of shapes goes through.
        w = self.w
        write_json(w.path("input", "doc.json"), {"a": [1, 2, {"b": "x<y&z"}], "c": None, "d": True})
        r = w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertIn("doc.xml", self.c.output())


class XmlCheckOffTest(unittest.TestCase):
    def test_off_writes_any_plaintext_as_the_old_pair_did(self):
        w = Workdir()
        try:
            w.start_receiver(env={"XML_CHECK": "off"})
            c = Checks(w)
            status, body, _ = c.upload("raw", b"\x00 not xml \xff")
            self.assertEqual(status, 201, body)
            with open(w.path("output", "raw.xml"), "rb") as fh:
                self.assertEqual(fh.read(), b"\x00 not xml \xff")
        finally:
            w.cleanup()


class SchemaTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.schema = self.w.path("schema.xsd")
        with open(self.schema, "wb") as fh:
            fh.write(SCHEMA)

    def tearDown(self):
        self.w.cleanup()

    def replace_schema(self, content):
        tmp = self.schema + ".new"
        with open(tmp, "wb") as fh:
            fh.write(content)
        os.replace(tmp, self.schema)

    def test_valid_lands_invalid_is_refused_and_the_schema_reloads(self):
        self.w.start_receiver(env={"XML_SCHEMA": self.schema})
        c = Checks(self.w)
        status, ready = get(self.w.url("/readyz"))
        self.assertEqual(status, 200, ready)
        self.assertIn("schema loaded from " + self.schema, json.loads(ready)["checks"]["xml_schema"]["detail"])

        status, body, _ = c.upload("valid", b'<all>\n  <id type="int">42</id>\n</all>\n')
        self.assertEqual(status, 201, body)
        status, body, _ = c.upload("invalid", b'<all>\n  <id type="int">forty-two</id>\n</all>\n')
        self.assertEqual(status, 422, body)
        self.assertRegex(body["msg"], r"^not valid against the schema at line 2, column \d+: .*forty-two")
        self.assertNotIn("invalid.xml", c.output())
        self.assertEqual(c.metric("transfer_receiver_check_refusals_total", check="schema", reason="invalid"), 1)

        # A new schema (an <id> now must be a string element named "ref"): reloaded on the next upload.
        self.replace_schema(SCHEMA.replace(b'name="id"', b'name="ref"'))
        status, body, _ = c.upload("valid-again", b'<all><id type="int">42</id></all>')
        self.assertEqual(status, 422, body)
        self.assertIn("XML schema reloaded", self.w.read("receiver.log"))
        status, body, _ = c.upload("ref", b'<all><ref>42</ref></all>')
        self.assertEqual(status, 201, body)

        # A broken file: the schema loaded before stays in force, /readyz and the log say so.
        self.replace_schema(b"<xs:schema")
        status, body, _ = c.upload("ref2", b'<all><ref>43</ref></all>')
        self.assertEqual(status, 201, body)
        self.assertIn("XML_SCHEMA no longer loads, keeping the schema loaded before", self.w.read("receiver.log"))
        status, ready = get(self.w.url("/readyz"))
        self.assertIn("does not load, the loaded one is in force", json.loads(ready)["checks"]["xml_schema"]["detail"])

    def test_a_bad_schema_refuses_to_start_with_exit_2_and_libxml2s_message(self):
        self.replace_schema(b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                            b'<xs:element name="a" type="xs:nosuchtype"/></xs:schema>')
        env = dict(os.environ, OUTPUT_DIR=self.w.path("output"), DECRYPTION_KEY=self.w.key,
                   STATUS_DB_PATH=self.w.path("rstate"), SERVER_PORT="0", XML_SCHEMA=self.schema)
        r = subprocess.run([os.path.join(BIN, "receiver")], env=env, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"is not a usable XML Schema", r.stderr)
        self.assertIn(b"nosuchtype", r.stderr)
        env["XML_CHECK"] = "off"
        r = subprocess.run([os.path.join(BIN, "receiver")], env=env, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"XML_SCHEMA needs XML_CHECK=wellformed", r.stderr)


class VirusScanTest(unittest.TestCase):
    """CLAMD_ADDRESS with a real clamd holding the EICAR body signature."""

    @classmethod
    def setUpClass(cls):
        cls.clamd = Clamd(stream_max_length="1M").start()

    @classmethod
    def tearDownClass(cls):
        cls.clamd.cleanup()

    def setUp(self):
        if self.clamd.proc is None:
            self.clamd.start()
        self.w = Workdir()
        self.quarantine = self.w.path("scan-quarantine")
        self.w.start_receiver(env={"CLAMD_ADDRESS": self.clamd.address, "SCAN_QUARANTINE_DIR": self.quarantine,
                                   "CLAMD_TIMEOUT": "5"})
        self.c = Checks(self.w)

    def tearDown(self):
        self.w.cleanup()

    def test_eicar_from_our_sender_is_refused_kept_for_forensics_and_quarantined_by_the_sender(self):
        w = self.w
        write_json(w.path("input", "infected.json"), {"note": eicar().decode(), "id": 7})
        write_json(w.path("input", "clean.json"), {"note": "nothing to see", "id": 8})
        r = w.run_sender_once()
        self.assertEqual(r.returncode, 1, r.stderr.decode(errors="replace"))  # one quarantined
        self.assertEqual(self.c.output(), ["clean.xml"])
        sig = self.clamd.signature_name
        # The sender quarantined the input with the receiver's reason, naming the signature.
        reason = w.read("input", ".quarantine", "infected.json.reason")
        self.assertIn("refused by virus scan: " + sig, reason)
        self.assertIn("422", reason)
        # The receiver kept the plaintext (its XML) for forensics, 0600, with a .reason.
        kept = os.path.join(self.quarantine, "infected.xml")
        self.assertEqual(stat.S_IMODE(os.stat(kept).st_mode), 0o600)
        with open(kept, "rb") as fh:
            self.assertIn(eicar(), fh.read())
        with open(kept + ".reason") as fh:
            kept_reason = fh.read()
        self.assertIn("signature: " + sig, kept_reason)
        self.assertIn("check: virus_scan", kept_reason)
        self.assertEqual(self.c.metric("transfer_receiver_virus_detections_total", signature=sig), 1)
        self.assertGreaterEqual(self.c.metric("transfer_receiver_virus_scans_total", result="clean"), 1)
        self.assertEqual(self.c.metric("transfer_receiver_check_refusals_total", check="virus_scan", reason="found"), 1)
        self.assertEqual(self.c.ledger_reason("infected"), (422, "refused by virus scan: " + sig))

    def test_readyz_reports_clamd_and_its_version(self):
        status, ready = get(self.w.url("/readyz"))
        self.assertEqual(status, 200, ready)
        self.assertRegex(json.loads(ready)["checks"]["clamd"]["detail"], r"answers: ClamAV \d")

    def test_over_stream_max_length_is_503_and_nothing_is_written(self):
        big = b"<all>" + b"<a>" + b"x" * (3 << 20) + b"</a></all>"
        status, body, headers = self.c.upload("big", big)
        self.assertEqual(status, 503, body)
        self.assertIn("Retry-After", headers)
        self.assertRegex(body["msg"], r"virus scan could not be done .*(size limit|clamd)")
        self.assertEqual(self.c.output(), [])
        self.assertEqual(os.listdir(self.w.path("output")), [])
        self.assertFalse(os.path.exists(self.quarantine) and os.listdir(self.quarantine))
        self.assertEqual(self.c.metric("transfer_receiver_checks_unavailable_total", check="virus_scan", reason="error"), 1)

    def test_clamd_down_is_503_and_the_upload_lands_once_it_is_back(self):
        w = self.w
        self.clamd.stop()
        try:
            status, ready = get(w.url("/readyz"))
            self.assertEqual(status, 503, ready)
            self.assertIn("clamd", json.loads(ready)["failing"])
            status, body, headers = self.c.upload("direct", b"<all>while clamd is down</all>")
            self.assertEqual(status, 503, body)
            self.assertEqual(headers.get("Retry-After"), "10")
            self.assertEqual(self.c.output(), [])
            # The sender keeps retrying (503 is transient) ...
            write_json(w.path("input", "waiting.json"), {"id": 1})
            sender = w.start_sender(RETRY_MAX_DELAY="0.5")
            wait_until(lambda: self.c.metric("transfer_receiver_checks_unavailable_total", check="virus_scan",
                                             reason="unreachable") >= 3, timeout=30, what="the sender's retries")
            self.assertEqual(self.c.output(), [])
        finally:
            self.clamd.start()
        # ... and delivers once clamd is back.
        wait_until(lambda: "waiting.xml" in self.c.output(), timeout=30, what="waiting.xml after clamd came back")
        stop(sender)
        self.assertFalse(os.path.exists(w.path("input", ".quarantine", "waiting.json")))


if __name__ == "__main__":
    unittest.main()
