"""A real clamd for the integration tests, in a temp dir, with one custom signature only.

The database holds a single body signature for the EICAR test string (no official databases:
they take tens of seconds and hundreds of MiB to load, and the tests need only one known-bad
input). The EICAR string is built from two halves at run time so that no file in the repository
holds it whole (a scanner on a developer's machine would quarantine the file).

    with Clamd(stream_max_length="1M") as clamd:
        env = {"CLAMD_ADDRESS": clamd.address}

Run this file to check it against the clamd installed here (a real scan of EICAR and of a clean
document); it prints how long clamd took to start.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from harness import wait_until

CLAMD = os.environ.get("TRANSFER_CLAMD", "/usr/sbin/clamd")

# The signature's name in the .ndb file; clamd adds ".UNOFFICIAL" to names from unsigned databases.
SIGNATURE = "Eicar-Test-Signature"


def eicar():
    """The 68-byte EICAR test string, joined here so that no file holds it whole."""
    return b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clamd:
    """clamd --foreground on a unix socket in a temp dir (and on 127.0.0.1:<free port> when
    tcp=True). start() returns once zPING answers PONG; stop() ends it by its PID."""

    def __init__(self, stream_max_length="25M", tcp=True, start_timeout=60.0, root=None):
        self.root = root or tempfile.mkdtemp(prefix="transfer-clamd-")
        self._own_root = root is None
        self.db_dir = os.path.join(self.root, "db")
        self.socket_path = os.path.join(self.root, "clamd.sock")
        self.conf_path = os.path.join(self.root, "clamd.conf")
        self.log_path = os.path.join(self.root, "clamd.log")
        self.tcp_port = free_tcp_port() if tcp else None
        self.stream_max_length = stream_max_length
        self.start_timeout = start_timeout
        self.start_seconds = None  # how long the last start() took, for the record
        self.proc = None
        os.makedirs(self.db_dir, exist_ok=True)
        with open(os.path.join(self.db_dir, "eicar.ndb"), "w") as fh:
            # Target type 0 (any file), offset * (anywhere): it matches inside an XML text too.
            fh.write("%s:0:*:%s\n" % (SIGNATURE, eicar().hex()))
        self._write_conf()

    def _write_conf(self):
        lines = [
            "Foreground yes",
            "LocalSocket " + self.socket_path,
            "DatabaseDirectory " + self.db_dir,
            "PidFile " + os.path.join(self.root, "clamd.pid"),
            "LogFile " + self.log_path,
            "LogTime yes",
            "TemporaryDirectory " + self.root,
            "StreamMaxLength " + str(self.stream_max_length),
            # No User directive: clamd then keeps the uid it was started with (root in CI).
        ]
        if self.tcp_port is not None:
            lines += ["TCPSocket %d" % self.tcp_port, "TCPAddr 127.0.0.1"]
        with open(self.conf_path, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    @property
    def address(self):
        return "unix:" + self.socket_path

    @property
    def tcp_address(self):
        if self.tcp_port is None:
            raise AssertionError("this Clamd was made with tcp=False")
        return "127.0.0.1:%d" % self.tcp_port

    @property
    def signature_name(self):
        """The name clamd reports in "stream: <name> FOUND" for eicar()."""
        return SIGNATURE + ".UNOFFICIAL"

    def log(self):
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("clamd already running")
        began = time.monotonic()
        out = open(os.path.join(self.root, "clamd.out"), "ab")
        self.proc = subprocess.Popen([CLAMD, "--foreground", "-c", self.conf_path],
                                     stdout=out, stderr=out)
        out.close()

        def answered():
            if self.proc.poll() is not None:
                raise AssertionError("clamd exited %s: %s" % (self.proc.returncode, self.log()))
            try:
                return self.command(b"zPING\0", timeout=1.0) == "PONG"
            except OSError:
                return False

        wait_until(answered, self.start_timeout, "clamd to answer PONG on " + self.socket_path)
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        if self._own_root and not os.environ.get("TRANSFER_KEEP_WORKDIR"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # A minimal client, for start() and for tests that want clamd's own verdict.
    def _connect(self, timeout, tcp=False):
        if tcp:
            s = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=timeout)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(self.socket_path)
            except OSError:
                s.close()
                raise
        return s

    @staticmethod
    def _read_reply(s):
        reply = b""
        while not reply.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply.rstrip(b"\0").decode(errors="replace")

    def command(self, cmd, timeout=5.0, tcp=False):
        with self._connect(timeout, tcp) as s:
            s.sendall(cmd)
            return self._read_reply(s)

    def scan(self, data, timeout=30.0, tcp=False, chunk=65536):
        """zINSTREAM `data`; returns clamd's reply without the trailing NUL, e.g. "stream: OK".
        If clamd closes the connection mid-stream (StreamMaxLength), returns what it said."""
        with self._connect(timeout, tcp) as s:
            try:
                s.sendall(b"zINSTREAM\0")
                for i in range(0, len(data), chunk):
                    part = data[i:i + chunk]
                    s.sendall(struct.pack(">I", len(part)) + part)
                s.sendall(struct.pack(">I", 0))
            except (BrokenPipeError, ConnectionResetError):
                pass
            return self._read_reply(s)


if __name__ == "__main__":
    with Clamd(stream_max_length="1M") as c:
        print("clamd started in %.2fs" % c.start_seconds)
        print("ping:", c.command(b"zPING\0"))
        print("version:", c.command(b"zVERSION\0"))
        bad = b'<all><x type="str">' + eicar() + b"</x></all>"
        reply = c.scan(bad)
        print("eicar:", reply)
        assert reply == "stream: %s FOUND" % c.signature_name, reply
        reply = c.scan(bad, tcp=True)
        print("eicar over tcp:", reply)
        assert reply == "stream: %s FOUND" % c.signature_name, reply
        reply = c.scan(b'<all><x type="str">hello</x></all>')
        print("clean:", reply)
        assert reply == "stream: OK", reply
        reply = c.scan(b"a" * (3 << 20))
        print("3 MiB with StreamMaxLength 1M:", reply)
        assert "size limit exceeded" in reply, reply
        c.restart()
        print("restarted in %.2fs; ping: %s" % (c.start_seconds, c.command(b"zPING\0", tcp=True)))
    print("self-test ok")
