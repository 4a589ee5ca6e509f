#!/usr/bin/env python3
"""Task Bench METG sweep: Ferry's Task Bench against plain MPI's.

Runs each implementation given (`--mpi-bin` for `taskbench-mpi`,
`--ferry-bin` for `taskbench-ferry`; both take Task Bench's flags and print
its summary lines) on each pattern and rank count with the compute-bound
kernel, halving `-iter` from `--iter-max` down to `--iter-min`, and prints
the minimum effective task granularity, METG(50%), of each:

    cargo build --profile perf --features mpi -p ferry-taskbench --bins
    python3 scripts/taskbench_metg.py --mpi-bin target/perf/taskbench-mpi \\
        --ferry-bin target/perf/taskbench-ferry --ranks 1,2 --steps 1000

Definitions (Slaughter et al., SC20, and Task Bench's scripts/chart_metg.py):

* a point is one `-iter K`; its elapsed time is the median of `--reps` runs
  (the implementations take turns at every run, so they share the machine's
  noise);
* FLOP/s = `Total FLOPs` / elapsed; efficiency = FLOP/s / peak, where the
  peak is `--peak-flops` (per core) × cores if given, else the best FLOP/s
  this implementation reached on this pattern and rank count in the sweep;
* task granularity = elapsed × cores / `Total Tasks`, with cores = ranks ×
  `--cores-per-rank` (and `-width` = cores: one point per core);
* METG = the smallest granularity among the points with efficiency ≥ 50%;
  when the next point (the next smaller `-iter`) is finer, METG is
  interpolated linearly between the two at exactly 50%, as Task Bench's
  `chart_metg.py` does (`numpy.interp` on efficiency → granularity). When no
  point falls below 50% the value is only an upper bound, printed as `<=X`.

A sweep of one implementation on one pattern and rank count stops once a
point's efficiency falls below `--stop-below` (10%).

`--sweeps N` repeats each pattern and rank count's whole sweep N times and
prints each implementation's median METG and the median of the N ratios
(each of one sweep, where both implementations ran at the same time), with
their range. On a shared VM whose cores slow down for seconds at a time,
one sweep's ratio is not a measurement: on the 2-core VM, three sweeps of
the same binaries in a row (1 rank, 10,000 steps) gave 3.04, 2.19 and 5.30. Ranks N > 1 run as
`--mpirun -n N BIN ...`; one rank runs BIN directly. `--json FILE` writes
every run and every METG.

`--point fastest` takes the fastest of a point's runs instead of their
median. On a shared machine another tenant's work only ever adds time to a
run, so the fastest of a few holds the least of it (Task Bench takes the
mean, on dedicated nodes). `--recompute FILE...` prints the METGs again
from sweeps saved with `--json`, with the `--point`, `--threshold` and
`--peak-flops` given (the peak, by default, the one they were made with),
running nothing:

    python3 scripts/taskbench_metg.py --recompute sweeps/*.json --point fastest

`--pool` prints a second table, from each point's runs pooled across all
the sweeps of a pattern and rank count (live, or the dumps recomputed):
one METG per implementation from points of up to `--reps` × `--sweeps`
runs each (a sweep that stopped earlier adds none to the smallest). The
runs of one point within a sweep follow each other within seconds (each
starts the program: 1.5-3 s of wall time a run on the 2-core VM), so a
slow spell of the machine of tens of seconds or more can take all of
them; across sweeps minutes apart it takes fewer. On a machine whose slow
spells only ever add time, the pooled fastest runs are the closest to
what each implementation costs; the per-sweep table says how much a
single sweep varies. Without `--peak-flops` the peak is the best pooled
point's, which can be higher than any one sweep's: a pooled METG is not
bounded by the per-sweep ones.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

TYPES = ["trivial", "no_comm", "stencil_1d", "stencil_1d_periodic", "dom", "tree",
         "fft", "all_to_all", "nearest", "spread", "random_nearest"]


# ---- Pure parts (unit-tested by scripts/test_taskbench_metg.py) ----

def parse_summary(text):
    """Task Bench's summary lines in `text` as a dict (tasks, deps, flops,
    bytes: int; elapsed: float seconds), or None if any is missing."""
    names = {"Total Tasks": "tasks", "Total Dependencies": "deps",
             "Total FLOPs": "flops", "Total Bytes": "bytes"}
    out = {}
    for line in text.splitlines():
        line = line.strip()
        for label, key in names.items():
            rest = line[len(label):]
            if line.startswith(label + " ") and key not in out:
                try:
                    out[key] = int(rest.split()[0])
                except (ValueError, IndexError):
                    return None
        if line.startswith("Elapsed Time ") and "elapsed" not in out:
            try:
                out["elapsed"] = float(line.split()[2])
            except (ValueError, IndexError):
                return None
    if set(out) != set(names.values()) | {"elapsed"}:
        return None
    return out


def graph_flags(pattern, width, steps, iters):
    """Task Bench flags for one run: radix and period kept valid for narrow
    widths (spread needs radix <= width and period <= ceil(width/radix))."""
    flags = ["-steps", str(steps), "-width", str(width), "-type", pattern,
             "-kernel", "compute_bound", "-iter", str(iters)]
    if pattern in ("nearest", "spread", "random_nearest"):
        radix = min(3, width)
        flags += ["-radix", str(radix)]
        if pattern in ("spread", "random_nearest"):
            flags += ["-period", str(min(3, -(-width // radix)))]
    return flags


def efficiencies(points, peak=None):
    """Adds `efficiency` to each point (dicts with `flops_per_s`), relative
    to `peak` or, if None, to the best `flops_per_s` among them."""
    best = peak if peak is not None else max((p["flops_per_s"] for p in points), default=0.0)
    for p in points:
        p["efficiency"] = p["flops_per_s"] / best if best > 0 else 0.0
    return points


def metg(points, threshold=0.5):
    """METG of `points` (dicts with `iter`, `granularity`, `efficiency`):
    (value, bracketed), or (None, False) when no point reaches `threshold`.
    `bracketed` is False when no finer point falls below the threshold, so
    the value is only an upper bound. Follows Task Bench's chart_metg.py."""
    pts = sorted(points, key=lambda p: -p["iter"])
    good = [i for i, p in enumerate(pts) if p["efficiency"] >= threshold]
    if not good:
        return None, False
    i = min(good, key=lambda i: pts[i]["granularity"])
    g = pts[i]["granularity"]
    if i + 1 >= len(pts):
        return g, False
    nxt = pts[i + 1]
    if nxt["granularity"] < g:
        e0, e1 = pts[i]["efficiency"], nxt["efficiency"]
        if e0 != e1:
            # Linear in efficiency between (e1, g1) and (e0, g0), at threshold.
            frac = (threshold - e1) / (e0 - e1)
            frac = min(max(frac, 0.0), 1.0)
            g = nxt["granularity"] + frac * (g - nxt["granularity"])
    return g, any(p["efficiency"] < threshold for p in pts[i + 1:])


def iter_counts(hi, lo):
    """`hi`, `hi/2`, ... down to `lo` (inclusive when reached)."""
    out = []
    k = hi
    while k >= max(lo, 1):
        out.append(k)
        k //= 2
    return out


POINT_ESTIMATES = {"median": statistics.median, "fastest": min}


def point_elapsed(runs, how="median"):
    """A point's elapsed time from its runs' (seconds): their median, or
    the fastest (`how`, a key of `POINT_ESTIMATES`)."""
    return POINT_ESTIMATES[how](runs)


def point_from_runs(p, how):
    """Saved point `p` (a dict of `--json`'s `points`) with its elapsed
    time, FLOP/s and granularity taken from its runs by `how`."""
    elapsed = point_elapsed(p["elapsed_runs"], how)
    q = dict(p)
    q["elapsed"] = elapsed
    q["flops_per_s"] = p["flops"] / elapsed if elapsed > 0 else 0.0
    q["granularity"] = elapsed * p["cores"] / p["tasks"] if p["tasks"] else 0.0
    return q


def saved_sweeps(dumps):
    """The sweeps in `--json` dumps: {(pattern, ranks, steps, cores):
    [{impl: ([points], error)}]}, one dict per sweep, in order, each
    naming every implementation seen in any of them (no points and no
    error where one had none in that sweep). A point without a `sweep`
    number (an older dump) starts a new sweep of its implementation when
    its `iter` is not below the one before it (a sweep halves `iter` from
    the top); the error of a failed sweep comes from the dump's `metg`
    list. Raises `ValueError` for a dump of the wrong shape."""
    out = {}
    for n, dump in enumerate(dumps):
        if not isinstance(dump, dict) or not isinstance(dump.get("points"), list):
            raise ValueError("not a sweep's JSON: no list of points")
        numbers, last = {}, {}
        for p in dump["points"]:
            try:
                key = (p["pattern"], p["ranks"], p["steps"], p["cores"])
                impl, k = p["impl"], p["iter"]
                if not p["elapsed_runs"]:
                    raise ValueError(f"{impl} at iter {k}: no runs")
            except (KeyError, TypeError) as e:
                raise ValueError(f"a point without {e}") from None
            if "sweep" in p:
                number = p["sweep"]
            else:
                mine = (key, impl)
                if mine in last and k >= last[mine]:
                    numbers[mine] = numbers.get(mine, 0) + 1
                last[mine] = k
                number = numbers.get((key, impl), 0)
            per = out.setdefault(key, {})
            per.setdefault((n, number), {}).setdefault(impl, ([], None))[0].append(p)
        for m in dump.get("metg", []):
            if isinstance(m, dict) and m.get("error"):
                key = next((k for k in out if k[:2] == (m.get("pattern"), m.get("ranks"))), None)
                if key is not None:
                    sweep = out[key].setdefault((n, m.get("sweep", 0)), {})
                    points, _ = sweep.get(m["impl"], ([], None))
                    sweep[m["impl"]] = (points, m["error"])
    result = {}
    for key, per in out.items():
        impls = sorted({i for sweep in per.values() for i in sweep})
        result[key] = [{i: per[s].get(i, ([], None)) for i in impls} for s in sorted(per)]
    return result


def pooled(sweeps):
    """One sweep's worth of points per implementation from several sweeps
    (`saved_sweeps`' lists): {impl: [point]}, each point holding the runs
    of every sweep at its `iter`, highest `iter` first. A sweep that
    stopped earlier adds nothing below where it stopped."""
    out = {}
    for sweep_points in sweeps:
        for name, (points, _error) in sweep_points.items():
            mine = out.setdefault(name, {})
            for p in points:
                q = mine.get(p["iter"])
                if q is None:
                    mine[p["iter"]] = dict(p, elapsed_runs=list(p["elapsed_runs"]))
                else:
                    q["elapsed_runs"].extend(p["elapsed_runs"])
    return {name: [pts[k] for k in sorted(pts, reverse=True)] for name, pts in out.items()}


def metg_from_runs(points, how, threshold, peak):
    """The METG of saved `points`, each point's time taken from its runs
    by `how`, efficiencies against `peak` (None: the best of them)."""
    return metg(efficiencies([point_from_runs(p, how) for p in points], peak), threshold)


def pooled_row(pattern, ranks, sweeps, how, threshold, peak):
    """The table row of `sweeps` (of one pattern and rank count) with each
    point's runs pooled across them (`pooled`), its time taken by `how`,
    and the most runs a point has (`runs`). An implementation with no METG
    from the pooled points and an error in some sweep shows as failed."""
    points_of = pooled(sweeps)
    per, runs = {}, 0
    for name in sorted({n for sweep_points in sweeps for n in sweep_points}):
        points = points_of.get(name, [])
        value, bracketed = metg_from_runs(points, how, threshold, peak)
        error = next((sweep_points[name][1] for sweep_points in sweeps
                      if name in sweep_points and sweep_points[name][1]), None)
        per[name] = [(value, bracketed, error)]
        runs = max([runs] + [len(p["elapsed_runs"]) for p in points])
    row, _ = summary_row(pattern, ranks, per)
    row["runs"] = runs
    return row


def median_or_none(values):
    """The median of the values that are not None, or None."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def paired_ratios(ferry, mpi):
    """`ferry[i] / mpi[i]` for each sweep `i` where both have a METG."""
    return [f / m for f, m in zip(ferry, mpi) if f and m]


def fmt_us(value, bracketed):
    if value is None:
        return "n/a"
    s = f"{value * 1e6:.2f}"
    return s if bracketed else "<=" + s


# ---- Running ----

class Impl:
    def __init__(self, name, binary, env):
        self.name, self.binary, self.env = name, binary, env


def command(impl, ranks, mpirun, flags):
    if ranks == 1:
        return [impl.binary] + flags
    return shlex.split(mpirun) + ["-n", str(ranks), impl.binary] + flags


def run_once(impl, ranks, mpirun, flags, timeout):
    """One run: (summary dict, None) or (None, why it failed)."""
    cmd = command(impl, ranks, mpirun, flags)
    env = dict(os.environ)
    env.update(impl.env)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s: {shlex.join(cmd)}"
    except OSError as e:
        return None, f"cannot run {shlex.join(cmd)}: {e}"
    s = parse_summary(r.stdout)
    if r.returncode != 0 or s is None:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        return None, f"exit {r.returncode}: {shlex.join(cmd)}\n  " + "\n  ".join(tail)
    return s, None


def sweep(impls, pattern, ranks, args, log):
    """Every point of every implementation on one pattern and rank count:
    {impl name: ([points], error or None)}."""
    cores = ranks * args.cores_per_rank
    state = {i.name: {"points": [], "error": None, "done": False, "best": 0.0} for i in impls}
    for k in iter_counts(args.iter_max, args.iter_min):
        active = [i for i in impls if not state[i.name]["done"]]
        if not active:
            break
        flags = graph_flags(pattern, cores, args.steps, k)
        times = {i.name: [] for i in active}
        summaries = {}
        for _ in range(args.reps):
            for impl in active:
                if state[impl.name]["done"]:
                    continue
                s, err = run_once(impl, ranks, args.mpirun, flags, args.timeout)
                if err:
                    state[impl.name].update(error=err, done=True)
                    log(f"  {impl.name} {pattern} ranks={ranks} iter={k}: {err}")
                    continue
                times[impl.name].append(s["elapsed"])
                summaries[impl.name] = s
        for impl in active:
            st = state[impl.name]
            if st["done"] and not times[impl.name]:
                continue
            if len(times[impl.name]) < args.reps:
                continue
            s = summaries[impl.name]
            p = point_from_runs(
                {"impl": impl.name, "pattern": pattern, "ranks": ranks, "cores": cores,
                 "sweep": getattr(args, "sweep_number", 0),
                 "iter": k, "steps": args.steps, "width": cores, "tasks": s["tasks"],
                 "deps": s["deps"], "flops": s["flops"], "elapsed_runs": times[impl.name]},
                args.point)
            elapsed, flops_per_s = p["elapsed"], p["flops_per_s"]
            st["points"].append(p)
            st["best"] = max(st["best"], flops_per_s)
            peak = args.peak_flops * cores if args.peak_flops else st["best"]
            eff = flops_per_s / peak if peak > 0 else 0.0
            log(f"  {impl.name:5} {pattern} ranks={ranks} iter={k:>6}: "
                f"{elapsed:.3e} s, {p['granularity'] * 1e6:9.2f} us/task, eff {eff:6.1%}")
            if eff < args.stop_below:
                st["done"] = True
    out = {}
    for impl in impls:
        st = state[impl.name]
        peak = args.peak_flops * cores if args.peak_flops else None
        out[impl.name] = (efficiencies(st["points"], peak), st["error"])
    return out


def summary_row(pattern, ranks, per):
    """A table row from each implementation's sweeps `per` ({impl:
    [(metg, bracketed, error)]})."""
    row = {"pattern": pattern, "ranks": ranks}
    failed = False
    for name, runs in per.items():
        value = median_or_none(v for v, _, _ in runs)
        if value is None and any(e for _, _, e in runs):
            failed = True
            row[name] = "fail"
        else:
            row[name] = fmt_us(value, all(b for v, b, _ in runs if v is not None))
        row[name + "_s"] = value
        row[name + "_all"] = [v for v, _, _ in runs]
    return row, failed


def print_table(rows, many, runs=False):
    """The METG table; with `many`, each ratio's range and how many sweeps
    it is the median of; with `runs`, how many runs a point has at most
    (`pooled_row`'s rows)."""
    print(f"{'pattern':<22} {'ranks':>5} {'METG Ferry (us)':>16} {'METG MPI (us)':>14} "
          f"{'Ferry/MPI':>10}" + (f" {'ratio range':>12} {'sweeps':>6}" if many else "")
          + (f" {'runs/point':>10}" if runs else ""))
    for row in rows:
        ratios = paired_ratios(row.get("ferry_all", []), row.get("mpi_all", []))
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        line = (f"{row['pattern']:<22} {row['ranks']:>5} {row.get('ferry', '-'):>16} "
                f"{row.get('mpi', '-'):>14} {ratio:>10}")
        if many:
            span = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
            line += f" {span:>12} {len(ratios):>6}"
        if runs:
            line += f" {row['runs']:>10}"
        print(line)


def print_pooled(rows, how):
    """The table of `pooled_row`s, under a line that says what it is."""
    print(f"each point's runs pooled across the sweeps, its time the {how} of them")
    print_table(rows, False, runs=True)


def recompute(args):
    """`--recompute`: the table of the saved sweeps, every point's time
    taken from its runs by `--point`, against `--peak-flops` if given,
    else the one the dumps were made with, else the best seen."""
    dumps = []
    for path in args.recompute:
        try:
            with open(path) as fh:
                dump = json.load(fh)
            saved_sweeps([dump])
        except (OSError, ValueError) as e:
            print(f"--recompute {path}: {e}", file=sys.stderr)
            return 2
        dumps.append(dump)
    made = {d.get("settings", {}).get("peak_flops") for d in dumps}
    peak = args.peak_flops
    if peak is None and len(made) == 1:
        peak = made.pop()
    rows, pools = [], []
    for (pattern, ranks, _steps, cores), runs in sorted(saved_sweeps(dumps).items()):
        total = peak * cores if peak else None
        if args.pool:
            pools.append(pooled_row(pattern, ranks, runs, args.point, args.threshold, total))
        per = {}
        for sweep_points in runs:
            for name, (points, error) in sweep_points.items():
                value, bracketed = metg_from_runs(points, args.point, args.threshold, total)
                per.setdefault(name, []).append((value, bracketed, error))
        rows.append(summary_row(pattern, ranks, per)[0])
    print(f"{len(dumps)} file(s), each point's time the {args.point} of its runs")
    print_table(rows, any(max(len(r.get("ferry_all", [])), len(r.get("mpi_all", []))) > 1
                          for r in rows))
    if args.pool:
        print_pooled(pools, args.point)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mpi-bin", help="taskbench-mpi binary")
    ap.add_argument("--ferry-bin", help="taskbench-ferry binary")
    ap.add_argument("--ferry-env", action="append", default=[], metavar="K=V",
                    help="environment for the Ferry binary (repeatable)")
    ap.add_argument("--types", default="stencil_1d",
                    help="comma-separated patterns, or 'all' (default stencil_1d)")
    ap.add_argument("--ranks", default="1,2", help="comma-separated rank counts (default 1,2)")
    ap.add_argument("--cores-per-rank", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=1,
                    help="whole sweeps per pattern and rank count; medians are printed")
    ap.add_argument("--iter-max", type=int, default=1 << 16)
    ap.add_argument("--iter-min", type=int, default=1)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--stop-below", type=float, default=0.1)
    ap.add_argument("--peak-flops", type=float,
                    help="peak FLOP/s of one core (default: best seen in the sweep)")
    ap.add_argument("--mpirun", default="mpirun --oversubscribe",
                    help="launcher for more than one rank (default 'mpirun --oversubscribe')")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run")
    ap.add_argument("--json", help="write every run and METG here")
    ap.add_argument("--point", choices=sorted(POINT_ESTIMATES), default="median",
                    help="a point's time from its runs: their median (default) or the fastest")
    ap.add_argument("--pool", action="store_true",
                    help="also print the METGs of each point's runs pooled across the sweeps")
    ap.add_argument("--recompute", nargs="+", metavar="JSON",
                    help="print the METGs of sweeps saved with --json again; run nothing "
                         "(of the other options only --point, --pool, --threshold and "
                         "--peak-flops count)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-point lines")
    args = ap.parse_args(argv)

    if args.recompute:
        return recompute(args)
    impls = []
    if args.ferry_bin:
        env = dict(kv.split("=", 1) for kv in args.ferry_env if "=" in kv)
        impls.append(Impl("ferry", args.ferry_bin, env))
    if args.mpi_bin:
        impls.append(Impl("mpi", args.mpi_bin, {}))
    if not impls:
        ap.error("give --mpi-bin and/or --ferry-bin")
    types = TYPES if args.types == "all" else [t for t in args.types.split(",") if t]
    bad = [t for t in types if t not in TYPES]
    if bad:
        ap.error(f"unknown pattern(s) {', '.join(bad)}; one of {', '.join(TYPES)}")
    try:
        ranks_list = [int(r) for r in args.ranks.split(",") if r]
    except ValueError:
        ap.error(f"--ranks {args.ranks!r}: expected comma-separated integers")
    if (any(r < 1 for r in ranks_list) or args.reps < 1 or args.steps < 1
            or args.cores_per_rank < 1 or args.sweeps < 1):
        ap.error("ranks, reps, sweeps, steps and cores per rank must be at least 1")

    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    settings = {k: getattr(args, k) for k in
                ("point", "peak_flops", "threshold", "stop_below", "reps", "steps",
                 "cores_per_rank")}
    rows, pools, dump, failed = [], [], {"settings": settings, "points": [], "metg": []}, False
    for pattern in types:
        for ranks in ranks_list:
            per = {i.name: [] for i in impls}
            done = []
            for n in range(args.sweeps):
                log(f"{pattern}, {ranks} rank(s), {ranks * args.cores_per_rank} core(s), "
                    f"sweep {n + 1} of {args.sweeps}")
                args.sweep_number = n
                res = sweep(impls, pattern, ranks, args, log)
                done.append(res)
                for name, (points, error) in res.items():
                    dump["points"].extend(points)
                    value, bracketed = metg(points, args.threshold)
                    per[name].append((value, bracketed, error))
                    dump["metg"].append({"impl": name, "pattern": pattern, "ranks": ranks,
                                         "sweep": n, "metg_s": value, "bracketed": bracketed,
                                         "error": error})
            row, bad = summary_row(pattern, ranks, per)
            failed |= bad
            rows.append(row)
            if args.pool:
                cores = ranks * args.cores_per_rank
                pools.append(pooled_row(pattern, ranks, done, args.point, args.threshold,
                                        args.peak_flops * cores if args.peak_flops else None))

    print_table(rows, args.sweeps > 1)
    if args.pool:
        print_pooled(pools, args.point)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dump, fh, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
