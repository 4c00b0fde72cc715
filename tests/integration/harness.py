"""Shared pieces of the integration tests: temp dirs, keys, starting the real binaries on
port 0 and waiting with deadlines (never fixed sleeps), stopping them by PID."""
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

BIN = os.environ.get("TRANSFER_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata")
PEER = os.environ.get("PYTHON_PEER", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "../../../shared/peers/python-original"))


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


def make_key(path):
    from cryptography.fernet import Fernet
    with open(path, "wb") as fh:
        fh.write(Fernet.generate_key() + b"\n")
    os.chmod(path, 0o600)


class Workdir:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="transfer-it-")
        for d in ("input", "output", "rstate", "sstate"):
            os.makedirs(self.path(d))
        self.key = self.path("key")
        make_key(self.key)
        self.procs = []

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("TRANSFER_KEEP_WORKDIR"):  # for a post-mortem of a failed run
            print("kept", self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)

    def start_receiver(self, *extra, env=None, port=0, prefix=(), ip="127.0.0.1"):
        ready = self.path("ready")
        if os.path.exists(ready):
            os.unlink(ready)
        e = dict(os.environ, OUTPUT_DIR=self.path("output"), DECRYPTION_KEY=self.key,
                 STATUS_DB_PATH=self.path("rstate"), SERVER_PORT=str(port), SERVER_IP=ip)
        e.update(env or {})
        log = open(self.path("receiver.log"), "ab")
        p = subprocess.Popen([*prefix, os.path.join(BIN, "receiver"), "--ready-file", ready, *extra],
                             env=e, stdout=log, stderr=log)
        log.close()
        self.procs.append(p)
        wait_until(lambda: os.path.exists(ready) or p.poll() is not None, what="receiver ready")
        if p.poll() is not None:
            raise AssertionError("receiver exited %s: %s" % (p.returncode, self.read("receiver.log")))
        with open(ready) as fh:
            self.port = int(fh.read())
        return p

    def sender_env(self, port=None, **extra):
        e = dict(os.environ, INPUT_DIR=self.path("input"), ENCRYPTION_KEY=self.key,
                 STATUS_DB_PATH=self.path("sstate"), RECEIVER_ADDRESS="127.0.0.1",
                 RECEIVER_PORT=str(port or self.port), SCAN_INTERVAL="0.2", CONNECT_TIMEOUT="2",
                 MIN_FILE_AGE="0.3", RETRY_BASE_DELAY="0.2", RETRY_MAX_DELAY="1")
        e.update(extra)
        return e

    def run_sender_once(self, port=None, timeout=120, **extra):
        return subprocess.run([os.path.join(BIN, "sender"), "--once"], env=self.sender_env(port, **extra),
                              capture_output=True, timeout=timeout)

    def start_sender(self, port=None, prefix=(), **extra):
        log = open(self.path("sender.log"), "ab")
        p = subprocess.Popen([*prefix, os.path.join(BIN, "sender")], env=self.sender_env(port, **extra),
                             stdout=log, stderr=log)
        log.close()
        self.procs.append(p)
        return p

    def read(self, *parts):
        with open(self.path(*parts), "r", errors="replace") as fh:
            return fh.read()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)


def stop(proc, timeout=15):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def integrity_ok(db_path):
    import sqlite3
    con = sqlite3.connect(db_path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def count_delivered(db_path):
    """Files the sender has recorded as delivered (0 before its database exists)."""
    import sqlite3
    if not os.path.exists(db_path):
        return 0
    con = sqlite3.connect(db_path)
    try:
        return con.execute("select count(*) from files where state='delivered'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


def outbox_states(db_path):
    """{(destination, state): rows} of the sender's state database ({} before it exists)."""
    if not os.path.exists(db_path):
        return {}
    con = sqlite3.connect(db_path)
    try:
        return {(d, s): n for d, s, n in
                con.execute("select destination, state, count(*) from files group by destination, state")}
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        con.close()


def write_json(path, obj):
    """Complete files only, as a careful producer writes them (a hidden temporary file renamed
    into place): the tests run the sender with MIN_FILE_AGE=0, which would otherwise catch a file
    half written and quarantine it, as documented."""
    d, base = os.path.split(path)
    tmp = os.path.join(d, ".%s.%d.tmp" % (base, os.getpid()))
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False)
    os.replace(tmp, path)


def expected_xml(obj):
    """The XML the old sender wrote for obj, using the real dicttoxml (Debian 1.7.15) as the
    oracle; 1.7.15 spells booleans lowercase where 1.7.4 wrote True/False."""
    import dicttoxml
    import logging
    from xml.dom.minidom import parseString
    logging.getLogger("dicttoxml").setLevel(logging.WARNING)
    xml = parseString(dicttoxml.dicttoxml(obj, custom_root="all", attr_type=True)).toprettyxml()
    xml = xml.replace('type="bool">true<', 'type="bool">True<').replace('type="bool">false<', 'type="bool">False<')
    return xml.encode("utf-8")


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


CORPUS = os.path.join(TESTDATA, "json2xml")


def copy_corpus(input_dir):
    """Copies the golden corpus inputs into input_dir; returns the case names."""
    names = []
    for p in sorted(glob.glob(os.path.join(CORPUS, "inputs", "*.json"))):
        shutil.copyfile(p, os.path.join(input_dir, os.path.basename(p)))
        names.append(os.path.basename(p)[:-5])
    return names


def assert_corpus_outputs(test, names, output_dir):
    for name in names:
        with open(os.path.join(CORPUS, "expected", name + ".xml"), "rb") as fh:
            want = fh.read()
        with open(os.path.join(output_dir, name + ".xml"), "rb") as fh:
            test.assertEqual(fh.read(), want, name)
