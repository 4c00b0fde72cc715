"""Peak RSS of both programs while a large JSON file goes through (streaming check)."""
import os
import sqlite3
import unittest

from harness import Workdir, stop, vm_hwm_kib, wait_until

SIZE_MIB = int(os.environ.get("MEMORY_TEST_MIB", "80"))
LIMIT_KIB = 64 * 1024


def write_big_json(path, target_bytes):
    record = ('{"id": %d, "name": "record \\u00e9 東京 <&>", "score": %d.25, "ok": true, '
              '"tags": ["a", "b", "c"], "geo": {"lat": 12.5, "lng": -3.75}, "note": null}')
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"source": "memory-test", "records": [')
        i, size = 0, 0
        while size < target_bytes:
            chunk = ",".join(record % (j, j) for j in range(i, i + 1000))
            fh.write(("," if i else "") + chunk)
            size += len(chunk.encode()) + 1
            i += 1000
        fh.write("]}")
    return os.path.getsize(path)


class MemoryTest(unittest.TestCase):
    def test_peak_rss_under_64_mib_for_a_large_file(self):
        w = Workdir()
        try:
            size = write_big_json(w.path("input", "big.json"), SIZE_MIB << 20)
            self.assertGreaterEqual(size, 64 << 20)
            receiver = w.start_receiver()
            sender = w.start_sender(SCAN_INTERVAL="3600")
            db = w.path("sstate", "sender.db")

            def delivered():
                if not os.path.exists(db):
                    return False
                con = sqlite3.connect(db)
                try:
                    return con.execute("select count(*) from files where state='delivered'").fetchone()[0] == 1
                except sqlite3.OperationalError:
                    return False
                finally:
                    con.close()
            wait_until(delivered, timeout=600, what="delivery of the big file")
            s_kib, r_kib = vm_hwm_kib(sender.pid), vm_hwm_kib(receiver.pid)
            out = os.path.getsize(w.path("output", "big.xml"))
            print("\nmemory test: json=%d MiB xml=%d MiB sender VmHWM=%.1f MiB receiver VmHWM=%.1f MiB"
                  % (size >> 20, out >> 20, s_kib / 1024, r_kib / 1024))
            self.assertLess(s_kib, LIMIT_KIB)
            self.assertLess(r_kib, LIMIT_KIB)
            self.assertEqual(stop(sender), 0)
            self.assertEqual(stop(receiver), 0)
        finally:
            w.cleanup()


if __name__ == "__main__":
    unittest.main()
