"""A 200 MB JSON file to S3 (radosgw) and SFTP (sshd) at once (issue 21): S3 gets it as a multipart
upload (the parts counted by the server: the "-N" of the ETag it computed when it assembled them;
radosgw 16 answers no per-part HEAD), SFTP under a temporary name then renamed; both
byte-identical, the sender's peak RSS (VmHWM) within the 64 MiB bound of the memory tests."""
import hashlib
import os
import subprocess
import unittest

from harness import Workdir, stop, vm_hwm_kib, wait_until
from servers import S3Server, SftpServer, temporaries
from test_destinations import DestinationsBase, latest_sender_port
from test_operations import metrics
from test_memory import LIMIT_KIB, write_big_json

MIB = 1 << 20


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LargeFileTest(DestinationsBase):
    def test_200_mb_to_s3_multipart_and_sftp_with_flat_rss(self):
        s3, sftp = S3Server(), SftpServer()
        bucket = s3.make_bucket("large", self)
        sftp_dir = sftp.make_dir("large")
        self.addCleanup(lambda: [os.unlink(os.path.join(sftp_dir, f)) for f in os.listdir(sftp_dir)])
        part = 8 * MIB
        self.write_destinations([
            s3.destination("s3", bucket, self.w.root, payload="xml", multipart_threshold=16 * MIB,
                           part_size=part),
            sftp.destination("sftp", sftp_dir, payload="xml"),
        ])
        size = write_big_json(self.w.path("input", "big.json"), 200 * MIB)
        # The compact mapping: the XML stays about the JSON's size (the server keeps it in memory).
        p = self.w.start_sender(**self.sender_env(SCAN_INTERVAL="3600", XML_TYPE_ATTRS="off",
                                                  XML_PRETTY="off", METRICS_PORT="0"))
        final = os.path.join(sftp_dir, "big.xml")
        wait_until(lambda: os.path.exists(final) and s3.head(bucket, "big.xml"), timeout=900,
                   what="the big file at both")
        # The object is visible once its upload completed, before the sender has checked it and
        # counted it: wait for the counts of both destinations.
        url = "http://127.0.0.1:%d/metrics" % latest_sender_port(self.w)

        def counted():
            m = metrics(url)
            sent = [m.get('transfer_sender_bytes_sent_total{destination="%s"}' % d, 0) for d in ("s3", "sftp")]
            return m if all(sent) else None
        m = wait_until(counted, timeout=60, what="both deliveries counted in /metrics")
        hwm = vm_hwm_kib(p.pid)
        self.assertEqual(stop(p), 0)
        xml_size = os.path.getsize(final)
        print("\nlarge destinations test: json=%d MiB xml=%d MiB sender VmHWM=%.1f MiB"
              % (size >> 20, xml_size >> 20, hwm / 1024))
        self.assertLess(hwm, LIMIT_KIB)

        head = s3.head(bucket, "big.xml")
        self.assertEqual(int(head["content-length"]), xml_size)
        parts = -(-xml_size // part)
        self.assertGreater(parts, 1)
        self.assertRegex(head["etag"], r'^"[0-9a-f]{32}-%d"$' % parts)
        self.assertEqual(m['transfer_sender_multipart_parts_total{destination="s3"}'], parts)
        self.assertEqual(m['transfer_sender_bytes_sent_total{destination="s3"}'], xml_size)
        self.assertEqual(m['transfer_sender_bytes_sent_total{destination="sftp"}'], xml_size)
        downloaded = self.w.path("from-s3.xml")
        s3.curl("GET", "/%s/big.xml" % bucket, "-o", downloaded)
        digest = sha256_file(final)
        self.assertEqual(sha256_file(downloaded), digest)
        self.assertEqual(head["x-amz-meta-sha256"], digest)
        self.assertEqual(s3.incomplete_uploads(bucket), [])
        self.assertEqual(temporaries(sftp_dir), [])
        self.assertEqual(os.listdir(sftp_dir), ["big.xml"])


if __name__ == "__main__":
    unittest.main()
