"""The real file servers of the destination tests: Debian's radosgw (S3), OpenSSH's sshd (SFTP) and
vsftpd (FTPS), each started by its script in tests/support/servers/.

The README's test command starts one of each per test run and names their directories in
TRANSFER_S3_SERVER_DIR, TRANSFER_SFTP_SERVER_DIR and TRANSFER_FTPS_SERVER_DIR; a test run by hand
without them starts its own here (stopped by PID when the process exits). Tests that share a server
keep out of each other's way: each has a bucket, or a directory under the upload directory, of its
own. What landed is read with tools other than the sender: curl --aws-sigv4 for S3, the file system
for SFTP and FTPS (the servers run on this machine)."""
import atexit
import os
import re
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "servers")
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_started = {}


def _read(d, name):
    with open(os.path.join(d, name)) as fh:
        return fh.read().strip()


def _server_dir(env, script, *args):
    d = os.environ.get(env)
    if d:
        return d
    if script in _started:
        return _started[script]
    d = tempfile.mkdtemp(prefix="transfer-%s-" % script.split(".")[0])
    path = os.path.join(SCRIPTS, script)
    r = subprocess.run([path, "start", d, *args], capture_output=True, timeout=180)
    if r.returncode != 0:
        raise AssertionError("%s start failed: %s %s" % (script, r.stdout.decode(), r.stderr.decode()))
    atexit.register(lambda: subprocess.run([path, "stop", d], capture_output=True, timeout=60))
    _started[script] = d
    return d


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class S3Server:
    """radosgw; every request made with curl --aws-sigv4 and the user's own keys."""

    def __init__(self, d=None):
        self.dir = d or _server_dir("TRANSFER_S3_SERVER_DIR", "radosgw.sh")
        self.endpoint = _read(self.dir, "endpoint")
        self.region = _read(self.dir, "region")
        self.access_key = _read(self.dir, "access_key")
        self.secret_key = _read(self.dir, "secret_key")

    def curl(self, method, path, *extra, data_file=None, check=True):
        args = ["curl", "-sS", "-g", "--max-time", "60", "-X", method, "--aws-sigv4",
                "aws:amz:%s:s3" % self.region, "--user", "%s:%s" % (self.access_key, self.secret_key),
                "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-w", "\n%{http_code}", *extra]
        if data_file:
            args += ["--data-binary", "@" + data_file]
        r = subprocess.run(args + [self.endpoint + path], capture_output=True, timeout=90)
        if r.returncode != 0:
            raise AssertionError("curl %s %s: %s" % (method, path, r.stderr.decode()))
        body, _, status = r.stdout.rpartition(b"\n")
        status = int(status)
        if check and status >= 300:
            raise AssertionError("%s %s -> %d %s" % (method, path, status, body[:500]))
        return status, body

    def make_bucket(self, prefix="it", test=None):
        """A new empty bucket; with `test`, emptied and removed at its cleanup (the server's
        in-memory store is shared by the whole run)."""
        name = unique(prefix)
        self.curl("PUT", "/" + name)
        if test is not None:
            test.addCleanup(self.drop_bucket, name)
        return name

    def drop_bucket(self, bucket):
        for key, upload_id in self.incomplete_uploads(bucket):
            self.curl("DELETE", "/%s/%s?uploadId=%s" % (bucket, key, upload_id), check=False)
        for key in self.keys(bucket):
            self.curl("DELETE", "/%s/%s" % (bucket, key), check=False)
        self.curl("DELETE", "/" + bucket, check=False)
        # Deleted objects hold the OSD's memory until radosgw's garbage collection runs (hours by
        # default): run it now, or a run of many tests fills the in-memory store.
        subprocess.run(["radosgw-admin", "-c", os.path.join(self.dir, "ceph.conf"), "gc", "process",
                        "--include-all"], capture_output=True, timeout=120)

    def get(self, bucket, key):
        status, body = self.curl("GET", "/%s/%s" % (bucket, key), check=False)
        return body if status == 200 else None

    def head(self, bucket, key):
        status, body = self.curl("HEAD", "/%s/%s" % (bucket, key), "-I", check=False)
        if status != 200:
            return None
        headers = {}
        for line in body.decode(errors="replace").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return headers

    def keys(self, bucket, prefix=""):
        """Every key under prefix (ListObjectsV2, every page)."""
        out, token = [], None
        for _ in range(1000):
            # Sorted and encoded as SigV4's canonical query is: curl signs it as written.
            from urllib.parse import quote
            q = "?" + ("continuation-token=%s&" % quote(token, safe="") if token else "")
            q += "list-type=2&max-keys=1000&prefix=" + quote(prefix, safe="")
            _, body = self.curl("GET", "/%s%s" % (bucket, q))
            root = ET.fromstring(body)
            out += [c.find(S3_NS + "Key").text for c in root.findall(S3_NS + "Contents")]
            if root.findtext(S3_NS + "IsTruncated") != "true":
                return out
            token = root.findtext(S3_NS + "NextContinuationToken")
        raise AssertionError("more than 1000 pages of keys")

    def incomplete_uploads(self, bucket):
        """[(key, upload id)] of ListMultipartUploads."""
        _, body = self.curl("GET", "/%s?uploads=" % bucket)
        root = ET.fromstring(body)
        return [(u.findtext(S3_NS + "Key"), u.findtext(S3_NS + "UploadId")) for u in root.findall(S3_NS + "Upload")]

    def destination(self, name, bucket, key_dir, **fields):
        """A destinations-file entry for `bucket`, its credential files written into key_dir."""
        ak, sk = os.path.join(key_dir, name + "-access"), os.path.join(key_dir, name + "-secret")
        for path, value in ((ak, self.access_key), (sk, self.secret_key)):
            with open(path, "w") as fh:
                fh.write(value + "\n")
            os.chmod(path, 0o600)
        entry = {"name": name, "type": "s3", "endpoint": self.endpoint, "region": self.region,
                 "bucket": bucket, "path_style": True, "access_key_file": ak, "secret_key_file": sk}
        entry.update(fields)
        return entry


class SftpServer:
    """sshd with key-only login as root; remote paths are this machine's own."""

    def __init__(self, d=None):
        self.dir = d or _server_dir("TRANSFER_SFTP_SERVER_DIR", "sshd.sh")
        self.port = int(_read(self.dir, "port"))
        self.upload = os.path.join(self.dir, "upload")

    def make_dir(self, prefix="it"):
        d = os.path.join(self.upload, unique(prefix))
        os.makedirs(d)
        return d

    def destination(self, name, remote_dir, known_hosts=None, **fields):
        entry = {"name": name, "type": "sftp", "host": "127.0.0.1", "port": self.port, "user": "root",
                 "private_key_file": os.path.join(self.dir, "client_key"),
                 "known_hosts_file": known_hosts or os.path.join(self.dir, "known_hosts"),
                 "remote_dir": remote_dir}
        entry.update(fields)
        return entry

    def host_key_sha256(self):
        return _read(self.dir, "host_key_sha256")


class FtpsServer:
    """vsftpd with explicit TLS, one virtual user chrooted to DIR/root."""

    def __init__(self, d=None):
        self.dir = d or _server_dir("TRANSFER_FTPS_SERVER_DIR", "vsftpd.sh")
        self.port = int(_read(self.dir, "port"))
        self.root = os.path.join(self.dir, "root")

    def make_dir(self, prefix="it"):
        """(remote_dir as the login sees it, its path here), writable by the FTP user."""
        rel = "upload/" + unique(prefix)
        d = os.path.join(self.root, rel)
        os.makedirs(d)
        shutil.chown(d, "ftp", "nogroup") if _has_user("ftp") else None
        os.chmod(d, 0o777)
        return "/" + rel, d

    def destination(self, name, remote_dir, key_dir, **fields):
        pw = os.path.join(key_dir, name + "-password")
        with open(pw, "w") as fh:
            fh.write(_read(self.dir, "password") + "\n")
        os.chmod(pw, 0o600)
        entry = {"name": name, "type": "ftps", "host": "127.0.0.1", "port": self.port,
                 "user": _read(self.dir, "user"), "password_file": pw, "remote_dir": remote_dir,
                 "ca_file": os.path.join(self.dir, "ca.pem")}
        entry.update(fields)
        return entry


def _has_user(name):
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def temporaries(d):
    """Names in d (recursively) that look like a transfer's temporary file."""
    out = []
    for root, _, files in os.walk(d):
        out += [os.path.join(root, f) for f in files if re.search(r"\.part$|\.tmp$", f)]
    return out
