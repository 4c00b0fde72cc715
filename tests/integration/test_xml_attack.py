"""Keyed uploads that made the XML check costly (issue 20, "With the key"), through the real
receiver: each attack performed, its figure asserted and printed on an ATTACK line.

  - one start tag with 160,000 attributes (1.5 MB): libxml2 2.9.14 checks attributes pairwise,
    8-25 s of CPU before; now refused (422, XML_MAX_ATTRIBUTES) for well under a second;
  - four such uploads at once held every upload worker and a normal upload waited 33 s; now the
    normal upload is answered at once;
  - a 9 MB comment or attribute value: libxml2 buffers one construct whole, several times over;
    now refused at XML_MAX_CONSTRUCT (1 MiB), the receiver's peak RSS within 16 MiB of its start.
Uploads are made with the receiver's key (the attacker holds it), streamed a chunk at a time;
unsigned (UPLOAD_SIGNATURES optional, the default) except the four floods, which are signed as our
sender signs, so that they may take every upload worker as in the issue.
"""
import hashlib
import hmac
import http.client
import os
import secrets
import threading
import time
import unittest

from harness import Workdir, vm_hwm_kib, wait_until
from test_memory import FORM_END, FORM_START, fernet_token_chunks, fernet_token_length, upload_streamed
from test_signature import upload_signing_key

MIB = 1 << 20


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def uploads_in_flight(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.startswith("transfer_receiver_uploads_in_flight "):
                return float(line.split()[1])
    finally:
        conn.close()
    return 0


def attribute_flood(n=160000):
    tag = b"<a" + b"".join(b' a%d=""' % i for i in range(n)) + b"/>"
    return len(tag), iter([tag])


def big_construct(kind, mb=9):
    head, tail = (b"<a><!--", b"--></a>") if kind == "comment" else (b'<a v="', b'"/>')
    piece = b"x" * 1000000
    return len(head) + mb * len(piece) + len(tail), iter([head] + [piece] * mb + [tail])


def small_document():
    doc = b'<?xml version="1.0" ?><all><n type="int">1</n></all>'
    return len(doc), iter([doc])


def signed_upload_streamed(port, name, key_file, document):
    """upload_streamed, with the X-Transfer-Signature our sender would send."""
    plain_len, plain_chunks = document
    with open(key_file, "rb") as fh:
        key = fh.read().split()[0]
    length = len(FORM_START) + fernet_token_length(plain_len) + len(FORM_END)
    target = "/upload/" + name
    transfer_id = secrets.token_hex(8)
    t = int(time.time())
    canonical = "\n".join(["transfer-upload-v1", "POST", target, str(length), "", "", transfer_id, str(t)])
    mac = hmac.new(upload_signing_key(key_file), canonical.encode(), hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        conn.putheader("Content-Type", "multipart/form-data; boundary=B")
        conn.putheader("Content-Length", str(length))
        conn.putheader("X-Transfer-Id", transfer_id)
        conn.putheader("X-Transfer-Signature", "t=%d,v1=%s" % (t, mac))
        conn.endheaders()
        try:
            for part in ([FORM_START], fernet_token_chunks(key, plain_chunks, hashlib.sha256()), [FORM_END]):
                for chunk in part:
                    conn.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


class XmlAttackTest(unittest.TestCase):
    def setUp(self):
        self.w = Workdir()

    def tearDown(self):
        self.w.cleanup()

    def test_one_tag_of_160000_attributes_costs_little_cpu(self):
        receiver = self.w.start_receiver()
        before = cpu_seconds(receiver.pid)
        t0 = time.monotonic()
        status, body, _ = upload_streamed(self.w.port, "flood", self.w.key, attribute_flood())
        seconds = time.monotonic() - t0
        cpu = cpu_seconds(receiver.pid) - before
        print("ATTACK xml_attributes count=160000 status=%d receiver_cpu_s=%.2f answer_s=%.2f"
              % (status, cpu, seconds))
        self.assertEqual(status, 422, body)
        self.assertIn(b"XML_MAX_ATTRIBUTES", body)
        self.assertLess(cpu, 1.0, "the attribute flood cost %.2f s of CPU (8-25 s before)" % cpu)
        self.assertFalse(os.path.exists(self.w.path("output", "flood.xml")))

    def test_four_floods_at_once_do_not_hold_up_a_normal_upload(self):
        # THREADS=4: the four signed floods take every upload worker, as in the issue.
        receiver = self.w.start_receiver(env={"THREADS": "4"})
        before = cpu_seconds(receiver.pid)
        statuses = []
        lock = threading.Lock()

        def flood(i):
            status, _ = signed_upload_streamed(self.w.port, "flood%d" % i, self.w.key, attribute_flood())
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        # The normal upload goes once the floods hold the workers (or are already answered).
        wait_until(lambda: len(statuses) == 4 or uploads_in_flight(self.w.port) >= 4, timeout=60,
                   what="the four floods in flight")
        t0 = time.monotonic()
        status, body = signed_upload_streamed(self.w.port, "normal", self.w.key, small_document())
        normal_s = time.monotonic() - t0
        for t in threads:
            t.join(timeout=120)
        cpu = cpu_seconds(receiver.pid) - before
        print("ATTACK xml_four_floods flood_statuses=%s normal_status=%d normal_s=%.2f receiver_cpu_s=%.2f"
              % (",".join(map(str, sorted(statuses))), status, normal_s, cpu))
        self.assertEqual(status, 201, body)
        self.assertLess(normal_s, 2.0, "a normal upload waited %.2f s beside the floods (33 s before)" % normal_s)
        self.assertEqual(sorted(statuses), [422] * 4)
        self.assertLess(cpu, 4.0)

    def test_a_9_mb_comment_or_attribute_value_stays_within_16_mib(self):
        for kind in ("comment", "attribute"):
            receiver = self.w.start_receiver()
            start_kib = vm_hwm_kib(receiver.pid)
            status, body, _ = upload_streamed(self.w.port, kind, self.w.key, big_construct(kind))
            delta_mib = (vm_hwm_kib(receiver.pid) - start_kib) / 1024
            print("ATTACK xml_construct kind=%s mb=9 status=%d hwm_start_mib=%.1f hwm_delta_mib=%.1f"
                  % (kind, status, start_kib / 1024, delta_mib))
            self.assertEqual(status, 422, body)
            self.assertIn(b"XML_MAX_CONSTRUCT", body)
            self.assertLessEqual(delta_mib, 16.0, "%s: +%.1f MiB (about +85 MiB before)" % (kind, delta_mib))
            receiver.terminate()
            receiver.wait(timeout=30)


if __name__ == "__main__":
    unittest.main()
