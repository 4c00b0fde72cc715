"""Chaos: the receiver's output directory on a small tmpfs that fills up. Uploads that do not fit
get 507 with nothing partial left behind; the sender keeps them and retries; once space is freed
(downstream takes the delivered files away) everything arrives, byte-identical."""
import os
import shutil
import sqlite3
import subprocess
import unittest

from harness import Workdir, expected_xml, stop, wait_until, write_json


class ChaosDiskTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()
        self.out = self.w.path("output")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.out], capture_output=True, text=True)
        if r.returncode != 0:
            self.w.cleanup()
            self.skipTest("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): " + r.stderr.strip())

    def tearDown(self):
        for p in self.w.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["umount", "-l", self.out], capture_output=True)
        self.w.cleanup()

    def test_disk_full_gives_507_nothing_partial_and_delivery_after_space_is_freed(self):
        docs = {"big%d" % i: {"i": i, "rows": ["%d-%s" % (j, "y" * 30) for j in range(4000)]} for i in range(8)}
        for name, doc in docs.items():
            write_json(self.w.path("input", name + ".json"), doc)
        size = len(expected_xml(docs["big0"]))
        self.assertGreater(size * len(docs), 1536 * 1024)  # cannot all fit in 1 MiB
        # MIN_FREE_BYTES (default 64M) would refuse every upload to a 1 MiB file system before its
        # body is read; at 0 an upload is refused (507) when its size does not fit what is free and
        # not reserved by uploads in flight, and ENOSPC while writing still gives 507.
        receiver = self.w.start_receiver(env={"MIN_FREE_BYTES": "0"})
        sender = self.w.start_sender(MIN_FILE_AGE="0", RETRY_BASE_DELAY="0.1", RETRY_MAX_DELAY="0.5")
        wait_until(lambda: "status=507" in self.w.read("receiver.log"), what="a 507 once the disk is full")
        wait_until(lambda: "receiver answered 507" in self.w.read("sender.log"), what="the sender told of the 507")
        taken = self.w.path("taken")
        os.makedirs(taken)

        def settle():
            # Downstream consumes what arrived; only final, complete files are ever visible.
            for n in os.listdir(self.out):
                self.assertFalse(n.startswith(".") and not n.endswith(".tmp"), n)
                if n.endswith(".xml"):
                    shutil.move(os.path.join(self.out, n), os.path.join(taken, n))
            return len(os.listdir(taken)) == len(docs)
        wait_until(settle, timeout=120, what="every file delivered as space is freed")
        for name, doc in docs.items():
            with open(os.path.join(taken, name + ".xml"), "rb") as fh:
                self.assertEqual(fh.read(), expected_xml(doc), name)
        self.assertEqual(stop(sender), 0)
        self.assertEqual(stop(receiver), 0)
        self.assertEqual(os.listdir(self.out), [])  # no temporary file left behind
        con = sqlite3.connect(self.w.path("rstate", "receiver.db"))
        self.assertGreater(con.execute("select count(*) from uploads where status=507").fetchone()[0], 0)
        self.assertEqual(con.execute("select count(*) from deliveries").fetchone()[0], len(docs))
        con.close()


if __name__ == "__main__":
    unittest.main()
