"""Issue 13 on the real binaries: the sender never writes through a symlinked quarantine or
ON_SUCCESS=move: directory (refused at start with exit 2, and at each use without losing the file);
a key file that is a FIFO stops both programs at once with exit 2 and one line, and one that
others may read gets a warning with the chmod to run; names that lie about themselves are
quarantined by the sender and refused 400 by the receiver; JSON nested at the default MAX_DEPTH
is delivered as XML libxml2 reads on default settings, and one level deeper is quarantined."""
import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import unittest
import urllib.parse

from harness import BIN, Workdir, stop, wait_until, write_json

# The five input names of issue 13, then names that look like others (an NFD spelling, an
# invisible filler), and the reason each is quarantined (or refused) with.
LYING_NAMES = [
    ("   .json", "made only of spaces"),
    ("a..json", "ends in a dot"),
    ("a .json", "ends in a space"),
    ("invoice\u202elmx.json", "U+202E"),
    ("zw\u200bsp.json", "U+200B"),
    ("cafe\u0301.json", "not in Unicode normalization form NFC (U+0065 U+0301: use the composed form U+00E9)"),
    ("\u115f.json", "invisible filler U+115F"),
]


def write_raw(path, data):
    """Complete files only (a hidden temporary file renamed into place), as write_json."""
    d, base = os.path.split(path)
    tmp = os.path.join(d, ".%s.%d.tmp" % (base, os.getpid()))
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def nested(depth, kind):
    """JSON nested `depth` deep ending in a scalar: arrays, objects, or the two alternating."""
    opens, closes = [], []
    for i in range(depth):
        array = kind == "array" or (kind == "mixed" and i % 2 == 0)
        opens.append("[" if array else '{"k": ')
        closes.append("]" if array else "}")
    return ("".join(opens) + "1" + "".join(reversed(closes))).encode()


def libxml2_verdict(path):
    """(ok, message) from libxml2 on default settings: xmllint --noout (Debian libxml2-utils), else
    libxml2 itself through ctypes (xmlReadFile with options 0)."""
    if shutil.which("xmllint"):
        r = subprocess.run(["xmllint", "--noout", path], capture_output=True, timeout=60)
        return r.returncode == 0, r.stderr.decode(errors="replace")[:300]
    lib = ctypes.CDLL(ctypes.util.find_library("xml2") or "libxml2.so.2")
    lib.xmlReadFile.restype = ctypes.c_void_p
    lib.xmlReadFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    lib.xmlFreeDoc.argtypes = [ctypes.c_void_p]
    doc = lib.xmlReadFile(path.encode(), None, 0)
    if doc:
        lib.xmlFreeDoc(doc)
    return bool(doc), "xmlReadFile failed"


def one_line(test, stderr):
    lines = [l for l in stderr.decode(errors="replace").splitlines() if l.strip()]
    test.assertEqual(len(lines), 1, "expected one line, got: %r" % lines)
    return lines[0]


class SenderHardeningTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.elsewhere = self.w.path("elsewhere")  # where a planted symlink points
        os.makedirs(self.elsewhere)

    def tearDown(self):
        self.w.cleanup()

    def outputs(self):
        return sorted(os.listdir(self.w.path("output")))

    def sender(self, *args, timeout=20, **env):
        """sender with these arguments, bounded by `timeout`; port 1 (nothing) before a receiver."""
        return subprocess.run([os.path.join(BIN, "sender"), *args],
                              env=self.w.sender_env(getattr(self.w, "port", 1), **env),
                              capture_output=True, timeout=timeout)

    def log_line(self, pattern):
        """The first sender.log line matching `pattern`, or None."""
        for line in self.w.read("sender.log").splitlines():
            if re.search(pattern, line):
                return line
        return None

    # --- symlinked destination directories ---------------------------------------------------

    def test_symlinked_directories_are_refused_at_start(self):
        write_raw(self.w.path("input", "bad.json"), b"{oops")
        qlink, mlink = self.w.path("input", ".quarantine"), self.w.path("done-link")
        os.symlink(self.elsewhere, qlink)
        os.symlink(self.elsewhere, mlink)
        os.symlink(self.w.path("not-yet"), self.w.path("dangling"))
        write_raw(self.w.path("a-file"), b"")
        link = "is a symbolic link"
        cases = [  # (what, extra environment, the path and the option the line names, what it says)
            ("default quarantine", {}, qlink, "QUARANTINE_DIR", link),
            ("QUARANTINE_DIR", {"QUARANTINE_DIR": mlink}, mlink, "QUARANTINE_DIR", link),
            ("dangling QUARANTINE_DIR", {"QUARANTINE_DIR": self.w.path("dangling")}, self.w.path("dangling"),
             "QUARANTINE_DIR", link),
            ("QUARANTINE_DIR with a trailing slash", {"QUARANTINE_DIR": mlink + "/"}, mlink, "QUARANTINE_DIR", link),
            ("QUARANTINE_DIR a file", {"QUARANTINE_DIR": self.w.path("a-file")}, self.w.path("a-file"),
             "QUARANTINE_DIR", "is not a directory"),
            ("move target", {"QUARANTINE_DIR": self.w.path("q"), "ON_SUCCESS": "move:" + mlink}, mlink,
             "ON_SUCCESS move target", link),
        ]
        for what, env, path, option, says in cases:
            with self.subTest(what):
                r = self.sender("--once", **env)
                self.assertEqual(r.returncode, 2, r.stderr.decode())
                line = one_line(self, r.stderr)
                self.assertIn("%s %s" % (option, path), line)
                self.assertIn(says, line)
        self.assertEqual(os.listdir(self.elsewhere), [])
        self.assertFalse(os.path.exists(self.w.path("not-yet")))
        self.assertEqual(sorted(os.listdir(self.w.path("input"))), [".quarantine", "bad.json"])

    def test_quarantine_swapped_for_a_symlink_after_start(self):
        self.w.start_receiver()
        p = self.w.start_sender(MIN_FILE_AGE="0")
        qdir = self.w.path("input", ".quarantine")
        write_raw(self.w.path("input", "bad1.json"), b"{oops")
        wait_until(lambda: os.path.exists(os.path.join(qdir, "bad1.json.reason")), what="first quarantine")
        os.rename(qdir, self.w.path("input", ".quarantine-real"))
        os.symlink(self.elsewhere, qdir)
        write_raw(self.w.path("input", "bad2.json"), b"{oops 2")
        line = wait_until(lambda: self.log_line(r"quarantined file=bad2\.json"), what="bad2 refused")
        self.assertIn("symbolic link", line)
        self.assertIn("it stays in place", line)
        self.assertEqual(os.listdir(self.elsewhere), [], "written through the symlink")
        with open(self.w.path("input", "bad2.json"), "rb") as fh:  # not lost
            self.assertEqual(fh.read(), b"{oops 2")
        con = sqlite3.connect(self.w.path("sstate", "sender.db"))
        self.assertEqual(con.execute("select state, quarantine_path from files where name='bad2.json'").fetchone(),
                         ("quarantined", None))
        con.close()
        self.assertIsNone(p.poll())
        self.assertEqual(stop(p), 0)

    def test_move_target_swapped_for_a_symlink_after_start(self):
        self.w.start_receiver()
        done = self.w.path("done")
        p = self.w.start_sender(MIN_FILE_AGE="0", ON_SUCCESS="move:" + done)
        write_json(self.w.path("input", "a.json"), {"a": 1})
        wait_until(lambda: os.path.exists(os.path.join(done, "a.json")), what="a.json moved")
        os.rename(done, self.w.path("done-real"))
        os.symlink(self.elsewhere, done)
        write_json(self.w.path("input", "b.json"), {"b": 2})
        line = wait_until(lambda: self.log_line(r"cannot move delivered file=b\.json"), what="move refused")
        self.assertIn("symbolic link", line)
        self.assertEqual(self.outputs(), ["a.xml", "b.xml"])
        self.assertEqual(os.listdir(self.elsewhere), [], "written through the symlink")
        self.assertTrue(os.path.exists(self.w.path("input", "b.json")), "the delivered file was lost")
        self.assertIsNone(p.poll())
        self.assertEqual(stop(p), 0)

    # --- key files ---------------------------------------------------------------------------

    def test_a_fifo_key_file_stops_both_programs_at_once(self):
        fifo = self.w.path("key.fifo")
        os.mkfifo(fifo, 0o600)
        r = self.sender("--once", timeout=10, ENCRYPTION_KEY=fifo)
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        line = one_line(self, r.stderr)
        self.assertIn(fifo, line)
        self.assertIn("is a FIFO, not a regular file", line)
        env = dict(os.environ, OUTPUT_DIR=self.w.path("output"), DECRYPTION_KEY=fifo,
                   STATUS_DB_PATH=self.w.path("rstate"), SERVER_PORT="0", SERVER_IP="127.0.0.1")
        r = subprocess.run([os.path.join(BIN, "receiver")], env=env, capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr.decode())
        line = one_line(self, r.stderr)
        self.assertIn(fifo, line)
        self.assertIn("is a FIFO, not a regular file", line)

    def test_a_key_file_others_may_read_works_with_a_warning(self):
        os.chmod(self.w.key, 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(self.w.key).st_mode), 0o644)
        self.w.start_receiver()
        write_json(self.w.path("input", "a.json"), {"a": 1})
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.outputs(), ["a.xml"])
        want = "key file %s is readable by every user on this host (mode 0644): run chmod o-r %s" % (self.w.key,
                                                                                                      self.w.key)
        self.assertIn(want, r.stderr.decode())
        wait_until(lambda: want in self.w.read("receiver.log"), what="the receiver's warning")
        os.chmod(self.w.key, 0o600)  # and quiet once fixed
        write_json(self.w.path("input", "b.json"), {"b": 1})
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertNotIn("readable by every user", r.stderr.decode())

    # --- names -------------------------------------------------------------------------------

    def test_names_that_lie_are_quarantined_and_never_sent(self):
        self.w.start_receiver()
        for name, _ in LYING_NAMES:
            write_json(self.w.path("input", name), {"n": name})
        write_json(self.w.path("input", "fine.json"), {"ok": True})
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertEqual(self.outputs(), ["fine.xml"])  # nothing else arrived, not even a temp file
        for name, reason in LYING_NAMES:
            with self.subTest(name=name):
                q = self.w.path("input", ".quarantine", name)
                self.assertTrue(os.path.exists(q), "not quarantined")
                with open(q + ".reason", encoding="utf-8") as fh:
                    text = fh.read()
                self.assertIn("error: invalid upload name: ", text)
                self.assertIn(reason, text)
                self.assertIn("attempts: 1", text)
        self.assertNotIn("delivered file=\"   .json\"", r.stderr.decode())

    def test_nfd_name_is_quarantined_and_its_nfc_twin_delivered(self):
        """Two files that look alike, caf\u00e9.json (NFC) and cafe\u0301.json (NFD): only the NFC one
        is sent; the other is quarantined with a reason that says how to rename it."""
        self.w.start_receiver()
        nfc, nfd = "caf\u00e9.json", "cafe\u0301.json"
        write_json(self.w.path("input", nfc), {"form": "NFC"})
        write_json(self.w.path("input", nfd), {"form": "NFD"})
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 1, r.stderr.decode())
        self.assertEqual(self.outputs(), ["caf\u00e9.xml"])
        with open(self.w.path("output", "caf\u00e9.xml"), encoding="utf-8") as fh:
            self.assertIn("NFC", fh.read())
        q = self.w.path("input", ".quarantine", nfd)
        self.assertTrue(os.path.exists(q), "not quarantined")
        with open(q + ".reason", encoding="utf-8") as fh:
            text = fh.read()
        self.assertIn("error: invalid upload name: not in Unicode normalization form NFC", text)
        self.assertIn("use the composed form U+00E9", text)
        self.assertFalse(os.path.exists(self.w.path("input", ".quarantine", nfc)))

    def test_receiver_refuses_the_same_names(self):
        from cryptography.fernet import Fernet
        self.w.start_receiver()
        tok = self.w.path("tok")
        with open(self.w.key, "rb") as fh:
            key = fh.read().strip()
        with open(tok, "wb") as fh:
            fh.write(Fernet(key).encrypt(b"<all/>\n"))
        for name, reason in LYING_NAMES + [("ok.json", None)]:
            upload = name[:-len(".json")]
            with self.subTest(name=upload):
                body = self.w.path("body")
                r = subprocess.run(["curl", "-s", "--path-as-is", "-o", body, "-w", "%{http_code}", "-F",
                                    "file=@" + tok, self.w.url("/upload/" + urllib.parse.quote(upload, safe=""))],
                                   capture_output=True, timeout=30)
                with open(body, "rb") as fh:
                    answer = fh.read().decode(errors="replace")
                if reason is None:
                    self.assertEqual(int(r.stdout), 201, answer)
                else:
                    self.assertEqual(int(r.stdout), 400, answer)
                    self.assertIn(reason, answer)
        self.assertEqual(self.outputs(), ["ok.xml"])

    # --- depth -------------------------------------------------------------------------------

    def default_max_depth(self):
        r = subprocess.run([os.path.join(BIN, "sender"), "--help"], capture_output=True, timeout=10)
        line = [l for l in r.stdout.decode().splitlines() if "--max-depth" in l][0]
        return int(re.search(r"\[default: (\d+)\]", line).group(1))

    def test_default_max_depth_is_delivered_as_xml_libxml2_reads(self):
        depth = self.default_max_depth()
        self.assertLessEqual(depth + 1, 256, "the XML (one level deeper, the root <all> included) exceeds 256")
        self.w.start_receiver()
        for kind in ("array", "object", "mixed"):
            write_raw(self.w.path("input", "deep-%s.json" % kind), nested(depth, kind))
            write_raw(self.w.path("input", "deeper-%s.json" % kind), nested(depth + 1, kind))
        r = self.w.run_sender_once()
        self.assertEqual(r.returncode, 1, r.stderr.decode())  # the three deeper ones are quarantined
        self.assertEqual(self.outputs(), ["deep-array.xml", "deep-mixed.xml", "deep-object.xml"])
        for kind in ("array", "object", "mixed"):
            with self.subTest(kind=kind):
                ok, why = libxml2_verdict(self.w.path("output", "deep-%s.xml" % kind))
                self.assertTrue(ok, why)
                with open(self.w.path("input", ".quarantine", "deeper-%s.json.reason" % kind)) as fh:
                    self.assertIn("JSON nesting deeper than %d levels" % depth, fh.read())
        self.assertEqual(sorted(os.path.basename(p) for p in glob.glob(self.w.path("input", "*.json"))),
                         ["deep-array.json", "deep-mixed.json", "deep-object.json"])  # kept; the deeper moved


if __name__ == "__main__":
    unittest.main()
