"""Chaos: sender and receiver in two network namespaces joined by a veth pair. iptables in the
receiver's namespace first drops a random share of packets (-m statistic --mode random), then
all of them for a while (netem is not available on these machines), then nothing. Everything
is delivered exactly once, byte-identical, within a bounded time after the path recovers."""
import os
import shutil
import sqlite3
import subprocess
import time
import unittest

from harness import Workdir, count_delivered, expected_xml, stop, wait_until, write_json

DROP_SHARE = os.environ.get("CHAOS_DROP_SHARE", "0.25")
BLACKOUT_S = float(os.environ.get("CHAOS_BLACKOUT_S", "4"))


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


class ChaosNetTest(unittest.TestCase):
    def setUp(self):
        if shutil.which("iptables") is None:
            self.skipTest("iptables is not installed (scripts/install-deps.sh installs it)")
        tag = str(os.getpid())
        self.ns_s, self.ns_r = "trs-" + tag, "trr-" + tag
        self.if_s, self.if_r = "vs" + tag[-8:], "vr" + tag[-8:]
        r = sh("ip", "netns", "add", self.ns_s, check=False)
        if r.returncode != 0:
            self.skipTest("cannot create network namespaces here: " + r.stderr.strip())
        self.w = Workdir()
        sh("ip", "netns", "add", self.ns_r)
        sh("ip", "link", "add", self.if_s, "type", "veth", "peer", "name", self.if_r)
        sh("ip", "link", "set", self.if_s, "netns", self.ns_s)
        sh("ip", "link", "set", self.if_r, "netns", self.ns_r)
        for ns, iface, addr in ((self.ns_s, self.if_s, "10.231.0.1/24"), (self.ns_r, self.if_r, "10.231.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", iface)
            sh("ip", "-n", ns, "link", "set", iface, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def tearDown(self):
        if not hasattr(self, "w"):
            return
        for p in self.w.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in (self.ns_s, self.ns_r):
            sh("ip", "netns", "del", ns, check=False)  # takes the veth pair with it
        self.w.cleanup()

    def iptables(self, *rule):
        sh("ip", "netns", "exec", self.ns_r, "iptables", *rule)

    def delivered(self):
        return count_delivered(self.w.path("sstate", "sender.db"))

    def test_lossy_then_dead_then_healthy_path_delivers_everything_once(self):
        docs = {"n%03d" % i: {"i": i, "text": "z" * (200000 if i % 20 == 0 else 100)} for i in range(60)}
        first = dict(list(docs.items())[:40])
        for name, doc in first.items():
            write_json(self.w.path("input", name + ".json"), doc)
        in_r = ("ip", "netns", "exec", self.ns_r)
        in_s = ("ip", "netns", "exec", self.ns_s)
        receiver = self.w.start_receiver(prefix=in_r, ip="10.231.0.2")
        self.iptables("-A", "INPUT", "-i", self.if_r, "-m", "statistic", "--mode", "random",
                      "--probability", DROP_SHARE, "-j", "DROP")
        sender = self.w.start_sender(prefix=in_s, port=self.w.port, RECEIVER_ADDRESS="10.231.0.2", MIN_FILE_AGE="0",
                                     CONNECT_TIMEOUT="1", IO_TIMEOUT="3", RETRY_BASE_DELAY="0.1",
                                     RETRY_MAX_DELAY="1", SCAN_INTERVAL="0.5")
        wait_until(lambda: self.delivered() >= 10, timeout=120, what="deliveries through a lossy path")
        # A dead path: every packet dropped, while more files arrive.
        self.iptables("-I", "INPUT", "1", "-i", self.if_r, "-j", "DROP")
        for name, doc in list(docs.items())[40:]:
            write_json(self.w.path("input", name + ".json"), doc)
        blackout_end = time.monotonic() + BLACKOUT_S
        wait_until(lambda: time.monotonic() >= blackout_end, timeout=BLACKOUT_S + 5, what="the blackout")
        self.assertIn("failed file=", self.w.read("sender.log"))
        recovered = time.monotonic()
        self.iptables("-F", "INPUT")
        wait_until(lambda: self.delivered() == len(docs), timeout=90, what="everything once the path recovered")
        print("recovered in %.1fs" % (time.monotonic() - recovered))
        self.assertEqual(stop(sender), 0)
        self.assertEqual(stop(receiver), 0)
        names = sorted(os.listdir(self.w.path("output")))
        self.assertEqual(names, sorted(n + ".xml" for n in docs))
        for name, doc in docs.items():
            with open(self.w.path("output", name + ".xml"), "rb") as fh:
                self.assertEqual(fh.read(), expected_xml(doc), name)
        con = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        self.assertEqual(con.execute("select count(*) from deliveries").fetchone()[0], len(docs))
        con.close()


if __name__ == "__main__":
    unittest.main()
