#!/usr/bin/env python3
"""Where each core's time went during a run, thread by thread, from the
scheduler's own record: how long each thread ran on each core, in how many
slices, and how long the threads named by `--pair` ran at the same time
(for Task Bench on 2 ranks, the two ranks' workers: a step needs both).

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
ran while not running at the same time is mostly a spin waiting for the
other rank.
"""

import argparse
import re
import subprocess
import sys
from collections import defaultdict

# `perf sched timehist`: time [cpu] task[tid/pid] wait delay run (ms), and
# with some options more columns after the run time (a call chain, a state).
LINE = re.compile(
    r"^\s*(?P<t>\d+\.\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<task>\S.*?)\s+"
    r"(?P<wait>-?\d+\.\d+)\s+(?P<delay>-?\d+\.\d+)\s+(?P<run>-?\d+\.\d+)(?:\s|$)")

# `comm[tid/pid]` or `comm[tid]`; the comm itself may hold brackets.
TASK = re.compile(r"^(?P<name>.*)\[(?P<tid>\d+)(?:/\d+)?\]$")

WORKERS = r"^ferry-r\d+-w\d+$"


def parse_task(task):
    """`comm[tid/pid]` as (comm, tid); a task with no id (`<idle>`) as
    (task, None)."""
    m = TASK.match(task)
    return (m.group("name"), int(m.group("tid"))) if m else (task, None)


def parse_timehist(lines):
    """The slices in `perf sched timehist` lines: (start s, end s, cpu,
    thread name, tid), one per line that ended a slice; other lines
    skipped."""
    out = []
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        end = float(m.group("t"))
        run = float(m.group("run")) / 1e3
        name, tid = parse_task(m.group("task"))
        out.append((end - run, end, int(m.group("cpu")), name, tid))
    return out


def clip(slices, lo, hi):
    """The parts of `slices` inside [lo, hi] (a slice too short for
    timehist's microseconds, of length 0, is kept)."""
    out = []
    for s, e, c, n, t in slices:
        a, b = max(s, lo), min(e, hi)
        if a <= b:
            out.append((a, b, c, n, t))
    return out


def window(slices, rx):
    """From the first start to the last end of a slice whose thread name
    matches the compiled `rx`; None when none does."""
    hits = [(s, e) for s, e, _, n, _ in slices if rx.search(n)]
    if not hits:
        return None
    return min(s for s, _ in hits), max(e for _, e in hits)


def per_thread(slices):
    """{(cpu, name, tid): (seconds run, slices)}: a thread that ran on two
    cores has a row for each."""
    acc = defaultdict(lambda: [0.0, 0])
    for s, e, c, n, t in slices:
        acc[(c, n, t)][0] += e - s
        acc[(c, n, t)][1] += 1
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


def intersect(a, b):
    """The parts covered by both merged, ordered lists of intervals."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def co_running(slices, names):
    """Seconds during which a thread of each name in `names` ran (every
    thread of a name counted, on any core)."""
    acc = None
    for name in names:
        runs = union([(s, e) for s, e, _, n, _ in slices if n == name])
        acc = runs if acc is None else intersect(acc, runs)
        if not acc:
            return 0.0
    return sum(e - s for s, e in acc)


def report(slices, pattern=WORKERS, pair=None, steps=None, top=12):
    """The text this script prints for `slices`."""
    rx = re.compile(pattern)
    w = window(slices, rx)
    if w is None:
        return "no thread matches %r: nothing to report\n" % pattern
    lo, hi = w
    inside = clip(slices, lo, hi)
    span = hi - lo
    per = (lambda sec: "  %7.3f us/step" % (sec * 1e6 / steps)) if steps else (lambda sec: "")
    lines = ["window %.2f ms%s" % (span * 1e3, per(span))]
    rows = sorted(per_thread(inside).items(), key=lambda kv: -kv[1][0])[:top]
    for (cpu, name, tid), (sec, n) in rows:
        label = name if tid is None else "%s[%d]" % (name, tid)
        lines.append("cpu%-3d %-26s %9.2f ms %6d slices, mean %7.1f us%s"
                     % (cpu, label[:26], sec * 1e3, n, sec * 1e6 / n, per(sec)))
    names = pair or sorted({n for _, _, _, n, _ in inside if rx.search(n)})
    if len(names) >= 2:
        both = co_running(inside, names)
        share = " (%.0f%% of the window)" % (100 * both / span) if span > 0 else ""
        lines.append("%s at once: %.2f ms%s%s"
                     % (" and ".join(names), both * 1e3, share, per(both)))
    return "\n".join(lines) + "\n"


def positive(text):
    """argparse type: an integer of at least 1."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % n)
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("data", nargs="?", help="perf.data written by `perf sched record`")
    src.add_argument("--text", help="read `perf sched timehist` output from this file instead")
    ap.add_argument("--steps", type=positive, help="steps of the run: times also per step")
    ap.add_argument("--window", default=WORKERS,
                    help="regex of the threads whose slices bound the window (default: the workers)")
    ap.add_argument("--pair", nargs="+", help="thread names whose time at once is reported "
                    "(default: every name matching --window)")
    ap.add_argument("--top", type=positive, default=12, help="rows listed (default 12)")
    args = ap.parse_args(argv)
    try:
        if args.text:
            with open(args.text) as f:
                text = f.read()
        else:
            done = subprocess.run(["perf", "sched", "timehist", "-i", args.data],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.stderr.write("perf sched timehist failed: %s" % done.stderr)
                return 1
            text = done.stdout
    except OSError as e:
        sys.stderr.write("sched_share: %s\n" % e)
        return 1
    slices = parse_timehist(text.splitlines())
    if not slices and text.strip():
        sys.stderr.write("sched_share: no line of the input reads as `perf sched timehist` "
                         "output (time [cpu] task wait delay run)\n")
        return 1
    sys.stdout.write(report(slices, args.window, args.pair, args.steps, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
