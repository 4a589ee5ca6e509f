#!/usr/bin/env python3
"""Where each core's time went during a run, thread by thread, from the
scheduler's own record: how long each thread ran, in how many slices, and
how long the threads named by `--pair` ran at the same time on different
cores (for Task Bench on 2 ranks, the two ranks' workers: a step needs both).

    perf sched record -o sched.data -- mpirun -n 2 ... taskbench-ferry -steps 50000 ...
    python3 scripts/sched_share.py sched.data --steps 50000

The window is from the first to the last slice of a thread whose name
matches `--window` (by default the ranks' workers, `ferry-r<N>-w<N>`), so
that process start-up and MPI's initialization are left out. With
`--steps N` every time is also given per step, in microseconds. `--text
FILE` reads what `perf sched timehist` printed instead of running it.

Threads sharing a core take turns: a rank whose submitting thread (the
driver or a shard actor) or progress thread runs holds its worker back,
and on 2 ranks in lockstep the other rank's worker too. What the workers
ran while not co-running is mostly a spin waiting for the other rank.
"""

import argparse
import re
import subprocess
import sys
from collections import defaultdict

# `perf sched timehist`: time [cpu] task[tid/pid] wait delay run (ms).
LINE = re.compile(
    r"^\s*(?P<t>\d+\.\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<task>\S.*?)\s+"
    r"(?P<wait>-?\d+\.\d+)\s+(?P<delay>-?\d+\.\d+)\s+(?P<run>-?\d+\.\d+)\s*$")

WORKERS = r"^ferry-r\d+-w\d+$"


def thread_name(task):
    """`comm[tid/pid]` or `comm[tid]` as `comm`; `<idle>` as it is."""
    return task.split("[", 1)[0] if "[" in task else task


def parse_timehist(lines):
    """The slices in `perf sched timehist` lines: (start s, end s, cpu,
    thread name), one per line that ended a slice; other lines skipped."""
    out = []
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        end = float(m.group("t"))
        run = float(m.group("run")) / 1e3
        out.append((end - run, end, int(m.group("cpu")), thread_name(m.group("task"))))
    return out


def clip(slices, lo, hi):
    """The parts of `slices` inside [lo, hi]."""
    return [(max(s, lo), min(e, hi), c, n) for s, e, c, n in slices if min(e, hi) > max(s, lo)]


def window(slices, pattern):
    """From the first start to the last end of a slice whose thread name
    matches `pattern`; None when none does."""
    rx = re.compile(pattern)
    hits = [(s, e) for s, e, _, n in slices if rx.search(n)]
    if not hits:
        return None
    return min(s for s, _ in hits), max(e for _, e in hits)


def per_thread(slices):
    """{(cpu, name): (seconds run, slices)}."""
    acc = defaultdict(lambda: [0.0, 0])
    for s, e, c, n in slices:
        acc[(c, n)][0] += e - s
        acc[(c, n)][1] += 1
    return {k: (v[0], v[1]) for k, v in acc.items()}


def union(intervals):
    """`intervals` merged where they overlap, in order."""
    out = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlap(a, b):
    """Seconds covered by both merged lists of intervals."""
    i = j = 0
    both = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            both += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return both


def co_running(slices, names):
    """Seconds during which every thread named in `names` ran at once (each
    name's slices merged over every core)."""
    lists = [union([(s, e) for s, e, _, n in slices if n == name]) for name in names]
    if not lists or any(not x for x in lists):
        return 0.0
    acc = lists[0]
    for other in lists[1:]:
        merged = []
        i = j = 0
        while i < len(acc) and j < len(other):
            lo, hi = max(acc[i][0], other[j][0]), min(acc[i][1], other[j][1])
            if hi > lo:
                merged.append((lo, hi))
            if acc[i][1] < other[j][1]:
                i += 1
            else:
                j += 1
        acc = merged
    return sum(e - s for s, e in acc)


def report(slices, pattern=WORKERS, pair=None, steps=None, top=12):
    """The text this script prints for `slices`."""
    w = window(slices, pattern)
    if w is None:
        return "no thread matches %r: nothing to report\n" % pattern
    lo, hi = w
    inside = clip(slices, lo, hi)
    span = hi - lo
    per = (lambda sec: "  %7.3f us/step" % (sec * 1e6 / steps)) if steps else (lambda sec: "")
    lines = ["window %.2f ms%s" % (span * 1e3, per(span))]
    rows = sorted(per_thread(inside).items(), key=lambda kv: -kv[1][0])[:top]
    for (cpu, name), (sec, n) in rows:
        lines.append("cpu%-3d %-18s %9.2f ms %6d slices, mean %7.1f us%s"
                     % (cpu, name[:18], sec * 1e3, n, sec * 1e6 / n, per(sec)))
    rx = re.compile(pattern)
    names = pair or sorted({n for _, _, _, n in inside if rx.search(n)})
    if len(names) >= 2:
        both = co_running(inside, names)
        lines.append("%s at once: %.2f ms (%.0f%% of the window)%s"
                     % (" and ".join(names), both * 1e3, 100 * both / span, per(both)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", help="perf.data written by `perf sched record`")
    ap.add_argument("--text", help="read `perf sched timehist` output from this file instead")
    ap.add_argument("--steps", type=int, help="steps of the run: times also per step")
    ap.add_argument("--window", default=WORKERS,
                    help="regex of the threads whose slices bound the window (default: the workers)")
    ap.add_argument("--pair", nargs="+", help="threads whose time at once is reported "
                    "(default: every thread matching --window)")
    ap.add_argument("--top", type=int, default=12, help="threads listed (default 12)")
    args = ap.parse_args(argv)
    if args.text:
        with open(args.text) as f:
            text = f.read()
    elif args.data:
        done = subprocess.run(["perf", "sched", "timehist", "-i", args.data],
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write("perf sched timehist failed: %s" % done.stderr)
            return 1
        text = done.stdout
    else:
        ap.error("give a perf.data file or --text")
    sys.stdout.write(report(parse_timehist(text.splitlines()), args.window, args.pair,
                            args.steps, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
