#!/usr/bin/env python3
"""The parts of bench/fanout.sh that are easier in Python (standard library only):

  fanout.py hold   --ready-file F [--stats-file S] [--max-seconds T]
      A black-holed destination: listens on 127.0.0.1:0, writes the port to F, accepts every
      connection and reads (and drops) everything sent, never answering. On SIGTERM, or after T
      seconds, writes {"accepted": n, "bytes": n} to S and exits.
  fanout.py refuse --ready-file F [--max-seconds T]
      A destination that refuses connections: a TCP socket bound to 127.0.0.1:0 but not listening
      (a connect gets RST, ECONNREFUSED), so no other program can take the port meanwhile.
  fanout.py drop STAGING INPUT_DIR N S OUT_DIR...
      Takes the clock, renames every *.json of STAGING into INPUT_DIR (same file system: each file
      appears whole, one IN_MOVED_TO each), then polls every OUT_DIR every 20 ms until each holds N
      finished *.xml files (the receiver's temporaries are dot-files) or S seconds pass. Prints
      {"seconds": ..., "rename_seconds": ..., "counts": [...], "complete": bool}; exit 1 when
      incomplete.
  fanout.py summary ROWS.jsonl ISOLATION_TARGET CPU_TARGET
      Medians and ratios of the rows fanout.sh wrote: one FANOUT line per figure, then a Markdown
      table; exit 1 when a target is missed or a figure could not be measured.
"""
import json
import os
import selectors
import signal
import socket
import statistics
import sys
import time


def arg(args, name, default=None, conv=str):
    if name in args:
        return conv(args[args.index(name) + 1])
    if default is None:
        sys.exit("fanout.py: %s is required" % name)
    return default


def write_ready(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.rename(tmp, path)


class Stop(Exception):
    pass


def on_term(signum, frame):
    raise Stop()


def hold(args):
    ready, stats = arg(args, "--ready-file"), arg(args, "--stats-file", "")
    end = time.monotonic() + arg(args, "--max-seconds", 3600.0, float)
    signal.signal(signal.SIGTERM, on_term)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    accepted = received = 0
    write_ready(ready, lsock.getsockname()[1])
    try:
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.5):
                if key.fileobj is lsock:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    accepted += 1
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except (BlockingIOError, ConnectionError):
                    data = b"x"
                if data:
                    received += len(data)
                else:  # the client gave up: let it go
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
    except Stop:
        pass
    if stats:
        with open(stats, "w") as fh:
            json.dump({"accepted": accepted, "bytes": received}, fh)


def refuse(args):
    ready = arg(args, "--ready-file")
    end = time.monotonic() + arg(args, "--max-seconds", 3600.0, float)
    signal.signal(signal.SIGTERM, on_term)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # no listen(): connects are refused
    write_ready(ready, sock.getsockname()[1])
    try:
        while time.monotonic() < end:
            time.sleep(0.5)
    except Stop:
        pass


def finished_xml(d):
    with os.scandir(d) as it:
        return sum(1 for e in it if e.name.endswith(".xml") and not e.name.startswith("."))


def drop(args):
    staging, input_dir, count, deadline, outs = args[0], args[1], int(args[2]), float(args[3]), args[4:]
    names = sorted(n for n in os.listdir(staging) if n.endswith(".json"))
    t0 = time.monotonic()
    for n in names:
        os.rename(os.path.join(staging, n), os.path.join(input_dir, n))
    renamed = time.monotonic() - t0
    end = t0 + deadline
    while True:
        counts = [finished_xml(d) for d in outs]
        now = time.monotonic()
        if all(c >= count for c in counts) or now > end:
            break
        time.sleep(0.02)
    done = all(c >= count for c in counts)
    print(json.dumps({"seconds": round(now - t0, 3), "rename_seconds": round(renamed, 3), "counts": counts,
                      "complete": done}))
    return 0 if done else 1


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summary(args):
    path, iso_target, cpu_target = args[0], float(args[1]), float(args[2])
    rows = [json.loads(l) for l in open(path) if l.strip()]
    out, table, ok = [], [], True

    def fmt(x, f="%.3f"):
        return "–" if x is None else f % x

    iso = [r for r in rows if r["case"] == "isolation"]
    if iso:
        by = {}
        for r in iso:
            by.setdefault(r["variant"], {})[r["run"]] = r["seconds"] if r["complete"] else None
        base = by.get("healthy", {})
        b = med(base.values())
        table.append("| isolation, %s x %s to the two healthy receivers | healthy only | with the dead one | ratio | paired ratios | target |"
                     % (iso[0]["files"], iso[0]["size"]))
        table.append("|---|---|---|---|---|---|")
        for v in ("blackhole", "refused"):
            if v not in by:
                continue
            m = med(by[v].values())
            ratio = m / b if (m is not None and b) else None
            incomplete = any(x is None for x in list(by[v].values()) + list(base.values()))
            pairs = [by[v][k] / base[k] for k in sorted(base)
                     if base[k] and by[v].get(k) is not None]
            met = ratio is not None and ratio <= iso_target and not incomplete
            ok = ok and met
            out.append("FANOUT isolation %s ratio=%s healthy_only_s=%s with_%s_s=%s runs=%d paired=%s "
                       "target<=%.2f %s" % (v, fmt(ratio, "%.2f"), fmt(b), v, fmt(m), len(by[v]),
                                            ",".join("%.2f" % p for p in pairs) or "-", iso_target,
                                            "met" if met else "MISSED" + (" (incomplete run)" if incomplete else "")))
            table.append("| %s | %s s | %s s | **%s×** | %s | ≤ %.1f× %s |" % (
                v, fmt(b), fmt(m), fmt(ratio, "%.2f"), " ".join("%.2f" % p for p in pairs),
                iso_target, "met" if met else "**not met**"))
    cpu = [r for r in rows if r["case"] == "cpu"]
    for size in sorted({r["size"] for r in cpu}, key=lambda s: (s[-1], float(s[:-1])), reverse=True):
        rs = [r for r in cpu if r["size"] == size]
        by = {}
        for r in rs:
            by.setdefault(r["destinations"], {})[r["run"]] = r["cpu_s"] / r["files"] if r["ok"] else None
        one, three = med(by.get(1, {}).values()), med(by.get(3, {}).values())
        ratio = three / one if (one and three is not None) else None
        pairs = [by[3][k] / by[1][k] for k in sorted(by.get(1, {}))
                 if by[1][k] and by.get(3, {}).get(k) is not None]
        walls = {d: med([r["wall_s"] for r in rs if r["destinations"] == d and r["ok"]]) for d in (1, 3)}
        targeted = size.upper().endswith("M")
        incomplete = any(x is None for d in by.values() for x in d.values())
        met = ratio is not None and ratio <= cpu_target and not incomplete
        if targeted:
            ok = ok and met
        verdict = ("target<=%.2f %s" % (cpu_target, "met" if met else "MISSED" + (" (incomplete run)" if incomplete else ""))
                   if targeted else "no-target")
        out.append("FANOUT cpu %s ratio=%s one_dest_ms_per_file=%s three_dest_ms_per_file=%s "
                   "one_dest_wall_s=%s three_dest_wall_s=%s runs=%d paired=%s %s" % (
                       size, fmt(ratio, "%.2f"), fmt(one and one * 1e3, "%.2f"),
                       fmt(three and three * 1e3, "%.2f"), fmt(walls[1], "%.2f"), fmt(walls[3], "%.2f"),
                       len(by.get(3, {})), ",".join("%.2f" % p for p in pairs) or "-", verdict))
        if not any(l.startswith("| sender CPU") for l in table):
            table += ["", "| sender CPU per file (`--once`, utime+stime) | one destination | three | ratio | paired ratios | target |",
                      "|---|---|---|---|---|---|"]
        table.append("| %s x %s | %s ms | %s ms | **%s×** | %s | %s |" % (
            rs[0]["files"], size, fmt(one and one * 1e3, "%.2f"), fmt(three and three * 1e3, "%.2f"),
            fmt(ratio, "%.2f"), " ".join("%.2f" % p for p in pairs),
            ("≤ %.1f× %s" % (cpu_target, "met" if met else "**not met**")) if targeted else "none"))
    if not iso and not cpu:
        out.append("FANOUT no rows in %s" % path)
        ok = False
    print("\n".join(out))
    print()
    print("\n".join(table))
    return 0 if ok else 1


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    rc = {"hold": hold, "refuse": refuse, "drop": drop, "summary": summary}[cmd](args)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
