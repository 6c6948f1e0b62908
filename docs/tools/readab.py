#!/usr/bin/env python3
"""readab.py — QD1 O_DIRECT reads through several mounts, alternating.

Each mount must hold a file named data of at least 8 MiB. In every round
each mount gets a 0.5 s window (the order reverses every other round); a
window reads SIZE bytes at a time, sequentially through the first 8 MiB,
and records each read's latency. Printed per mount: the median over rounds
of the window p50s, every round's p50 and p90, and the daemon's CPU time
per read (all its threads, from /proc/PID/task/*/stat). Used for
docs/BENCHMARKS-history.md, session 11.

  readab.py SIZE MNT:PID [MNT:PID ...]

Environment: R rounds (default 8); THINK microseconds of busy waiting
before each read, outside the timed part (default 0: back to back).
Pin the client yourself (taskset -c N python3 readab.py ...), and the
daemons when they are started (taskset -c N evfs mount ...).
"""
import mmap
import os
import sys
import time


def cpu_seconds(pid):
    """User + system time of every thread of pid."""
    ticks = 0
    for tid in os.listdir("/proc/%s/task" % pid):
        try:
            with open("/proc/%s/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Reader:
    def __init__(self, mnt, pid, size):
        self.mnt, self.pid, self.size = mnt, pid, size
        self.fd = os.open(os.path.join(mnt, "data"), os.O_RDONLY | os.O_DIRECT)
        self.buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT wants
        self.off = 0
        self.p50s, self.p90s = [], []
        self.cpu, self.reads = 0.0, 0

    def read(self):
        self.off = (self.off + self.size) % (8 << 20)
        os.preadv(self.fd, [self.buf], self.off)

    def window(self, seconds, think_ns):
        for _ in range(200):  # warm-up
            self.read()
        c0 = cpu_seconds(self.pid)
        lat = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if think_ns:
                until = time.perf_counter_ns() + think_ns
                while time.perf_counter_ns() < until:
                    pass
            t0 = time.perf_counter_ns()
            self.read()
            lat.append(time.perf_counter_ns() - t0)
        self.cpu += cpu_seconds(self.pid) - c0
        self.reads += len(lat)
        lat.sort()
        self.p50s.append(lat[len(lat) // 2] / 1000)
        self.p90s.append(lat[len(lat) * 9 // 10] / 1000)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    size = int(sys.argv[1])
    rounds = int(os.environ.get("R", "8"))
    think_ns = int(os.environ.get("THINK", "0")) * 1000
    readers = [Reader(*arg.split(":", 1), size) for arg in sys.argv[2:]]
    for r in range(rounds):
        for rd in readers if r % 2 == 0 else readers[::-1]:
            rd.window(0.5, think_ns)
    for rd in readers:
        med = sorted(rd.p50s)[len(rd.p50s) // 2]
        print("%-12s p50 median %6.1f µs  cpu %6.1f µs/read" % (rd.mnt, med, 1e6 * rd.cpu / rd.reads))
        print("%-12s   p50 %s" % ("", " ".join("%.0f" % x for x in rd.p50s)))
        print("%-12s   p90 %s" % ("", " ".join("%.0f" % x for x in rd.p90s)))


if __name__ == "__main__":
    main()
