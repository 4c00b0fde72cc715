#!/usr/bin/env python3
"""The issue's hostile keyed uploads through a real receiver: for each, a fresh receiver (default
options), one upload streamed as our sender's key would sign it, then the receiver's answer, its
CPU seconds for the upload (/proc/<pid>/stat utime+stime, after less before) and its peak RSS
(VmHWM). Not a test: figures for the issue, beside bench/xml_limits.sh (XmlCheck alone).

  TRANSFER_BIN=build/bin python3 bench/xml_limits_e2e.py [CASE...]

Uses the integration harness (tests/integration): the receiver from TRANSFER_BIN, temp dirs,
port 0. Cases: attributes (one start tag of 160,000 attributes), comment (9 MB), attribute
(a 9 MB attribute value), sender (20 MB of what our sender writes, for comparison).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from harness import Workdir, stop, vm_hwm_kib  # noqa: E402
from test_memory import records_xml, upload_streamed  # noqa: E402


def document(kind):
    if kind == "attributes":
        tag = b"<a" + b"".join(b' a%d=""' % i for i in range(160000)) + b"/>"
        return len(tag), iter([tag])
    if kind in ("comment", "attribute"):
        head, tail = (b"<a><!--", b"--></a>") if kind == "comment" else (b'<a v="', b'"/>')
        piece = b"x" * 1000000
        return len(head) + 9 * len(piece) + len(tail), iter([head] + [piece] * 9 + [tail])
    if kind == "sender":
        return records_xml(20 << 20)
    raise SystemExit("unknown case " + kind)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(cases):
    for kind in cases or ["attributes", "comment", "attribute", "sender"]:
        w = Workdir()
        try:
            receiver = w.start_receiver()
            before = cpu_seconds(receiver.pid)
            status, body, _ = upload_streamed(w.port, "x", w.key, document(kind))
            cpu = cpu_seconds(receiver.pid) - before
            print("case=%s status=%d receiver_cpu_s=%.2f receiver_vmhwm_mib=%.1f answer=%s"
                  % (kind, status, cpu, vm_hwm_kib(receiver.pid) / 1024, body[:200].decode(errors="replace")))
            stop(receiver)
        finally:
            w.cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
