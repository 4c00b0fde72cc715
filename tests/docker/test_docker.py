"""The images, the compose stack (alone, with TLS, with clamd), the swarm stack and a mixed
deployment with the Python reference, on a real Docker engine. Run directly (ctest label `docker`):
exits 77 (ctest: skipped) with the reason when no engine can be started; stops only the engine,
containers, stacks and swarm it started. Every wait has a deadline; nothing sleeps a fixed time."""
import glob
import json
import os
import re
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from docker_engine import Engine, ensure_base_image, run  # noqa: E402
from harness import CORPUS, PEER, assert_corpus_outputs, copy_corpus, wait_until  # noqa: E402
from clamd_server import SIGNATURE, eicar  # noqa: E402

PREFIX = "127.0.0.1:5999/"  # a registry nobody answers: swarm's pull fails fast, the local image is used
TAG = "test"
RECEIVER_IMAGE = PREFIX + "app-receiver:" + TAG
SENDER_IMAGE = PREFIX + "app-sender:" + TAG
PEER_IMAGE = PREFIX + "transfer-python-peer:" + TAG
COMPOSE = os.path.join(REPO, "compose", "docker-compose.yml")
STACK = os.path.join(REPO, "compose", "docker-stack.yml")
TLS_OVERRIDE = os.path.join(REPO, "compose", "docker-compose.tls.yml")
CLAMAV_OVERRIDE = os.path.join(REPO, "compose", "docker-compose.clamav.yml")
MIXED = os.path.join(HERE, "docker-compose.mixed.yml")
FANOUT = os.path.join(REPO, "compose", "docker-compose.fanout.yml")
FANOUT_STACK = os.path.join(REPO, "compose", "docker-stack.fanout.yml")
FANOUT_DESTINATIONS = os.path.join(REPO, "compose", "fanout", "destinations.json")
FANOUT_RECEIVERS = ("receiver-a", "receiver-b")  # the services, and the destinations' names
SFTP = os.path.join(REPO, "compose", "docker-compose.sftp.yml")
APP_UID = 10001
BUILD_ENV = dict(os.environ, DOCKER_BUILDKIT="0")  # the classic builder: the client has no buildx
TIMINGS = []


def timed(label, fn, *args, **kw):
    start = time.monotonic()
    result = fn(*args, **kw)
    TIMINGS.append((label, time.monotonic() - start))
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_dir(root, *extra_dirs):
    """scripts/prepare-env.sh as an operator runs it, plus any further directories for uid 10001."""
    run(os.path.join(REPO, "scripts", "prepare-env.sh"), root)
    for d in extra_dirs:
        path = os.path.join(root, d)
        os.makedirs(path, exist_ok=True)
        os.chown(path, APP_UID, APP_UID)


def inspect(container, fmt):
    return run("docker", "inspect", "--format", fmt, container).stdout.decode().strip()


def xml_outputs(directory):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(directory, "*.xml")))


def ledger_uploads(status_db):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(status_db, "receiver.db"), uri=True)
    try:
        return db.execute("select count(*) from uploads").fetchone()[0]
    finally:
        db.close()


def simple_docs(n):
    """Documents every implementation converts (the Python sender cuts names at the first dot)."""
    return {"doc%02d" % i: {"id": i, "name": "doc %d ünï" % i, "ok": i % 2 == 0, "tags": ["a", "b"][: i % 3],
                            "nested": {"x": None, "y": [1, 2.5, "s<&>"]}} for i in range(n)}


def prepare_fanout(test, root):
    """The fan-out layout as its compose file's header says: prepare-env.sh for the sender's
    directory and once per receiver (its output/, status-db/ and own key)."""
    prepare_dir(root)
    keys = []
    for receiver in FANOUT_RECEIVERS:
        prepare_dir(os.path.join(root, receiver))
        with open(os.path.join(root, receiver, "key"), "rb") as fh:
            keys.append(fh.read())
    test.assertNotEqual(keys[0], keys[1])


def assert_fanned_out(test, root, names):
    """Every file at both receivers, as the golden corpus says, each received exactly once."""
    outputs = [os.path.join(root, r, "output") for r in FANOUT_RECEIVERS]
    for receiver, output in zip(FANOUT_RECEIVERS, outputs):
        test.assertEqual(xml_outputs(output), sorted(n + ".xml" for n in names), receiver)
        assert_corpus_outputs(test, names, output)
        test.assertEqual(ledger_uploads(os.path.join(root, receiver, "status-db")), len(names), receiver)
    for n in names:
        with open(os.path.join(outputs[0], n + ".xml"), "rb") as a, open(os.path.join(outputs[1], n + ".xml"), "rb") as b:
            test.assertEqual(a.read(), b.read(), n)


def delivered_by_destination(sender_logs):
    """The sender's `delivered file=F destination=D` lines: {destination: sorted files}."""
    out = {}
    for file, destination in re.findall(r"delivered file=(\S+) destination=(\S+) ", sender_logs):
        out.setdefault(destination, []).append(file)
    return {d: sorted(files) for d, files in out.items()}


def metric(text, family, destination):
    prefix = '%s{destination="%s"} ' % (family, destination)
    values = [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]
    return float(values[0]) if len(values) == 1 else None


class Compose:
    """One docker-compose project, brought down (and its containers removed) by down()."""

    def __init__(self, file, root, **env):
        self.files = file if isinstance(file, tuple) else (file,)
        self.project = "transfer-test-%d-%s" % (os.getpid(), os.path.basename(root).lower().replace("_", ""))
        self.env = dict(os.environ, PWD=root, IMAGE_PREFIX=PREFIX, IMAGE_TAG=TAG, **env)
        self.root = root

    def __call__(self, *args, check=True, timeout=300):
        files = [a for f in self.files for a in ("-f", f)]
        return run("docker-compose", "-p", self.project, *files, *args, env=self.env,
                   cwd=self.root, check=check, timeout=timeout)

    def container(self, service):
        return self("ps", "-q", service).stdout.decode().strip()

    def logs(self):
        return self("logs", "--no-color", check=False).stdout.decode(errors="replace")[-6000:]

    def down(self):
        # -v: the project's named volumes too (clamav-db); the bind-mounted host dirs stay
        self("down", "-t", "5", "--remove-orphans", "-v", check=False)


class ContainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="transfer-docker-")
        timed("base image (debootstrap when missing)", ensure_base_image, cls.work)
        timed("receiver image", run, "docker", "build", "-q", "-f", "receiver/Dockerfile", "-t", RECEIVER_IMAGE, ".",
              cwd=REPO, env=BUILD_ENV, timeout=1800)
        timed("sender image", run, "docker", "build", "-q", "-f", "sender/Dockerfile", "-t", SENDER_IMAGE, ".",
              cwd=REPO, env=BUILD_ENV, timeout=1800)
        peer_ctx = os.path.join(cls.work, "peer-context")
        shutil.copytree(os.path.join(PEER, "app"), os.path.join(peer_ctx, "app"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        timed("python peer image", run, "docker", "build", "-q", "-f", os.path.join(HERE, "Dockerfile.python-peer"),
              "-t", PEER_IMAGE, peer_ctx, env=BUILD_ENV, timeout=1800)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def workdir(self, name):
        root = os.path.join(self.work, name)
        os.makedirs(root)
        return root

    def test_1_test_stage_passes_when_the_tests_pass(self):
        for dockerfile in ("receiver/Dockerfile", "sender/Dockerfile"):
            # The classic builder ran this stage while building the production image (cached here).
            image = timed("--target test " + dockerfile, run, "docker", "build", "-q", "--target", "test", "-f",
                          dockerfile, ".", cwd=REPO, env=BUILD_ENV, timeout=1800).stdout.decode().strip()
            # ... and the stage holds the unit tests, which pass when run again.
            r = run("docker", "run", "--rm", image, "ctest", "--test-dir", "/build", "-L", "unit", "-j", "2")
            self.assertRegex(r.stdout, rb"100% tests passed, 0 tests failed out of [1-9]")

    def test_1_test_stage_fails_when_a_unit_test_fails(self):
        # A copy of the build context with one failing unit test planted in it.
        ctx = os.path.join(self.work, "broken-context")
        shutil.copytree(REPO, ctx, ignore=shutil.ignore_patterns(".git", "build*", "__pycache__"))
        with open(os.path.join(ctx, "tests", "unit", "config_test.cpp"), "a") as fh:
            fh.write('\nTEST(PlantedByDockerTest, FailsOnPurpose) { EXPECT_EQ(1, 2); }\n')
        r = timed("--target test with a failing test", run, "docker", "build", "--force-rm", "--target", "test",
                  "-f", "receiver/Dockerfile", ".", cwd=ctx, env=BUILD_ENV, timeout=1800, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"PlantedByDockerTest.FailsOnPurpose", r.stdout + r.stderr)

    def test_2_production_images(self):
        envs = {}
        for image, program, port in ((RECEIVER_IMAGE, "receiver", "8080/tcp"), (SENDER_IMAGE, "sender", None)):
            config = json.loads(run("docker", "image", "inspect", "--format", "{{json .Config}}", image).stdout)
            envs[image] = dict(line.split("=", 1) for line in config["Env"])
            self.assertEqual(config["User"], "app:app", image)
            self.assertEqual(config["Entrypoint"], [program], image)  # exec form: signals reach it
            self.assertEqual(config["StopSignal"], "SIGTERM", image)
            self.assertEqual(config["Healthcheck"]["Test"], ["CMD", program, "--health-check"], image)
            if port:
                self.assertIn(port, config["ExposedPorts"])
            uid = run("docker", "run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
            self.assertEqual(uid, str(APP_UID).encode(), image)
            # only the runtime: no compiler, no headers, no curl
            leftovers = run("docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
                            "ls /usr/bin/g++ /usr/bin/c++ /usr/bin/curl /usr/include/httplib.h 2>/dev/null",
                            check=False).stdout
            self.assertEqual(leftovers, b"", image)
            size = int(inspect(image, "{{.Size}}"))
            print("\nimage %s: %.1f MB" % (image, size / 1e6), file=sys.stderr)
        self.assertEqual(envs[RECEIVER_IMAGE]["SERVER_IP"], "0.0.0.0")
        self.assertEqual(envs[RECEIVER_IMAGE]["OUTPUT_DIR"], "/usr/src/app-receiver/output")
        self.assertEqual(envs[SENDER_IMAGE]["INPUT_DIR"], "/usr/src/app-sender/input")
        self.assertEqual(envs[SENDER_IMAGE]["STATUS_DB_PATH"], "/usr/src/app-sender/status-db")

    def test_3_compose_delivers_survives_restart_and_stops_promptly(self):
        root = self.workdir("compose")
        prepare_dir(root)
        names = copy_corpus(os.path.join(root, "input"))
        port = free_port()
        compose = Compose(COMPOSE, root, RECEIVER_PUBLISH="127.0.0.1:%d" % port)
        self.addCleanup(compose.down)
        # `up` returns once the receiver is healthy and the sender started (depends_on)
        timed("compose up", compose, "up", "-d", "--no-build")
        receiver, sender = compose.container("app-receiver"), compose.container("app-sender")
        self.assertEqual(inspect(receiver, "{{.State.Health.Status}}"), "healthy")
        output = os.path.join(root, "output")
        try:
            timed("compose delivery", wait_until, lambda: len(xml_outputs(output)) == len(names), timeout=120,
                  what="%d files through compose" % len(names))
        except AssertionError:
            raise AssertionError("not delivered; logs:\n" + compose.logs())
        assert_corpus_outputs(self, names, output)
        curl = run("curl", "-sS", "http://127.0.0.1:%d/" % port)
        self.assertEqual(curl.stdout, b'{"msg":"Server is healthy","status_code":200}\n')
        wait_until(lambda: inspect(sender, "{{.State.Health.Status}}") != "starting", timeout=60,
                   what="sender health")  # its first check runs 10 s after start
        self.assertEqual(inspect(sender, "{{.State.Health.Status}}"), "healthy")

        # Restarting the sender resends nothing: its state is on the host's status-db/.
        uploads = ledger_uploads(os.path.join(root, "status-db"))
        self.assertEqual(uploads, len(names))
        mtimes = {n: os.stat(os.path.join(output, n)).st_mtime_ns for n in xml_outputs(output)}
        timed("sender restart", compose, "restart", "-t", "15", "app-sender")
        with open(os.path.join(root, "input", "after-restart.json"), "w") as fh:
            fh.write('{"after": "restart"}')
        wait_until(lambda: os.path.exists(os.path.join(output, "after-restart.xml")), timeout=60,
                   what="a file dropped after the restart")
        self.assertEqual(ledger_uploads(os.path.join(root, "status-db")), uploads + 1,
                         "the restarted sender sent something twice:\n" + compose.logs())
        for n, t in mtimes.items():
            self.assertEqual(os.stat(os.path.join(output, n)).st_mtime_ns, t, n)

        # `docker stop` of either container: prompt, exit code 0 (init: true forwards SIGTERM).
        # The receiver goes first, while the sender still holds a keep-alive connection to it: it
        # stops accepting at once and exits when that idle connection times out (5 s at most).
        for service, limit in (("app-receiver", 8), ("app-sender", 3)):
            container = compose.container(service)
            start = time.monotonic()
            run("docker", "stop", "-t", "15", container)
            took = time.monotonic() - start
            TIMINGS.append(("docker stop " + service, took))
            self.assertLess(took, limit, service)
            self.assertEqual(inspect(container, "{{.State.ExitCode}}"), "0", service)

    def test_3b_compose_with_the_tls_override(self):
        root = self.workdir("compose-tls")
        prepare_dir(root)
        run(os.path.join(REPO, "scripts", "make-tls-certs.sh"), os.path.join(root, "tls"), "app-receiver", "localhost")
        docs = simple_docs(5)
        for name, obj in docs.items():
            with open(os.path.join(root, "input", name + ".json"), "w") as fh:
                json.dump(obj, fh)
        port = free_port()
        compose = Compose((COMPOSE, TLS_OVERRIDE), root, RECEIVER_PUBLISH="127.0.0.1:%d" % port)
        self.addCleanup(compose.down)
        timed("compose up (TLS)", compose, "up", "-d", "--no-build")  # healthy: --health-check spoke mTLS
        self.assertEqual(inspect(compose.container("app-receiver"), "{{.State.Health.Status}}"), "healthy")
        output = os.path.join(root, "output")
        try:
            wait_until(lambda: len(xml_outputs(output)) == len(docs), timeout=120, what="files over mTLS")
        except AssertionError:
            raise AssertionError("not delivered over TLS; logs:\n" + compose.logs())
        self.assertIn("listening address=https://", compose.logs())
        tls = lambda f: os.path.join(root, "tls", f)
        url = "https://localhost:%d/readyz" % port
        ok = run("curl", "-sS", "--cacert", tls("ca.pem"), "--cert", tls("client.pem"), "--key", tls("client.key"), url)
        self.assertIn(b'"status":"ready"', ok.stdout)
        refused = run("curl", "-sS", "--cacert", tls("ca.pem"), url, check=False)
        self.assertNotEqual(refused.returncode, 0)  # no client certificate, no answer

    def test_3c_compose_fanout_to_two_receivers(self):
        root = self.workdir("compose-fanout")
        prepare_fanout(self, root)
        metrics_port = free_port()
        compose = Compose(FANOUT, root, RECEIVER_A_PUBLISH="127.0.0.1:%d" % free_port(),
                          RECEIVER_B_PUBLISH="127.0.0.1:%d" % free_port(),
                          SENDER_METRICS_PUBLISH="127.0.0.1:%d" % metrics_port)
        self.addCleanup(compose.down)
        # `up` returns once both receivers are healthy and the sender started (depends_on)
        timed("compose up (fan-out)", compose, "up", "-d", "--no-build")
        for receiver in FANOUT_RECEIVERS:
            self.assertEqual(inspect(compose.container(receiver), "{{.State.Health.Status}}"), "healthy")
        names = copy_corpus(os.path.join(root, "input"))  # dropped into the running sender's input
        arrived = lambda: all(len(xml_outputs(os.path.join(root, r, "output"))) == len(names) for r in FANOUT_RECEIVERS)
        try:
            timed("compose delivery (fan-out)", wait_until, arrived, timeout=120,
                  what="%d files at both receivers" % len(names))
        except AssertionError:
            raise AssertionError("not delivered to both; logs:\n" + compose.logs())
        assert_fanned_out(self, root, names)

        # The sender counts, logs and checks each destination on its own.
        url = "http://127.0.0.1:%d/" % metrics_port
        for receiver in FANOUT_RECEIVERS:
            wait_until(lambda: metric(run("curl", "-sS", url + "metrics").stdout.decode(),
                                      "transfer_sender_files_delivered_total", receiver) == len(names),
                       timeout=10, what="delivered_total of %s" % receiver)
        readyz = run("curl", "-sS", url + "readyz").stdout.decode()
        self.assertIn('"status":"ready"', readyz)
        for receiver in FANOUT_RECEIVERS:
            self.assertIn("receiver:" + receiver, readyz)
        want = {r: sorted(n + ".json" for n in names) for r in FANOUT_RECEIVERS}
        sender_logs = lambda: compose("logs", "--no-color", "app-sender").stdout.decode(errors="replace")
        wait_until(lambda: delivered_by_destination(sender_logs()) == want, timeout=10,
                   what="one delivered line per file and destination")

    def test_3d_compose_sftp_destination(self):
        from harness import expected_xml, write_json
        root = self.workdir("compose-sftp")
        prepare_dir(root)  # input/ status-db/, and output/: the SFTP server's upload directory
        keys = os.path.join(root, "sftp-keys")
        run(os.path.join(REPO, "compose", "sftp", "make-keys.sh"), keys)  # as the compose file's header says
        metrics = "127.0.0.1:%d" % free_port()
        readyz_url = "http://%s/readyz" % metrics
        compose = Compose(SFTP, root, SENDER_METRICS_PUBLISH=metrics, DOCKER_BUILDKIT="0")
        self.addCleanup(compose.down)
        timed("sftp image", compose, "build", "-q", "sftp", timeout=1800)
        # `up` returns once sshd answers (the sftp healthcheck) and the sender started (depends_on)
        timed("compose up (sftp)", compose, "up", "-d", "--no-build")
        self.assertEqual(inspect(compose.container("sftp"), "{{.State.Health.Status}}"), "healthy")
        output = os.path.join(root, "output")
        names = copy_corpus(os.path.join(root, "input"))  # dropped into the running sender's input
        docs = simple_docs(4)
        for name, doc in docs.items():
            write_json(os.path.join(root, "input", name + ".json"), doc)
        want = sorted(n + ".xml" for n in names + list(docs))
        try:
            timed("compose delivery (sftp)", wait_until, lambda: set(want) <= set(os.listdir(output)), timeout=120,
                  what="%d files on the SFTP server" % len(want))
        except AssertionError:
            raise AssertionError("not delivered over SFTP; logs:\n" + compose.logs())
        # final names only: every temporary ".NAME.TAG.part" was renamed (none left behind)
        self.assertEqual(sorted(os.listdir(output)), want)
        assert_corpus_outputs(self, names, output)  # the golden XML, byte for byte
        for name, doc in docs.items():  # and the old sender's XML (dicttoxml) for the others
            with open(os.path.join(output, name + ".xml"), "rb") as fh:
                self.assertEqual(fh.read(), expected_xml(doc), name)
        for f in want:  # written by the SFTP user, uid 10001, as prepare-env.sh made output/ for
            self.assertEqual(os.stat(os.path.join(output, f)).st_uid, APP_UID, f)
        sender_logs = lambda: compose("logs", "--no-color", "app-sender").stdout.decode(errors="replace")
        wait_until(lambda: delivered_by_destination(sender_logs()) == {"partner": sorted(n + ".json" for n in
                                                                                         names + list(docs))},
                   timeout=10, what="one delivered line per file")
        checks = json.loads(run("curl", "-sS", readyz_url).stdout)["checks"]
        self.assertTrue(checks["sftp:partner"]["ok"], checks)

        # known_hosts listing another key for host sftp: the sender refuses the server before it
        # logs in, says why, and delivers nothing.
        compose.down()
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(root, "other_host_key"))
        with open(os.path.join(root, "other_host_key.pub")) as fh:
            other = " ".join(fh.read().split()[:2])
        with open(os.path.join(keys, "known_hosts"), "w") as fh:
            fh.write("sftp %s\n" % other)
        write_json(os.path.join(root, "input", "after-wrong-key.json"), {"not": "delivered"})
        timed("compose up again (sftp, wrong known_hosts)", compose, "up", "-d", "--no-build")
        refusals = lambda: [line for line in sender_logs().splitlines()
                            if "failed file=after-wrong-key.json" in line and "host key CHANGED, refused" in line]
        try:
            wait_until(refusals, timeout=60, what="the sender refusing the host key")
        except AssertionError:
            raise AssertionError("no refusal logged; logs:\n" + compose.logs())
        offered = run("ssh-keygen", "-l", "-f", os.path.join(keys, "ssh_host_ed25519_key.pub")).stdout.split()[1]
        self.assertIn(offered.decode(), refusals()[0])  # the key the server offered, by fingerprint
        self.assertIn("known_hosts_file /run/secrets/sftp_known_hosts", refusals()[0])
        checks = json.loads(run("curl", "-sS", readyz_url).stdout)["checks"]
        self.assertFalse(checks["sftp:partner"]["ok"], checks)
        self.assertIn("host key CHANGED", checks["sftp:partner"]["detail"])
        self.assertEqual(sorted(os.listdir(output)), want)  # refused before login: nothing written

    def test_4_swarm_with_the_key_as_a_secret(self):
        state = run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.decode().strip()
        if state != "active":
            run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
            self.addCleanup(run, "docker", "swarm", "leave", "--force", check=False)
        root = self.workdir("swarm")
        prepare_dir(root)
        names = copy_corpus(os.path.join(root, "input"))
        if run("docker", "secret", "inspect", "app-sender-receiver-key", check=False).returncode == 0:
            self.fail("a secret app-sender-receiver-key exists already; not ours to replace")
        run(os.path.join(REPO, "scripts", "create-docker-secret.sh"), os.path.join(root, "key"))
        self.addCleanup(run, "docker", "secret", "rm", "app-sender-receiver-key", check=False)
        again = run(os.path.join(REPO, "scripts", "create-docker-secret.sh"), check=False)
        self.assertNotEqual(again.returncode, 0)  # never replaced
        self.assertIn(b"exists, kept", again.stderr)
        port = free_port()
        stack = "transfertest%d" % os.getpid()
        env = dict(os.environ, PWD=root, IMAGE_PREFIX=PREFIX, IMAGE_TAG=TAG, RECEIVER_PUBLISH_PORT=str(port))
        self.addCleanup(self.remove_stack, stack)
        timed("stack deploy", run, "docker", "stack", "deploy", "--resolve-image", "never", "-c", STACK, stack,
              env=env, cwd=root)
        output = os.path.join(root, "output")

        def tasks():
            return run("docker", "stack", "ps", "--no-trunc", stack, check=False).stdout.decode(errors="replace")
        try:
            timed("swarm delivery", wait_until, lambda: len(xml_outputs(output)) == len(names), timeout=180,
                  what="%d files through the swarm" % len(names))
        except AssertionError:
            raise AssertionError("not delivered; tasks:\n%s\nlogs:\n%s" % (tasks(), self.service_logs(stack)))
        assert_corpus_outputs(self, names, output)
        wait_until(lambda: run("curl", "-sS", "http://127.0.0.1:%d/" % port, check=False).returncode == 0,
                   timeout=30, what="published port in host mode")
        self.assertEqual(run("curl", "-sS", "http://127.0.0.1:%d/" % port).stdout,
                         b'{"msg":"Server is healthy","status_code":200}\n')
        # the secret is mounted for the image's user only
        container = run("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=%s_app-sender" % stack
                        ).stdout.decode().split()[0]
        mode = run("docker", "exec", container, "stat", "-c", "%a %u", "/run/secrets/app-sender-receiver-key").stdout
        self.assertEqual(mode.strip(), b"400 10001")

        # Key rotation as README "Deploy" does it: three secrets, a redeploy with KEY_SECRET each,
        # a file delivered after every step, and at the end the old key refused.
        old = run("docker", "exec", container, "cat", "/run/secrets/app-sender-receiver-key").stdout.strip()
        new = run("sh", "-c", "dd if=/dev/urandom bs=32 count=1 2>/dev/null | openssl base64").stdout.strip()
        for step, lines in ((1, [old, new]), (2, [new, old]), (3, [new])):
            secret = "transfer-test-key-step%d" % step
            run("docker", "secret", "create", secret, "-", input=b"\n".join(lines) + b"\n")
            self.addCleanup(run, "docker", "secret", "rm", secret, check=False)
            timed("rotation step %d" % step, self.redeploy, stack, dict(env, KEY_SECRET=secret))
            with open(os.path.join(root, "input", "rotated-%d.json" % step), "w") as fh:
                fh.write('{"step": %d}' % step)
            wait_until(lambda: os.path.exists(os.path.join(output, "rotated-%d.xml" % step)), timeout=90,
                       what="a file after rotation step %d" % step)
        from cryptography.fernet import Fernet
        with open(os.path.join(root, "token"), "wb") as fh:
            fh.write(Fernet(old).encrypt(b"<all/>"))
        # The stack requires signed uploads: a token by hand (curl, no signature) is refused before
        # its body is read, whatever its key.
        refused = run("curl", "-sS", "-w", "\n%{http_code}", "-F", "file=@" + os.path.join(root, "token"),
                      "http://127.0.0.1:%d/upload/old-key" % port)
        body, code = refused.stdout.rsplit(b"\n", 1)
        self.assertEqual(code, b"401")
        self.assertIn(b"signed uploads only", body)

    def test_4b_swarm_fanout_with_a_config_and_a_secret_per_key(self):
        state = run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.decode().strip()
        if state != "active":
            run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
            self.addCleanup(run, "docker", "swarm", "leave", "--force", check=False)
        root = self.workdir("swarm-fanout")
        prepare_fanout(self, root)
        stack = "transferfanout%d" % os.getpid()
        ports = {r: free_port() for r in FANOUT_RECEIVERS}
        env = dict(os.environ, PWD=root, IMAGE_PREFIX=PREFIX, IMAGE_TAG=TAG, DESTINATIONS_VERSION=stack,
                   RECEIVER_A_PUBLISH_PORT=str(ports["receiver-a"]), RECEIVER_B_PUBLISH_PORT=str(ports["receiver-b"]))
        for receiver, var in zip(FANOUT_RECEIVERS, ("KEY_A_SECRET", "KEY_B_SECRET")):
            secret = env[var] = "%s-%s-key" % (stack, receiver)  # each key its own swarm secret
            run(os.path.join(REPO, "scripts", "create-docker-secret.sh"), os.path.join(root, receiver, "key"),
                env=dict(os.environ, SECRET_NAME=secret))
            self.addCleanup(run, "docker", "secret", "rm", secret, check=False)
        self.addCleanup(run, "docker", "config", "rm", "app-sender-destinations-" + stack, check=False)
        self.addCleanup(self.remove_stack, stack)
        timed("stack deploy (fan-out)", run, "docker", "stack", "deploy", "--resolve-image", "never",
              "-c", FANOUT_STACK, stack, env=env, cwd=root)
        names = copy_corpus(os.path.join(root, "input"))
        arrived = lambda: all(len(xml_outputs(os.path.join(root, r, "output"))) == len(names) for r in FANOUT_RECEIVERS)
        services = FANOUT_RECEIVERS + ("app-sender",)
        try:
            timed("swarm delivery (fan-out)", wait_until, arrived, timeout=180,
                  what="%d files at both receivers through the swarm" % len(names))
        except AssertionError:
            raise AssertionError("not delivered to both; tasks:\n%s\nlogs:\n%s" % (
                run("docker", "stack", "ps", "--no-trunc", stack, check=False).stdout.decode(errors="replace"),
                self.service_logs(stack, services)))
        assert_fanned_out(self, root, names)
        for receiver in FANOUT_RECEIVERS:  # each receiver's port, published in host mode
            self.assertEqual(run("curl", "-sS", "--retry", "5", "--retry-connrefused", "--retry-delay", "1",
                                 "http://127.0.0.1:%d/" % ports[receiver]).stdout,
                             b'{"msg":"Server is healthy","status_code":200}\n', receiver)

        def container(service):
            return run("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=%s_%s" % (stack, service)
                       ).stdout.decode().split()[0]
        sender = container("app-sender")
        # the config is the destinations file, and the sender holds both keys, for its user only ...
        with open(FANOUT_DESTINATIONS, "rb") as fh:
            self.assertEqual(run("docker", "exec", sender, "cat", "/etc/app-sender/destinations.json").stdout, fh.read())
        modes = run("docker", "exec", sender, "stat", "-c", "%n %a %u", "/run/secrets/key-a", "/run/secrets/key-b").stdout
        self.assertEqual(modes.split(b"\n")[:2], [b"/run/secrets/key-a 400 10001", b"/run/secrets/key-b 400 10001"])
        # ... while each receiver holds only its own
        for receiver, key in zip(FANOUT_RECEIVERS, ("key-a", "key-b")):
            listing = run("docker", "exec", container(receiver), "ls", "/run/secrets").stdout
            self.assertEqual(listing.split(), [key.encode()], receiver)
        want = {r: sorted(n + ".json" for n in names) for r in FANOUT_RECEIVERS}

        def sender_logs():  # the sender logs to stderr, which `docker service logs` keeps apart
            r = run("docker", "service", "logs", "--raw", stack + "_app-sender")
            return (r.stdout + r.stderr).decode(errors="replace")
        wait_until(lambda: delivered_by_destination(sender_logs()) == want, timeout=10,
                   what="one delivered line per file and destination")

    def redeploy(self, stack, env):
        """docker stack deploy again, and wait until both services finished updating."""
        run("docker", "stack", "deploy", "--resolve-image", "never", "-c", STACK, stack, env=env, cwd=env["PWD"])

        def updated():
            states = [run("docker", "service", "inspect", "-f",
                          "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", "%s_%s" % (stack, s)
                          ).stdout.decode().strip() for s in ("app-receiver", "app-sender")]
            if any("rollback" in state for state in states):
                raise AssertionError("an update rolled back (%s); tasks:\n%s\nlogs:\n%s" % (
                    states, run("docker", "stack", "ps", "--no-trunc", stack, check=False).stdout.decode(
                        errors="replace"), self.service_logs(stack)))
            return all(state == "completed" for state in states)
        wait_until(updated, timeout=120, what="both services updated")

    def service_logs(self, stack, services=("app-receiver", "app-sender")):
        out = ""
        for service in services:
            out += run("docker", "service", "logs", "--raw", "%s_%s" % (stack, service),
                       check=False, timeout=30).stdout.decode(errors="replace")[-3000:]
        return out

    def remove_stack(self, stack):
        run("docker", "stack", "rm", stack, check=False)
        wait_until(lambda: run("docker", "network", "ls", "-q", "-f", "label=com.docker.stack.namespace=" + stack
                               ).stdout.strip() == b"" and
                   run("docker", "ps", "-aq", "-f", "label=com.docker.stack.namespace=" + stack
                       ).stdout.strip() == b"", timeout=60, what="stack removed")

    def test_5_mixed_with_the_python_reference(self):
        root = self.workdir("mixed")
        prepare_dir(root, "in-ours", "in-py", "out-ours", "out-py", "status-db-py")
        names = copy_corpus(os.path.join(root, "in-ours"))
        docs = simple_docs(8)
        for name, doc in docs.items():
            with open(os.path.join(root, "in-py", name + ".json"), "w", encoding="utf-8") as fh:
                json.dump(doc, fh, ensure_ascii=False)
        compose = Compose(MIXED, root)
        self.addCleanup(compose.down)
        timed("mixed up", compose, "up", "-d", "--no-build")

        def same(directory, name, want_path):
            got, want = os.path.join(directory, name + ".xml"), want_path(name)
            if not (os.path.exists(got) and os.path.exists(want)):
                return False
            with open(got, "rb") as a, open(want, "rb") as b:
                return a.read() == b.read()  # the Python receiver writes in place: wait for all of it
        expected = lambda n: os.path.join(CORPUS, "expected", n + ".xml")
        python_xml = lambda n: os.path.join(root, "in-py", n + ".xml")  # the Python sender's own XML
        try:
            timed("mixed delivery", wait_until, lambda: all(same(os.path.join(root, "out-py"), n, expected) for n in names)
                  and all(same(os.path.join(root, "out-ours"), n, python_xml) for n in docs), timeout=120,
                  what="our sender -> Python receiver and Python sender -> our receiver")
        except AssertionError:
            raise AssertionError("not delivered; logs:\n" + compose.logs())
        self.assertEqual(xml_outputs(os.path.join(root, "out-ours")), sorted(n + ".xml" for n in docs))

    def test_6_compose_with_clamav(self):
        root = self.workdir("compose-clamav")
        prepare_dir(root)
        port = free_port()
        compose = Compose((COMPOSE, CLAMAV_OVERRIDE), root, RECEIVER_PUBLISH="127.0.0.1:%d" % port,
                          DOCKER_BUILDKIT="0")
        self.addCleanup(compose.down)
        timed("clamav image", compose, "build", "-q", "clamav", timeout=1800)
        # The database volume holds one custom body signature for EICAR and nothing else (the
        # official databases need the network, and hundreds of MiB and tens of seconds to load);
        # written by the image's own user before clamd first starts, as freshclam would be.
        ndb = "%s:0:*:%s" % (SIGNATURE, eicar().hex())
        compose("run", "--rm", "-T", "--no-deps", "-e", "NDB=" + ndb, "clamav",
                "sh", "-c", 'printf "%s\\n" "$NDB" >/var/lib/clamav/eicar.ndb')
        listing = compose("run", "--rm", "-T", "--no-deps", "clamav", "ls", "-A", "/var/lib/clamav").stdout
        self.assertEqual(listing.split(), [b"eicar.ndb"])

        infected = {"id": 1, "note": "carries the EICAR test string", "payload": eicar().decode()}
        for name, doc in (("infected", infected), ("clean", {"id": 2, "note": "nothing to see"})):
            with open(os.path.join(root, "input", name + ".json"), "w") as fh:
                json.dump(doc, fh)
        # `up` returns once clamav and then the receiver are healthy (depends_on) and the sender started
        timed("compose up (clamav)", compose, "up", "-d", "--no-build")
        self.assertEqual(inspect(compose.container("clamav"), "{{.State.Health.Status}}"), "healthy")
        self.assertEqual(inspect(compose.container("app-receiver"), "{{.State.Health.Status}}"), "healthy")

        output = os.path.join(root, "output")
        reason_file = os.path.join(root, "input", ".quarantine", "infected.json.reason")
        try:
            timed("compose delivery and refusal (clamav)", wait_until,
                  lambda: os.path.exists(os.path.join(output, "clean.xml")) and os.path.exists(reason_file),
                  timeout=120, what="clean.xml delivered and infected.json quarantined")
        except AssertionError:
            raise AssertionError("not delivered or not refused; logs:\n" + compose.logs())
        with open(reason_file) as fh:
            reason = fh.read()
        self.assertIn("refused by virus scan: %s.UNOFFICIAL" % SIGNATURE, reason)
        self.assertIn("receiver_status: 422", reason)
        self.assertTrue(os.path.exists(os.path.join(root, "input", ".quarantine", "infected.json")))
        self.assertEqual(sorted(os.listdir(output)), ["clean.xml"])  # nothing of the infected one
        with open(os.path.join(output, "clean.xml"), "rb") as fh:
            self.assertIn(b"nothing to see", fh.read())

        # /readyz asks clamd for zPING and zVERSION: it names the ClamAV in the clamav image.
        version = run("docker", "exec", compose.container("clamav"), "clamd", "--version").stdout.decode().split("/")[0]
        self.assertRegex(version, r"^ClamAV \d+\.\d+")
        readyz = run("curl", "-sS", "http://127.0.0.1:%d/readyz" % port).stdout.decode()
        self.assertIn('"status":"ready"', readyz)
        self.assertIn("clamav:3310 answers: " + version.strip(), readyz)


def main():
    work = tempfile.mkdtemp(prefix="transfer-engine-")
    engine = Engine(work)
    why = engine.start()
    if why:
        print("SKIPPED: no Docker engine can be started here: %s" % why)
        shutil.rmtree(work, ignore_errors=True)
        return 77
    start = time.monotonic()
    try:
        result = unittest.main(argv=[sys.argv[0], "-v", *sys.argv[1:]], exit=False).result
    finally:
        engine.stop()
        shutil.rmtree(work, ignore_errors=True)
    TIMINGS.append(("docker tests in all", time.monotonic() - start))
    for what, seconds in TIMINGS:
        print("timing: %-45s %6.1f s" % (what, seconds))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
