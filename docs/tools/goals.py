#!/usr/bin/env python3
"""goals.py — where one target stands against DESIGN.md's goals, from evfs bench JSON.

For each workload of each run: the target's p50 and p99 against
passthrough_hp (goals: p50 <= 1.0x, p99 <= 1.25x), its p50 and daemon CPU
per op against go-fuse's loopback `passthrough` (goals: <= 1.0x), and for the
throughput workloads its ops/s against both (goal: >= 1.0x, and >= 72 k for
randread-4k-x64). Misses are in bold. Prints one markdown table, a column
group per JSON file (label = the file's placement).

  goals.py [--target evfs-uring] RUN.json [RUN.json ...]
"""
import json
import sys


def load(path):
    with open(path) as f:
        doc = json.load(f)
    res = {(r["workload"], r["target"]): r for r in doc["results"] if r.get("rounds")}
    label = doc["settings"].get("placement", path)
    order = [w["name"] for w in doc["settings"]["workloads"]]
    return label, res, order


def fmt(x, limit, above=False):
    s = "%.2f" % x
    miss = x < limit if above else x > limit
    return "**%s**" % s if miss else s


def cell(res, w, target):
    t, hp, pt = res.get((w, target)), res.get((w, "passthrough_hp")), res.get((w, "passthrough"))
    if not t or not hp or not pt:
        return "n/a"
    if w.endswith(("-x64", "-x32")):
        s = "ops ×hp %s, ×go-fuse %s (%.1f k; hp %.1f k)" % (
            fmt(t["ops_per_sec"] / hp["ops_per_sec"], 1.0, True),
            fmt(t["ops_per_sec"] / pt["ops_per_sec"], 1.0, True),
            t["ops_per_sec"] / 1e3, hp["ops_per_sec"] / 1e3)
        if w == "randread-4k-x64" and t["ops_per_sec"] < 72e3:
            s += " **< 72 k**"
        cpu = t["cpu_s_per_mop"] / pt["cpu_s_per_mop"]
        return s + ", CPU " + fmt(cpu, 1.0)
    return ", ".join([
        fmt(t["p50_us"] / hp["p50_us"], 1.0),
        fmt(t["p99_us"] / hp["p99_us"], 1.25),
        fmt(t["p50_us"] / pt["p50_us"], 1.0),
        fmt(t["cpu_s_per_mop"] / pt["cpu_s_per_mop"], 1.0),
    ])


def main(argv):
    target = "evfs-uring"
    if len(argv) > 1 and argv[0] == "--target":
        target, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    runs = [load(p) for p in argv]
    head = ["workload"] + ["%s: p50 ×hp, p99 ×hp, p50 ×go-fuse, CPU ×go-fuse" % label for label, _, _ in runs]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for w in runs[0][2]:
        print("| " + " | ".join([w] + [cell(res, w, target) for _, res, _ in runs]) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
