"""A Docker engine for the container tests, as ../shared/docker.md describes: use the one that
answers, or start Debian's dockerd (and stop it by PID afterwards); build the debian:bookworm-slim
base image with debootstrap when it is missing (no registry is reachable)."""
import os
import shutil
import subprocess
import time


def run(*args, check=True, timeout=600, **kw):
    """Runs a command; on failure raises with its output, so a failed step says why."""
    r = subprocess.run(list(args), capture_output=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\n%s\n%s" % (" ".join(args), r.returncode,
                                                      r.stdout.decode(errors="replace")[-4000:],
                                                      r.stderr.decode(errors="replace")[-4000:]))
    return r


def engine_answers():
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


class Engine:
    """The engine the tests use; stop() stops it only if start() started it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None  # the dockerd this object started, if any

    def start(self, timeout=60):
        """Returns None when an engine answers, or the reason none can be started."""
        if shutil.which("docker") is None:
            return "no docker client (apt-get install docker.io)"
        if engine_answers():
            return None
        if shutil.which("dockerd") is None:
            return "no engine answers and dockerd is not installed (apt-get install docker.io)"
        if os.geteuid() != 0:
            return "no engine answers and starting dockerd needs root"
        log = open(os.path.join(self.workdir, "dockerd.log"), "ab")
        proc = self.proc = subprocess.Popen(["dockerd", "--storage-driver=overlay2"], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.proc = None
                return "dockerd exited %d: %s" % (proc.returncode, self.log_tail())
            if engine_answers():
                return None
            time.sleep(0.5)
        self.stop()
        return "dockerd did not answer within %ds: %s" % (timeout, self.log_tail())

    def log_tail(self):
        try:
            with open(os.path.join(self.workdir, "dockerd.log"), errors="replace") as fh:
                return fh.read()[-1500:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()  # dockerd stops its containerd and containers
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def ensure_base_image(workdir, name="debian:bookworm-slim"):
    """Builds the base image from Debian's mirror with debootstrap unless it is already there."""
    if run("docker", "image", "inspect", name, check=False).returncode == 0:
        return False
    mirror = "http://deb.debian.org/debian"
    sources = "/etc/apt/sources.list.d/debian.sources"
    if os.path.exists(sources):
        with open(sources) as fh:
            for line in fh:
                if line.startswith("URIs:"):
                    mirror = line.split()[1]
                    break
    rootfs = os.path.join(workdir, "rootfs")
    run("debootstrap", "--variant=minbase", "bookworm", rootfs, mirror, timeout=900)
    run("chroot", rootfs, "apt-get", "clean")
    shutil.rmtree(os.path.join(rootfs, "var/lib/apt/lists"), ignore_errors=True)
    os.makedirs(os.path.join(rootfs, "var/lib/apt/lists/partial"), exist_ok=True)
    open(os.path.join(rootfs, "etc/resolv.conf"), "w").close()
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["docker", "import", "--change", 'CMD ["bash"]', "-", name],
                              stdin=tar.stdout, capture_output=True, timeout=600)
    tar.stdout.close()
    tar.wait()
    if imported.returncode != 0:
        raise AssertionError("docker import failed: %s" % imported.stderr.decode(errors="replace"))
    shutil.rmtree(rootfs, ignore_errors=True)
    return True
