#!/usr/bin/env python3
"""Helpers of bench/s3_vs_rclone.sh: inputs, the check of what landed, the table.

  s3_vs_rclone.py gen-small DIR COUNT BYTES   # COUNT JSON files of about BYTES each
  s3_vs_rclone.py gen-big FILE BYTES          # one JSON file of about BYTES (a list of orders)
  s3_vs_rclone.py verify SRV_DIR BUCKET PREFIX XML_DIR PART_SIZE
      # every XML_DIR/<n>.xml is PREFIX/<n>.xml in BUCKET, same size and same ETag (MD5, or
      # the multipart ETag for PART_SIZE parts), and nothing else is under PREFIX; exit 1 if not
  s3_vs_rclone.py count SRV_DIR BUCKET PREFIX N   # exactly N non-empty keys under PREFIX
  s3_vs_rclone.py delete SRV_DIR BUCKET PREFIX    # deletes every key under PREFIX
  s3_vs_rclone.py table RESULTS_TSV            # medians per case and tool, as a Markdown table

Listing is ListObjectsV2 through curl --aws-sigv4 with the user's keys (not through either
program under test). RESULTS_TSV lines: case tool run wall_s user_s sys_s max_rss_kb files bytes.
"""
import hashlib
import json
import os
import statistics
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def order(i, note_len):
    return {
        "order_id": i,
        "placed_at": "2026-12-07T10:%02d:%02dZ" % (i // 60 % 60, i % 60),
        "status": "paid",
        "total": round(19.99 + i % 1000 * 1.5, 2),
        "express": i % 3 == 0,
        "customer": {"id": 100000 + i, "name": "Customer %d" % i,
                     "email": "customer%d@example.org" % i,
                     "address": {"street": "%d Main Street" % (i % 997), "city": "Springfield",
                                 "zip": "%05d" % (i % 99999), "country": "DE"}},
        "items": [{"sku": "SKU-%06d" % (i * 7 + k), "qty": k + 1, "price": 4.5 + k,
                   "description": "Item %d of order %d" % (k, i)} for k in range(5)],
        "tags": ["bench", "s3", "order"],
        "note": "n" * note_len,
    }


def gen_small(d, count, size):
    os.makedirs(d, exist_ok=True)
    base = len(json.dumps(order(0, 0)))
    for i in range(count):
        doc = order(i, max(0, size - base))
        text = json.dumps(doc)
        doc["note"] = "n" * max(0, len(doc["note"]) + size - len(text))
        with open(os.path.join(d, "order-%05d.json" % i), "w") as fh:
            fh.write(json.dumps(doc))


def gen_big(path, size):
    with open(path, "w") as fh:
        fh.write('{"orders": [')
        written, i = 13, 0
        while written < size - 2:
            text = (", " if i else "") + json.dumps(order(i, 200 + i % 600))
            fh.write(text)
            written += len(text)
            i += 1
        fh.write("]}")


def curl_s3(srv, method, path):
    rd = lambda n: open(os.path.join(srv, n)).read().strip()
    args = ["curl", "-sS", "-g", "--max-time", "60", "-X", method, "--aws-sigv4",
            "aws:amz:%s:s3" % rd("region"), "--user", "%s:%s" % (rd("access_key"), rd("secret_key")),
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-w", "\n%{http_code}",
            rd("endpoint") + path]
    r = subprocess.run(args, capture_output=True, timeout=90, check=True)
    body, _, status = r.stdout.rpartition(b"\n")
    if int(status) >= 300:
        raise SystemExit("%s %s -> %s %s" % (method, path, status.decode(), body[:300]))
    return body


def list_keys(srv, bucket, prefix):
    """{key: (size, etag)} under prefix, every page (bounded: 1,000 pages)."""
    out, token = {}, None
    for _ in range(1000):
        q = "?list-type=2&max-keys=1000&prefix=" + urllib.parse.quote(prefix, safe="")
        if token:
            q += "&continuation-token=" + urllib.parse.quote(token, safe="")
        root = ET.fromstring(curl_s3(srv, "GET", "/" + bucket + q))
        for c in root.findall(S3_NS + "Contents"):
            out[c.findtext(S3_NS + "Key")] = (int(c.findtext(S3_NS + "Size")),
                                             c.findtext(S3_NS + "ETag").strip('"'))
        if root.findtext(S3_NS + "IsTruncated") != "true":
            return out
        token = root.findtext(S3_NS + "NextContinuationToken")
    raise SystemExit("more than 1,000 pages under " + prefix)


def local_etag(path, size, part_size, multipart):
    with open(path, "rb") as fh:
        if not multipart:
            return hashlib.md5(fh.read()).hexdigest()
        digests = []
        while chunk := fh.read(part_size):
            digests.append(hashlib.md5(chunk).digest())
    return "%s-%d" % (hashlib.md5(b"".join(digests)).hexdigest(), len(digests))


def verify(srv, bucket, prefix, xml_dir, part_size):
    part_size = int(part_size)
    landed = list_keys(srv, bucket, prefix)
    want = sorted(n for n in os.listdir(xml_dir) if n.endswith(".xml"))
    bad, total = [], 0
    for name in want:
        key = prefix + name
        path = os.path.join(xml_dir, name)
        size = os.path.getsize(path)
        total += size
        if key not in landed:
            bad.append(key + ": missing")
            continue
        got_size, etag = landed[key]
        if got_size != size:
            bad.append("%s: %d bytes, local %d" % (key, got_size, size))
            continue
        expect = local_etag(path, size, part_size, "-" in etag)
        if etag != expect:
            bad.append("%s: ETag %s, local %s" % (key, etag, expect))
    extra = sorted(set(landed) - {prefix + n for n in want})
    bad += [k + ": not in the source" for k in extra]
    if bad:
        print("verify %s: %d problem(s): %s" % (prefix, len(bad), "; ".join(bad[:5])))
        sys.exit(1)
    print("verify %s: %d keys, %d bytes, sizes and ETags match" % (prefix, len(want), total))


def count(srv, bucket, prefix, n):
    landed = list_keys(srv, bucket, prefix)
    empty = [k for k, (size, _) in landed.items() if size == 0]
    if len(landed) != int(n) or empty:
        print("count %s: %d keys (want %s), %d empty" % (prefix, len(landed), n, len(empty)))
        sys.exit(1)
    print("count %s: %d keys, %d bytes" % (prefix, len(landed), sum(s for s, _ in landed.values())))


def delete(srv, bucket, prefix):
    keys = list_keys(srv, bucket, prefix)
    for key in keys:
        curl_s3(srv, "DELETE", "/%s/%s" % (bucket, urllib.parse.quote(key, safe="/")))
    print("delete %s: %d keys" % (prefix, len(keys)))


def table(tsv):
    rows = {}
    for line in open(tsv):
        if not line.strip() or line.startswith("#"):
            continue
        case, tool, run, wall, user, sys_, rss, files, nbytes = line.split()
        rows.setdefault((case, tool), []).append(
            (float(wall), float(user) + float(sys_), int(rss), int(files), int(nbytes)))
    print("| case | tool | runs | wall s | files/s | MB/s | CPU ms per file | CPU s | peak RSS MiB |"
          " each run's wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (case, tool), runs in rows.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = statistics.median(r[2] for r in runs)
        files, nbytes = runs[0][3], runs[0][4]
        print("| %s | %s | %d | %.2f | %.0f | %.1f | %.2f | %.2f | %.0f | %s |" % (
            case, tool, len(runs), wall, files / wall, nbytes / 1e6 / wall, cpu * 1000 / files,
            cpu, rss / 1024, " ".join("%.2f" % r[0] for r in runs)))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen-small":
        gen_small(args[0], int(args[1]), int(args[2]))
    elif cmd == "gen-big":
        gen_big(args[0], int(args[1]))
    elif cmd == "verify":
        verify(*args)
    elif cmd == "count":
        count(*args)
    elif cmd == "delete":
        delete(*args)
    elif cmd == "table":
        table(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
