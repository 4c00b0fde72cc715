#!/usr/bin/env python3
"""summarize.py RESULTS_DIR: the side-by-side tables (medians) and the targets of bench/compare.sh."""
import json
import os
import statistics
import sys


def rows(d, name):
    p = os.path.join(d, name)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    return "–" if v is None else ("{:,.%df}" % digits).format(v)


def main():
    d = sys.argv[1]
    limits = rows(d, "fsync_limit.jsonl")
    limit = med([r["limit_files_per_s"] for r in limits if r.get("fsync", True)])
    limit_nosync = med([r["limit_files_per_s"] for r in limits if r.get("fsync") is False])
    e2e = rows(d, "e2e.jsonl")
    up = rows(d, "upload-new.jsonl")
    resc = rows(d, "rescan.jsonl")

    def e2e_med(impl, tag, n, size, key):
        return med([r[key] for r in e2e if r["impl"] == impl and r["tag"] == tag and r["n"] == n and r["size"] == size
                    and r.get("complete", True)])

    def up_med(impl, tag, workers, key):
        return med([r[key] for r in up if r["impl"] == impl and r["tag"] == tag and r["workers"] == workers])

    py_small = e2e_med("python-original", "default", 1000, "2K", "files_per_s")
    on_small = e2e_med("cpp", "fsync=on", 1000, "2K", "files_per_s")
    off_small = e2e_med("cpp", "fsync=off", 1000, "2K", "files_per_s")
    mb1 = e2e_med("cpp", "fsync=on", 100, "1M", "mib_per_s")
    g1 = e2e_med("cpp", "fsync=on", 1, "1024M", "mib_per_s")
    g1_rss = max([max(r["sender_maxrss_kb"], r["recv_hwm_max_kb"]) for r in e2e
                  if r["impl"] == "cpp" and r["size"] == "1024M"] or [0]) / 1024 or None
    py_up4 = up_med("python-original", "default", 4, "upload_rps")
    py_get4 = up_med("python-original", "default", 4, "health_rps")
    up_on = up_med("cpp", "fsync=on", 1, "upload_rps")
    up_off = up_med("cpp", "fsync=off", 1, "upload_rps")
    get_cpp = med([up_med("cpp", t, 1, "health_rps") for t in ("fsync=on", "fsync=off")])
    resc = [r for r in resc if r.get("daemon_rescan_ms")] or resc
    rescan_s = med([r["once_seconds"] for r in resc])
    rescan_ms = [ms for r in resc for ms in r.get("daemon_rescan_ms", [])]
    rescan_rss = [(r["daemon_rss_kb_after_2s"], r["daemon_rss_kb_after_12s"]) for r in resc]

    def ratio(a, b):
        return None if a is None or not b else a / b

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**not met**")

    print("Disk limit (bench/fsync_limit.c, best of 1/4/16 threads, median of runs): %s durable files/s; "
          "without fsync %s files/s.\n" % (fmt(limit), fmt(limit_nosync)))
    print("| work | target | Python reference | ours | ours vs target | |")
    print("|---|---|---|---|---|---|")
    r = ratio(on_small, limit)
    print("| end to end, 1000 × 2 KB, FSYNC=on | ≥ 80 %% of the limit | %s files/s (no fsync) | %s files/s | %s of the limit | %s |"
          % (fmt(py_small), fmt(on_small), "–" if r is None else "%.0f %%" % (100 * r), verdict(None if r is None else r >= 0.8)))
    r = ratio(off_small, py_small)
    print("| end to end, 1000 × 2 KB, FSYNC=off | ≥ 90 × Python | %s files/s | %s files/s | %s× | %s |"
          % (fmt(py_small), fmt(off_small), fmt(r), verdict(None if r is None else r >= 90)))
    print("| end to end, 100 × 1 MB | ≥ 100 MiB/s of JSON | 0.16 MiB/s (its RESULTS.md) | %s MiB/s | | %s |"
          % (fmt(mb1), verdict(None if mb1 is None else mb1 >= 100)))
    print("| end to end, 1 × 1 GiB | ≥ 100 MiB/s, ≤ 64 MiB RSS each | cannot (10.4 GiB RSS for 100 MB) | %s MiB/s, %s MiB peak RSS | | %s |"
          % (fmt(g1), fmt(g1_rss), verdict(None if g1 is None else (g1 >= 100 and (g1_rss or 0) <= 64))))
    r = ratio(up_on, limit)
    print("| receiver, 2 KB uploads to new names, 16 conn, FSYNC=on | ≥ 80 %% of the limit | – | %s/s | %s of the limit | %s |"
          % (fmt(up_on), "–" if r is None else "%.0f %%" % (100 * r), verdict(None if r is None else r >= 0.8)))
    r = ratio(up_off, py_up4)
    print("| the same, FSYNC=off | ≥ 8 × Python (4 workers) | %s/s | %s/s | %s× | %s |"
          % (fmt(py_up4), fmt(up_off), fmt(r), verdict(None if r is None else r >= 8)))
    r = ratio(get_cpp, py_get4)
    print("| receiver, GET /, 16 conn | ≥ 10 × Python (4 workers) | %s/s | %s/s | %s× | %s |"
          % (fmt(py_get4), fmt(get_cpp), fmt(r), verdict(None if r is None else r >= 10)))
    print("| 100,000 delivered files, a rescan finding nothing new | < 1 s, memory flat | – | daemon rescan median %s ms (max %s ms, %d rescans); "
          "daemon RSS after 2 s → 12 s: %s; a whole `--once` pass with start-up: %s s | | %s |"
          % (fmt(med(rescan_ms), 0), fmt(max(rescan_ms) if rescan_ms else None, 0), len(rescan_ms),
             ", ".join("%d→%d KiB" % p for p in rescan_rss) or "–", fmt(rescan_s, 2),
             verdict(None if not rescan_ms else max(rescan_ms) < 1000 and all(b <= a * 1.05 for a, b in rescan_rss))))

    print("\n### End to end (harness e2e.sh; medians)\n")
    print("| impl | variant | files × size | runs | median s | files/s | MiB/s JSON | sender peak RSS MiB | receiver peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for x in e2e:
        groups.setdefault((x["impl"], x["tag"], x["n"], x["size"]), []).append(x)
    for (impl, tag, n, size), rs in groups.items():
        print("| %s | %s | %d × %s | %d | %.3f | %s | %s | %s | %s |" % (
            impl, tag, n, size, len(rs), med([x["seconds"] for x in rs]), fmt(med([x["files_per_s"] for x in rs])),
            fmt(med([x["mib_per_s"] for x in rs]), 2), fmt(med([x["sender_maxrss_kb"] for x in rs]) / 1024),
            fmt(med([x["recv_hwm_max_kb"] for x in rs]) / 1024)))

    print("\n### Receiver alone (wrk, 16 connections, 5 s; uploads each to a new name; medians)\n")
    print("| impl | variant | workers | runs | uploads/s | p50 ms | p99 ms | non-2xx | files written | GET / req/s | GET p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for x in up:
        groups.setdefault((x["impl"], x["tag"], x["workers"]), []).append(x)
    for (impl, tag, w), rs in groups.items():
        print("| %s | %s | %s | %d | %s | %s | %s | %d | %d | %s | %s |" % (
            impl, tag, w if impl != "cpp" else "THREADS default", len(rs), fmt(med([x["upload_rps"] for x in rs])),
            fmt(med([x["upload_p50_ms"] for x in rs]), 2), fmt(med([x["upload_p99_ms"] for x in rs]), 2),
            sum(x["upload_non2xx"] for x in rs), sum(x["files_written"] for x in rs),
            fmt(med([x["health_rps"] for x in rs]), 0), fmt(med([x["health_p99_ms"] for x in rs]), 2)))

    micro = os.path.join(d, "micro.json")
    if os.path.exists(micro):
        print("\n### Micro-benchmarks (Google Benchmark, median of repetitions)\n")
        print("| benchmark | MB/s | operations/s |")
        print("|---|---|---|")
        for b in json.load(open(micro))["benchmarks"]:
            if b.get("aggregate_name") != "median":
                continue
            mbs = b.get("bytes_per_second")
            ops = b.get("items_per_second")
            print("| %s | %s | %s |" % (b["run_name"], fmt(mbs / 1e6) if mbs else "", fmt(ops, 0) if ops else ""))


if __name__ == "__main__":
    main()
