"""The destinations file reloads (issue 21) on the real binaries: one sender daemon, our receivers,
and DESTINATIONS_FILE rewritten while files flow. An added destination starts receiving (the files
already in the input directory included), a changed one uses its new fields from its next upload,
a removed one gets nothing more, a file that does not parse keeps the destinations in force (one
log line, /readyz names it) and SIGHUP reads the file again: no restart of the sender (its PID is
the same throughout), nothing lost and nothing sent twice to any receiver (their ledgers)."""
import json
import os
import signal
import sqlite3
import unittest

from harness import expected_xml, get, wait_until, write_json
import test_fanout  # its helpers; imported as a module so its tests are not collected again here
from test_fanout import free_port, small_doc
from test_operations import readyz


class ReloadTest(unittest.TestCase):
    def setUp(self):
        # The fan-out test's helpers (receivers with keys of their own, the destinations file).
        self.f = test_fanout.FanoutTest(methodName="test_every_file_reaches_three_receivers_with_their_own_keys")
        self.f.setUp()
        self.addCleanup(self.f.doCleanups)
        self.w = self.f.w

    def write_destinations(self, entries):
        """Atomically, as an operator (or a swarm config swap) replaces the file."""
        tmp = self.f.dests + ".new"
        with open(tmp, "w") as fh:
            if isinstance(entries, str):
                fh.write(entries)
            else:
                json.dump({"destinations": entries}, fh)
        os.replace(tmp, self.f.dests)

    def entry(self, name, **extra):
        e = {"name": name, "url": "http://127.0.0.1:%d/upload" % self.f.ports[name], "key_file": self.f.keys[name],
             "retry_base_delay": 0.2, "retry_max_delay": 1}
        e.update(extra)
        return e

    def docs(self, prefix, n):
        import random
        rng = random.Random(prefix)
        out = {}
        for i in range(n):
            doc = small_doc(rng, i)
            write_json(self.w.path("input", "%s%02d.json" % (prefix, i)), doc)
            out["%s%02d" % (prefix, i)] = doc
        return out

    def at(self, receiver, docs, root="all"):
        """Every doc of `docs` complete at `receiver`, as dicttoxml writes it under <root>."""
        def xml(d):
            x = expected_xml(d)
            if root != "all":
                head, _, tail = x.rpartition(b"</all>")
                x = (head + b"</" + root.encode() + b">" + tail).replace(b"<all>", b"<" + root.encode() + b">", 1)
            return x
        return self.f.has_all(receiver, {n + ".xml": xml(d) for n, d in docs.items()})

    def ledger_counts(self, receiver):
        """{name: accepted uploads} from a receiver's ledger (a second write of one name shows)."""
        con = sqlite3.connect(self.w.path("rstate-" + receiver, "receiver.db"))
        try:
            return dict(con.execute("select name, count(*) from uploads where outcome='accepted' group by name"))
        finally:
            con.close()

    def test_destinations_change_while_files_flow_without_a_restart(self):
        self.f.start_ours("a")
        self.f.start_ours("b")
        self.write_destinations([self.entry("a")])
        port = free_port()
        sender = self.f.start_sender(METRICS_PORT=str(port), SCAN_INTERVAL="0.3")
        first = self.docs("x", 8)
        wait_until(lambda: self.at("a", first), timeout=30, what="x at a")
        self.assertEqual(self.f.outputs("b"), [])

        # Added: b gets the files already there, and new ones.
        self.write_destinations([self.entry("a"), self.entry("b")])
        second = self.docs("y", 6)
        wait_until(lambda: self.at("b", first) and self.at("b", second) and self.at("a", second), timeout=30,
                   what="x and y at b after it was added")

        # Changed: a's XML mapping, from its next upload; b keeps the default.
        self.write_destinations([self.entry("a", xml_root="order"), self.entry("b")])
        wait_until(lambda: self.w.read("sender.log").count("destinations file read again") >= 2, timeout=30,
                   what="the change read")
        third = self.docs("z", 4)
        wait_until(lambda: self.at("a", third, root="order") and self.at("b", third), timeout=30,
                   what="z at a with root <order>, at b with the default")

        # Removed: b gets nothing more.
        self.write_destinations([self.entry("a", xml_root="order")])
        wait_until(lambda: self.w.read("sender.log").count("destinations file read again") >= 3, timeout=30,
                   what="the removal read")
        fourth = self.docs("w", 3)
        wait_until(lambda: self.at("a", fourth, root="order"), timeout=30, what="w at a")
        self.assertFalse(any(n.startswith("w") for n in self.f.outputs("b")), self.f.outputs("b"))

        # Broken: the destinations in force stay; /readyz names the file; a still gets files.
        self.write_destinations('{"destinations": [{"name": "a", "url": "http://127.0.0.1:1/upload"')
        wait_until(lambda: "destinations file not taken" in self.w.read("sender.log"), timeout=30,
                   what="the broken file refused")

        def ready_names_the_file():
            status, body = readyz("http://127.0.0.1:%d/readyz" % port)
            check = body.get("checks", {}).get("destinations_file", {})
            return status == 503 and check.get("ok") is False and "not JSON" in json.dumps(check)
        wait_until(ready_names_the_file, timeout=30, what="/readyz naming the destinations file")
        fifth = self.docs("v", 2)
        wait_until(lambda: self.at("a", fifth, root="order"), timeout=30, what="v at a under the old destinations")

        # Fixed, and read again on SIGHUP: b is back and gets what it missed.
        self.write_destinations([self.entry("a", xml_root="order"), self.entry("b")])
        sender.send_signal(signal.SIGHUP)
        wait_until(lambda: self.at("b", fourth) and self.at("b", fifth), timeout=30, what="w and v at b once back")
        status, _ = readyz("http://127.0.0.1:%d/readyz" % port)
        self.assertIsNone(sender.poll(), "the sender never restarted")

        # Nothing sent twice: one accepted upload per name at each receiver.
        for receiver, expected in (("a", [first, second, third, fourth, fifth]),
                                   ("b", [first, second, third, fourth, fifth])):
            counts = self.ledger_counts(receiver)
            names = [n for docs in expected for n in docs]
            self.assertEqual(sorted(counts), sorted(names), receiver)
            self.assertEqual(set(counts.values()), {1}, "%s: %s" % (receiver, counts))
        print("RELOAD reads=%d sender_pid_unchanged=1 a_files=%d b_files=%d" % (
            self.w.read("sender.log").count("destinations file read again"), len(self.f.outputs("a")),
            len(self.f.outputs("b"))))


if __name__ == "__main__":
    unittest.main()
