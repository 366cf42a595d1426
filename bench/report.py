#!/usr/bin/env python3
"""Turn the fio JSON files of one bench/run.sh run into Markdown tables.

    report.py RESULTS_DIR CONFIG...

RESULTS_DIR holds round-N/CONFIG/WORKLOAD.json (fio --output-format=json,
one directory per round), cpu.tsv (round, config, workload, wall seconds,
server CPU cores, whole-machine busy cores, fio CPU cores), settle.tsv
(round, config, workload, seconds until the replicas caught up after it)
and checks.tsv (config, check, result).  The first CONFIG is the baseline
B that ratios refer to.  With several rounds every figure is the median over the rounds.
Standard library only.
"""

import glob
import json
import os
import statistics
import sys

WORKLOADS = ["seqwrite", "randwrite32", "randwrite1", "randread32"]
TITLES = {
    "seqwrite": "1 MiB seq write QD16",
    "randwrite32": "4 KiB rand write QD32",
    "randwrite1": "4 KiB rand write QD1",
    "randread32": "4 KiB rand read QD32",
}
# Targets from issue 2: (config, workload, minimum ratio to B).
TARGETS = [
    ("async", "seqwrite", 0.90),
    ("sync", "seqwrite", 0.75),
    ("sync", "randwrite32", 0.60),
]
# Targets from issue 4 (topologies): (config, workload, reference config,
# minimum ratio to it).  The reference "B" is the baseline (first CONFIG).
TARGETS4 = [
    ("cascade-async", "seqwrite", "B", 0.85),
    ("cascade-async", "randwrite32", "B", 0.85),
    ("cascade", "seqwrite", "sync", 0.90),
    ("cascade", "randwrite32", "sync", 0.90),
]
# Targets from issue 13 (security): TLS costs at most 30% of the
# unencrypted figure of the same link.
TARGETS13 = [
    ("async-tls", "seqwrite", "async", 0.70),
    ("async-tls", "randwrite32", "async", 0.70),
    ("sync-tls", "seqwrite", "sync", 0.70),
    ("sync-tls", "randwrite32", "sync", 0.70),
]
# For information (no target): what each extra hop or peer costs, as a
# ratio to the single-peer configuration with the same first hop.
COMPARE4 = [
    ("cascade", "sync"), ("cascade-async", "async"), ("cascade-sync", "sync"),
    ("one-to-two", "sync"), ("one-to-two-async", "async"),
]
# Reference figures quoted in issue 2 for QEMU's write-blocking mirror.
QEMU_REF = [("qemu-mirror", "seqwrite", 0.31), ("qemu-mirror", "randwrite32", 0.21)]


def load(rdir, cfg, wl):
    path = os.path.join(rdir, cfg, wl + ".json")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    # fio may print warnings before the JSON document.
    start = text.find("{")
    if start < 0:
        return None
    try:
        job = json.loads(text[start:])["jobs"][0]
    except (ValueError, KeyError, IndexError):
        return None
    if job.get("error"):
        return {"error": job["error"]}
    d = job["read"] if wl == "randread32" else job["write"]
    lat = d.get("lat_ns", {})
    clat = d.get("clat_ns", {})
    pct = lat.get("percentile") or clat.get("percentile") or {}
    return {
        "mibs": d["bw_bytes"] / 2**20,
        "iops": d["iops"],
        "lat_mean_us": lat.get("mean", clat.get("mean", 0)) / 1000,
        "lat_p99_us": pct.get("99.000000", 0) / 1000,
        "fio_cpu": (job.get("usr_cpu", 0) + job.get("sys_cpu", 0)) / 100,
    }


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(v, b):
    if v is None or not b:
        return "n/a"
    return f"{v / b:.2f}"


def main():
    res = sys.argv[1]
    cfgs = sys.argv[2:]
    base = cfgs[0]
    rounds = sorted(glob.glob(os.path.join(res, "round-*")),
                    key=lambda p: int(p.rsplit("-", 1)[1]))
    per = [{c: {w: load(d, c, w) for w in WORKLOADS} for c in cfgs}
           for d in rounds]

    def merge(c, w):
        xs = [p[c][w] for p in per if p[c][w] is not None]
        errs = [x for x in xs if "error" in x]
        if errs:
            return errs[0]
        if not xs:
            return None
        return {k: statistics.median(x[k] for x in xs) for k in xs[0]}

    r = {c: {w: merge(c, w) for w in WORKLOADS} for c in cfgs}

    def val(c, w, key, src=None):
        x = (src or r)[c][w]
        if x is None or "error" in x:
            return None
        return x[key]

    out = []
    out.append("### Results (absolute, and ratio to B)\n")
    if len(per) > 1:
        out.append(f"Median of {len(per)} interleaved rounds.\n")
    out.append("Throughput: MiB/s for sequential writes, IOPS for random I/O; "
               "QD1 latency is the mean and 99th percentile of the total "
               "latency in µs (for latency a ratio above 1 is worse).\n")
    out.append("| config | seq write MiB/s | ×B | rand write QD32 IOPS | ×B "
               "| rand write QD1 IOPS | ×B | QD1 mean µs | ×B | QD1 p99 µs "
               "| ×B | rand read QD32 IOPS | ×B |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for c in cfgs:
        row = [c if c != base else f"{c} (baseline)"]
        for w, key, digits in [("seqwrite", "mibs", 0),
                               ("randwrite32", "iops", 0),
                               ("randwrite1", "iops", 0),
                               ("randwrite1", "lat_mean_us", 1),
                               ("randwrite1", "lat_p99_us", 1),
                               ("randread32", "iops", 0)]:
            v = val(c, w, key)
            if r[c][w] is not None and "error" in r[c][w]:
                row += [f"error {r[c][w]['error']}", ""]
                continue
            row += [fmt(v, digits), ratio(v, val(base, w, key))]
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    # Targets (issue 2).
    lines = []
    for c, w, need in TARGETS:
        if c not in cfgs or base not in cfgs:
            continue
        key = "mibs" if w == "seqwrite" else "iops"
        v, b = val(c, w, key), val(base, w, key)
        if v is None or not b:
            lines.append(f"| {c} | {TITLES[w]} | ≥ {need:.2f} | n/a | n/a |")
            continue
        got = v / b
        verdict = ("met" if got >= need else
                   f"MISSED by {need - got:.2f} ({(need - got) / need:.0%} "
                   "short of the target)")
        lines.append(f"| {c} | {TITLES[w]} | ≥ {need:.2f} | {got:.2f} | "
                     f"{verdict} |")
    for c, w, ref in QEMU_REF:
        if c not in cfgs:
            continue
        key = "mibs" if w == "seqwrite" else "iops"
        v, b = val(c, w, key), val(base, w, key)
        got = f"{v / b:.2f}" if v is not None and b else "n/a"
        lines.append(f"| {c} | {TITLES[w]} | ≈ {ref:.2f} (reference) | "
                     f"{got} | — |")
    if lines:
        out.append("### Targets (issue 2)\n")
        out.append("| config | workload | target ×B | measured ×B | verdict |")
        out.append("|---|---|--:|--:|---|")
        out += lines
        out.append("")

    # Issue 4 targets: ratios to B or to another configuration of the run,
    # with every round's ratio (the spread).
    def rel(c, w, key, ref, src=None):
        v, b = val(c, w, key, src), val(ref, w, key, src)
        return v / b if v is not None and b else None

    def rounds_of(c, w, key, ref):
        if len(per) < 2:
            return ""
        rs = [rel(c, w, key, ref, p) for p in per]
        return " (rounds: " + " / ".join(
            "n/a" if x is None else f"{x:.2f}" for x in rs) + ")"

    def target_table(targets, title):
        lines = []
        for c, w, ref, need in targets:
            ref = base if ref == "B" else ref
            if c not in cfgs or ref not in cfgs:
                continue
            key = "mibs" if w == "seqwrite" else "iops"
            got = rel(c, w, key, ref)
            if got is None:
                lines.append(f"| {c} | {TITLES[w]} | ≥ {need:.2f} × {ref} "
                             "| n/a | n/a |")
                continue
            verdict = ("met" if got >= need else
                       f"MISSED by {need - got:.2f} "
                       f"({(need - got) / need:.0%} short of the target)")
            lines.append(f"| {c} | {TITLES[w]} | ≥ {need:.2f} × {ref} | "
                         f"{got:.2f}{rounds_of(c, w, key, ref)} | "
                         f"{verdict} |")
        if lines:
            out.append(f"### Targets ({title})\n")
            out.append("| config | workload | target | measured | verdict |")
            out.append("|---|---|--:|--:|---|")
            out.extend(lines)
            out.append("")

    target_table(TARGETS4, "issue 4: topologies")
    target_table(TARGETS13, "issue 13: TLS against the same link in "
                 "plain TCP")
    lines = []
    cols = [("seqwrite", "mibs"), ("randwrite32", "iops"),
            ("randwrite1", "iops"), ("randread32", "iops")]
    for c, ref in COMPARE4:
        if c not in cfgs or ref not in cfgs:
            continue
        row = [c, ref]
        for w, key in cols:
            got = rel(c, w, key, ref)
            row.append("n/a" if got is None else f"{got:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    if lines:
        out.append("### Topologies against the single-peer configurations\n")
        out.append("Ratio of each topology's figure to the one-peer "
                   "configuration with the same first hop (1.00 = the "
                   "second hop or second peer costs nothing).\n")
        out.append("| config | ratio to | seq write | rand write QD32 | "
                   "rand write QD1 | rand read QD32 |")
        out.append("|---|---|--:|--:|--:|--:|")
        out += lines
        out.append("")

    # Every round's ratios for the figures with targets: shows the noise.
    if len(per) > 1:
        out.append("### Ratio to B in each round\n")
        cols = [("seqwrite", "mibs", "seq write"),
                ("randwrite32", "iops", "rand write QD32"),
                ("randwrite1", "iops", "rand write QD1"),
                ("randread32", "iops", "rand read QD32")]
        out.append("| config | " + " | ".join(t for _, _, t in cols) + " |")
        out.append("|---|" + "--:|" * len(cols))
        for c in cfgs[1:]:
            row = [c]
            for w, key, _ in cols:
                rs = []
                for p in per:
                    v, b = val(c, w, key, p), val(base, w, key, p)
                    rs.append(f"{v / b:.2f}" if v is not None and b else "n/a")
                row.append(" / ".join(rs))
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    # CPU use (mean over rounds).
    acc = {}
    try:
        with open(os.path.join(res, "cpu.tsv")) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if len(p) >= 7:
                    acc.setdefault((p[1], p[2]), []).append(
                        tuple(float(x) for x in p[3:7]))
    except OSError:
        pass
    cpu = {k: tuple(statistics.mean(col) for col in zip(*v))
           for k, v in acc.items()}
    if cpu:
        out.append("### CPU use during each fio run\n")
        out.append("Cores busy (1.00 = one core fully used, the machine has "
                   f"{os.cpu_count()}), averaged over the fio run including "
                   "its ramp: the server processes (nbdkit / blockrelayd / "
                   "qemu-storage-daemon / target nbdkit), fio itself, and "
                   "everything else on the machine (other = whole-machine "
                   "busy − servers − fio; noise from other work).\n")
        out.append("| config | " + " | ".join(
            f"{TITLES[w]}: servers / fio / other" for w in WORKLOADS) + " |")
        out.append("|---|" + "--:|" * len(WORKLOADS))
        for c in cfgs:
            row = [c]
            for w in WORKLOADS:
                x = cpu.get((c, w))
                if x is None:
                    row.append("n/a")
                    continue
                _, srv, busy, fio = x
                other = max(0.0, busy - srv - fio)
                row.append(f"{srv:.2f} / {fio:.2f} / {other:.2f}")
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    # Catch-up: how long the replicas needed, after each write workload,
    # until nothing was queued or dirty on any sending node.
    acc = {}
    try:
        with open(os.path.join(res, "settle.tsv")) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if len(p) >= 4:
                    acc.setdefault((p[1], p[2]), []).append(float(p[3]))
    except OSError:
        pass
    if acc:
        steps = [("prefill", "prefill"), ("seqwrite", TITLES["seqwrite"]),
                 ("randwrite32", TITLES["randwrite32"]),
                 ("randwrite1", TITLES["randwrite1"])]
        out.append("### Catch-up after each write workload\n")
        out.append("Seconds from the end of the fio run until every peer of "
                   "every sending node (in hop order) had nothing queued or "
                   "dirty (`blockrelay status --wait replicating`, which "
                   "polls every 50 ms; median over rounds).  Near 0 for a "
                   "sync hop; for an async hop, the backlog the primary's "
                   "throughput left behind.\n")
        out.append("| config | " + " | ".join(t for _, t in steps) + " |")
        out.append("|---|" + "--:|" * len(steps))
        for c in cfgs:
            if not any((c, w) in acc for w, _ in steps):
                continue
            row = [c]
            for w, _ in steps:
                xs = acc.get((c, w))
                row.append(f"{statistics.median(xs):.2f}" if xs else "n/a")
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    # Sanity checks.
    try:
        with open(os.path.join(res, "checks.tsv")) as f:
            checks = [line.rstrip("\n").split("\t", 2) for line in f]
    except OSError:
        checks = []
    if checks:
        out.append("### Checks\n")
        for p in checks:
            if len(p) == 3:
                out.append(f"* **{p[0]}** — {p[1]}: {p[2]}")
        out.append("")

    print("\n".join(out))


if __name__ == "__main__":
    main()
