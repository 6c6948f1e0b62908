#!/usr/bin/env python3
"""placement.py — how CPU placement decides QD1 latency through a FUSE mount.

A QD1 loop of renames (rename a <-> b in the mount's root; the mount must be
made with --entry-timeout 0 --attr-timeout 0 and hold a file named a or b),
measured in 100 ms windows, one p50 per window. Used for docs/BENCHMARKS-history.md,
"Where the bimodal rounds come from".

  placement.py windows MNT [MNT...]   alternate 1 s per mount, ROUNDS rounds
                                      (env, default 10): the share of windows
                                      that ran "together" (p50 under 60 µs)
  placement.py pinned MNT PID         daemon PID's threads and this client
                                      pinned to CPUs with sched_setaffinity:
                                      same CPU, different CPUs, then the
                                      daemon on CPU 0 and the client free
Run as root (pinning another process's threads).
"""
import os
import sys
import time


class Renamer:
    def __init__(self, mnt):
        self.mnt = mnt
        self.dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        self.cur = 0 if os.path.exists(os.path.join(mnt, "a")) else 1

    def windows(self, n):
        """n windows of 100 ms; the p50 of each, in µs."""
        out = []
        for _ in range(n):
            lat = []
            end = time.perf_counter() + 0.1
            while time.perf_counter() < end:
                t0 = time.perf_counter_ns()
                os.rename("ab"[self.cur], "ab"[1 - self.cur], src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
                lat.append(time.perf_counter_ns() - t0)
                self.cur = 1 - self.cur
            lat.sort()
            out.append(lat[len(lat) // 2] / 1000)
        return out


def pin_all(pid, cpus):
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            pass


def windows(mnts):
    rounds = int(os.environ.get("ROUNDS", "10"))
    rs = [Renamer(m) for m in mnts]
    got = {r.mnt: [] for r in rs}
    for i in range(rounds):
        for r in rs if i % 2 == 0 else rs[::-1]:
            got[r.mnt] += r.windows(10)
    for m, w in got.items():
        s = sorted(w)
        together = sum(1 for x in w if x < 60)
        print("%-24s windows %3d  together %3.0f%%  median %6.1f µs  mean %6.1f µs  p90 %6.1f µs"
              % (m, len(w), 100 * together / len(w), s[len(s) // 2], sum(w) / len(w), s[int(len(s) * 0.9)]))


def pinned(mnt, pid):
    r = Renamer(mnt)
    every = os.sched_getaffinity(0)
    fmt = lambda w: " ".join("%.0f" % x for x in w)
    try:
        pin_all(pid, {0})
        os.sched_setaffinity(0, {0})
        print("daemon CPU 0, client CPU 0:", fmt(r.windows(10)))
        os.sched_setaffinity(0, {1})
        print("daemon CPU 0, client CPU 1:", fmt(r.windows(10)))
        os.sched_setaffinity(0, {0})
        r.windows(2)
        os.sched_setaffinity(0, every)
        print("daemon CPU 0, client free :", fmt(r.windows(20)))
    finally:
        pin_all(pid, every)
        os.sched_setaffinity(0, every)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "windows":
        windows(sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "pinned":
        pinned(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
