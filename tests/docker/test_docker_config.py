"""The compose and stack files validate with no engine at all, and say what the deployment needs."""
import json
import os
import subprocess
import unittest
from urllib.parse import urlsplit

import yaml  # python3-yaml: docker-compose itself depends on it

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
COMPOSE = os.path.join(REPO, "compose", "docker-compose.yml")
STACK = os.path.join(REPO, "compose", "docker-stack.yml")
TLS = os.path.join(REPO, "compose", "docker-compose.tls.yml")
CLAMAV = os.path.join(REPO, "compose", "docker-compose.clamav.yml")
MIXED = os.path.join(REPO, "tests", "docker", "docker-compose.mixed.yml")
FANOUT = os.path.join(REPO, "compose", "docker-compose.fanout.yml")
FANOUT_STACK = os.path.join(REPO, "compose", "docker-stack.fanout.yml")
DESTINATIONS = os.path.join(REPO, "compose", "fanout", "destinations.json")
SFTP = os.path.join(REPO, "compose", "docker-compose.sftp.yml")
SFTP_DESTINATIONS = os.path.join(REPO, "compose", "sftp", "destinations.json")
# No engine: a socket nobody listens on, so nothing here can depend on one.
ENV = dict(os.environ, PWD="/srv/transfer", DOCKER_HOST="unix:///nonexistent/docker.sock")


def config(*args):
    r = subprocess.run(list(args), capture_output=True, env=ENV, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr.decode()))
    return r.stdout.decode()


def shared_stages(dockerfile):
    """The build and test stages: from the first FROM to the production stage's FROM."""
    with open(os.path.join(REPO, dockerfile)) as fh:
        text = fh.read()
    return text[text.index("FROM debian:bookworm-slim AS build"):text.index("FROM debian:bookworm-slim AS production")]


class ConfigTest(unittest.TestCase):
    def test_dockerfiles_share_their_build_and_test_stages(self):
        # Kept identical on purpose: the second image reuses the first one's build from the cache.
        self.assertEqual(shared_stages("receiver/Dockerfile"), shared_stages("sender/Dockerfile"))

    def test_compose_files_validate(self):
        for f in (COMPOSE, MIXED, FANOUT, SFTP):
            config("docker-compose", "-f", f, "config", "-q")

    def test_compose_file_keeps_the_old_layout(self):
        out = config("docker-compose", "-f", COMPOSE, "config")
        for want in ("/srv/transfer/input:/usr/src/app-sender/input",
                     "/srv/transfer/output:/usr/src/app-receiver/output",
                     "/srv/transfer/status-db:/usr/src/app-sender/status-db",
                     "/srv/transfer/key:/run/secrets/decryption_key:ro",
                     "/srv/transfer/key:/run/secrets/encryption_key:ro",
                     "RECEIVER_ADDRESS: app-receiver", "condition: service_healthy", "init: true",
                     "restart: unless-stopped", "published: 8080", "target: 8080", "image: app-receiver:latest"):
            self.assertIn(want, out)

    def test_tls_override_turns_on_https_and_client_certificates(self):
        out = config("docker-compose", "-f", COMPOSE, "-f", TLS, "config")
        for want in ("TLS_CERT_FILE: /run/tls/server.pem", "TLS_KEY_FILE: /run/tls/server.key",
                     "CLIENT_CA_FILE: /run/tls/ca.pem", "RECEIVER_SCHEME: https", "CA_FILE: /run/tls/ca.pem",
                     "CLIENT_CERT_FILE: /run/tls/client.pem", "CLIENT_KEY_FILE: /run/tls/client.key",
                     "/srv/transfer/tls:/run/tls:ro", "RECEIVER_ADDRESS: app-receiver",
                     "/srv/transfer/key:/run/secrets/decryption_key:ro"):
            self.assertIn(want, out)

    def test_clamav_override_adds_clamd_and_points_the_receiver_at_it(self):
        out = config("docker-compose", "-f", COMPOSE, "-f", CLAMAV, "config")
        for want in ("image: app-clamav:latest", "context: " + os.path.join(REPO, "compose", "clamav"),
                     "clamav-db:/var/lib/clamav", "CLAMD_ADDRESS: clamav:3310", "condition: service_healthy",
                     "UPLOAD_SIGNATURES: required", "/srv/transfer/key:/run/secrets/decryption_key:ro"):
            self.assertIn(want, out)
        self.assertIn("volumes:\n  clamav-db: {}", out)  # a named volume: the database outlives `down`
        receiver = out[out.index("  app-receiver:"):out.index("  app-sender:")]
        self.assertIn("depends_on:\n      clamav:\n        condition: service_healthy", receiver)
        # with TLS as well: the overrides combine
        config("docker-compose", "-f", COMPOSE, "-f", TLS, "-f", CLAMAV, "config", "-q")

    def test_clamd_conf_listens_on_tcp_and_caps_streams(self):
        with open(os.path.join(REPO, "compose", "clamav", "clamd.conf")) as fh:
            conf = dict(line.split(None, 1) for line in fh.read().splitlines() if line and not line.startswith("#"))
        self.assertEqual(conf["TCPSocket"], "3310")
        self.assertEqual(conf["TCPAddr"], "0.0.0.0")
        self.assertEqual(conf["Foreground"], "yes")
        self.assertEqual(conf["DatabaseDirectory"], "/var/lib/clamav")
        # whatever passes StreamMaxLength is scanned whole, not skipped as "too large"
        self.assertEqual(conf["MaxFileSize"], conf["StreamMaxLength"])
        self.assertEqual(conf["MaxScanSize"], conf["StreamMaxLength"])

    def test_stack_file_validates_and_uses_the_secret(self):
        out = config("docker", "stack", "config", "-c", STACK)
        for want in ("DECRYPTION_KEY: /run/secrets/app-sender-receiver-key",
                     "ENCRYPTION_KEY: /run/secrets/app-sender-receiver-key",
                     "source: app-sender-receiver-key", "external: true", "endpoint_mode: dnsrr",
                     "mode: host", "/srv/transfer/input", "limits:", "update_config:", "restart_policy:"):
            self.assertIn(want, out)

    def fanout_destinations(self):
        with open(DESTINATIONS) as fh:
            destinations = json.load(fh)["destinations"]
        self.assertEqual(len(destinations), 2)
        for d in destinations:
            self.assertRegex(d["name"], r"^[a-z0-9_-]{1,32}$")
        self.assertEqual(len({d["name"] for d in destinations}), 2)
        self.assertEqual(len({d["key_file"] for d in destinations}), 2, "two receivers, two keys")
        return destinations

    def test_fanout_compose_file_pairs_each_destination_with_its_receiver_and_key(self):
        services = yaml.safe_load(config("docker-compose", "-f", FANOUT, "config"))["services"]
        sender = services["app-sender"]
        mounts = dict(v.split(":")[1::-1] for v in sender["volumes"])  # container path -> host path
        self.assertEqual(mounts[sender["environment"]["DESTINATIONS_FILE"]], DESTINATIONS)
        self.assertEqual(mounts["/usr/src/app-sender/input"], "/srv/transfer/input")
        self.assertEqual(mounts["/usr/src/app-sender/status-db"], "/srv/transfer/status-db")
        self.assertTrue(all(v.endswith(":ro") for v in sender["volumes"] if "/run/secrets/" in v))
        self.assertNotIn("ENCRYPTION_KEY", sender["environment"])  # the destinations name the keys
        self.assertNotIn("RECEIVER_ADDRESS", sender["environment"])
        host_keys = set()
        for d in self.fanout_destinations():
            url = urlsplit(d["url"])
            receiver = services[url.hostname]  # the url names a service of this file
            self.assertEqual((url.scheme, url.port, url.path), ("http", 8080, "/upload"), d["name"])
            self.assertEqual(sender["depends_on"][url.hostname], {"condition": "service_healthy"})
            env = receiver["environment"]
            self.assertEqual(env["UPLOAD_SIGNATURES"], "required", d["name"])
            own = dict(v.split(":")[1::-1] for v in receiver["volumes"])
            # the receiver decrypts with the very file the sender encrypts with for it
            self.assertEqual(own[env["DECRYPTION_KEY"]], mounts[d["key_file"]], d["name"])
            self.assertIn(env["DECRYPTION_KEY"] + ":ro", " ".join(receiver["volumes"]))
            host_keys.add(own[env["DECRYPTION_KEY"]])
            self.assertEqual(own["/usr/src/app-receiver/output"], "/srv/transfer/%s/output" % url.hostname)
            self.assertEqual(own["/usr/src/app-receiver/status-db"], "/srv/transfer/%s/status-db" % url.hostname)
            for key in ("init", "restart", "image", "stop_grace_period"):
                self.assertEqual(receiver[key], services["receiver-a"][key], key)
            self.assertTrue(receiver["init"])
        self.assertEqual(len(host_keys), 2)

    def test_sftp_compose_file_gives_the_sender_the_key_and_host_key_its_destination_names(self):
        services = yaml.safe_load(config("docker-compose", "-f", SFTP, "config"))["services"]
        sender, server = services["app-sender"], services["sftp"]
        mounts = dict(v.split(":")[1::-1] for v in sender["volumes"])  # container path -> host path
        own = dict(v.split(":")[1::-1] for v in server["volumes"])
        self.assertEqual(mounts[sender["environment"]["DESTINATIONS_FILE"]], SFTP_DESTINATIONS)
        self.assertEqual(mounts["/usr/src/app-sender/input"], "/srv/transfer/input")
        self.assertTrue(all(v.endswith(":ro") for v in sender["volumes"] + server["volumes"] if "/run/secrets/" in v))
        with open(SFTP_DESTINATIONS) as fh:
            d, = json.load(fh)["destinations"]
        self.assertEqual((d["type"], d["host"], d["port"], d["payload"]), ("sftp", "sftp", 22, "xml"))
        self.assertIn(d["host"], services)  # the server is a service of this file ...
        self.assertEqual(sender["depends_on"][d["host"]], {"condition": "service_healthy"})
        # ... holding the host key known_hosts lists and the public half of the sender's key
        keys = "/srv/transfer/sftp-keys/"
        self.assertEqual(mounts[d["known_hosts_file"]], keys + "known_hosts")
        self.assertEqual(mounts[d["private_key_file"]], keys + "client_key")
        self.assertEqual(own["/run/secrets/sftp_host_key"], keys + "ssh_host_ed25519_key")
        self.assertEqual(own["/run/secrets/sftp_authorized_keys"], keys + "client_key.pub")
        self.assertNotIn(keys + "ssh_host_ed25519_key", mounts.values())  # the server's private key stays there
        self.assertEqual(own["/srv/sftp" + d["remote_dir"]], "/srv/transfer/output")  # chroot /srv/sftp
        with open(os.path.join(REPO, "compose", "sftp", "sshd_config")) as fh:
            conf = [line.split() for line in fh if line.strip() and not line.startswith("#")]
        self.assertIn(["ChrootDirectory", "/srv/sftp"], conf)
        self.assertIn(["Subsystem", "sftp", "internal-sftp"], conf)
        self.assertIn(["PasswordAuthentication", "no"], conf)
        self.assertIn(["AuthenticationMethods", "publickey"], conf)
        self.assertIn(["AllowUsers", d["user"]], conf)

    def test_fanout_stack_file_has_the_destinations_config_and_one_secret_per_key(self):
        doc = yaml.safe_load(config("docker", "stack", "config", "-c", FANOUT_STACK))
        services = doc["services"]
        sender = services["app-sender"]
        config_mount, = sender["configs"]
        self.assertEqual(config_mount["target"], sender["environment"]["DESTINATIONS_FILE"])
        self.assertEqual(doc["configs"][config_mount["source"]]["file"], DESTINATIONS)
        secret_of = {"/run/secrets/" + s["target"]: s["source"] for s in sender["secrets"]}
        secrets = set()
        for d in self.fanout_destinations():
            url = urlsplit(d["url"])
            receiver = services[url.hostname]
            self.assertEqual(receiver["environment"]["UPLOAD_SIGNATURES"], "required", d["name"])
            own = {"/run/secrets/" + s["target"]: s["source"] for s in receiver["secrets"]}
            self.assertEqual(len(own), 1, "a receiver holds its own key only")
            self.assertEqual(own[receiver["environment"]["DECRYPTION_KEY"]], secret_of[d["key_file"]], d["name"])
            self.assertTrue(doc["secrets"][secret_of[d["key_file"]]]["external"])
            secrets.add(doc["secrets"][secret_of[d["key_file"]]]["name"])
            ports, = receiver["ports"]
            self.assertEqual((ports["target"], ports["mode"]), (8080, "host"))
        self.assertEqual(secrets, {"app-receiver-a-key", "app-receiver-b-key"})
        for name, service in services.items():
            self.assertEqual(service["deploy"]["endpoint_mode"], "dnsrr", name)  # no IPVS needed
            self.assertEqual(service["deploy"]["replicas"], 1, name)
            for s in service["secrets"] + service.get("configs", []):
                self.assertEqual((s["uid"], s["gid"]), ("10001", "10001"), name)


if __name__ == "__main__":
    unittest.main()
