#!/usr/bin/env python3
"""Checks scripts/taskbench_metg.py: the METG computation on fixed points
(deterministic), the summary parser and the flags; then, if a built
`taskbench-mpi` is found ($TASKBENCH_MPI_BIN, else
$CARGO_TARGET_DIR/release/ or target/release/), a tiny one-rank sweep
through it (says so and skips that part when there is none).

    python3 scripts/test_taskbench_metg.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taskbench_metg as tm  # noqa: E402


def point(iters, gran_us, eff):
    return {"iter": iters, "granularity": gran_us * 1e-6, "efficiency": eff}


class Metg(unittest.TestCase):
    def test_interpolates_between_the_last_good_and_the_first_bad_point(self):
        pts = [point(1024, 100, 1.0), point(512, 50, 0.9), point(256, 25, 0.7),
               point(128, 15, 0.3), point(64, 10, 0.1)]
        value, bracketed = tm.metg(pts)
        # Between (0.7, 25 us) and (0.3, 15 us): 50% is halfway, 20 us.
        self.assertAlmostEqual(value * 1e6, 20.0)
        self.assertTrue(bracketed)

    def test_order_of_the_input_does_not_matter(self):
        pts = [point(128, 15, 0.3), point(1024, 100, 1.0), point(256, 25, 0.7)]
        self.assertAlmostEqual(tm.metg(pts)[0] * 1e6, 20.0)

    def test_a_noisy_good_point_below_a_bad_one_wins(self):
        # As Task Bench: the smallest granularity with efficiency >= 50%.
        pts = [point(8, 80, 1.0), point(4, 40, 0.4), point(2, 20, 0.6), point(1, 10, 0.2)]
        # Between (0.6, 20) and (0.2, 10): 0.5 is a quarter of the way from 20.
        self.assertAlmostEqual(tm.metg(pts)[0] * 1e6, 17.5)

    def test_exactly_at_the_threshold(self):
        pts = [point(4, 40, 1.0), point(2, 20, 0.5), point(1, 10, 0.5)]
        self.assertAlmostEqual(tm.metg(pts)[0] * 1e6, 10.0)

    def test_unbracketed_and_missing(self):
        value, bracketed = tm.metg([point(4, 40, 1.0), point(2, 20, 0.8)])
        self.assertAlmostEqual(value * 1e6, 20.0)
        self.assertFalse(bracketed)
        self.assertEqual(tm.metg([point(4, 40, 0.2)]), (None, False))
        self.assertEqual(tm.metg([]), (None, False))
        self.assertEqual(tm.fmt_us(2e-5, False), "<=20.00")
        self.assertEqual(tm.fmt_us(2e-5, True), "20.00")
        self.assertEqual(tm.fmt_us(None, False), "n/a")

    def test_efficiency_against_the_best_or_a_given_peak(self):
        pts = tm.efficiencies([{"flops_per_s": 2e9}, {"flops_per_s": 1e9}])
        self.assertEqual([p["efficiency"] for p in pts], [1.0, 0.5])
        pts = tm.efficiencies([{"flops_per_s": 2e9}], peak=4e9)
        self.assertEqual(pts[0]["efficiency"], 0.5)


class Sweeps(unittest.TestCase):
    def test_ratios_pair_the_sweeps_and_skip_missing(self):
        self.assertEqual(tm.paired_ratios([2.0, None, 6.0, 3.0], [1.0, 1.0, 2.0, None]),
                         [2.0, 3.0])
        self.assertEqual(tm.paired_ratios([], []), [])

    def test_median_skips_missing(self):
        self.assertEqual(tm.median_or_none([3.0, None, 1.0, 2.0]), 2.0)
        self.assertIsNone(tm.median_or_none([None, None]))


class Estimates(unittest.TestCase):
    def test_a_point_is_the_median_or_the_fastest_of_its_runs(self):
        runs = [0.30, 0.10, 0.90]
        self.assertEqual(tm.point_elapsed(runs), 0.30)
        self.assertEqual(tm.point_elapsed(runs, "fastest"), 0.10)
        p = tm.point_from_runs({"elapsed_runs": runs, "flops": 100, "cores": 2,
                                "tasks": 4, "elapsed": 0.30}, "fastest")
        self.assertEqual(p["elapsed"], 0.10)
        self.assertAlmostEqual(p["flops_per_s"], 1000.0)
        self.assertAlmostEqual(p["granularity"], 0.05)

    @staticmethod
    def saved(impl, sweep, runs_by_iter, pattern="stencil_1d", ranks=1):
        pts = []
        for k, runs in runs_by_iter:
            p = {"impl": impl, "pattern": pattern, "ranks": ranks, "cores": 1, "iter": k,
                 "steps": 10, "tasks": 10, "flops": 1000 * k, "elapsed_runs": runs}
            if sweep is not None:
                p["sweep"] = sweep
            pts.append(p)
        return pts

    @staticmethod
    def firsts(sweeps, impl):
        return [[p["elapsed_runs"][0] for p in s[impl][0]] for s in sweeps]

    def test_saved_sweeps_are_grouped_by_file_and_sweep_number(self):
        a = {"points": self.saved("mpi", 0, [(4, [1.0])]) + self.saved("mpi", 1, [(4, [2.0])])}
        b = {"points": self.saved("mpi", None, [(4, [3.0])])}
        got = tm.saved_sweeps([a, b])[("stencil_1d", 1, 10, 1)]
        self.assertEqual(self.firsts(got, "mpi"), [[1.0], [2.0], [3.0]])

    def test_an_older_dump_of_several_sweeps_is_split_where_iter_goes_up(self):
        # Two sweeps of one implementation, without sweep numbers.
        pts = self.saved("mpi", None, [(4, [1.0]), (2, [2.0]), (4, [3.0]), (2, [4.0])])
        got = tm.saved_sweeps([{"points": pts}])[("stencil_1d", 1, 10, 1)]
        self.assertEqual(self.firsts(got, "mpi"), [[1.0, 2.0], [3.0, 4.0]])

    def test_a_sweep_without_an_implementation_is_not_paired_with_another(self):
        mpi_only = {"points": self.saved("mpi", 0, [(4, [1.0])])}
        both = {"points": self.saved("ferry", 0, [(4, [5.0])]) + self.saved("mpi", 0, [(4, [7.0])])}
        for dumps in ([mpi_only, both], [both, mpi_only]):
            sweeps = tm.saved_sweeps(dumps)[("stencil_1d", 1, 10, 1)]
            self.assertEqual([len(s["ferry"][0]) for s in sweeps].count(0), 1)
            ferry = [s["ferry"][0][0]["elapsed_runs"][0] if s["ferry"][0] else None
                     for s in sweeps]
            mpi = [s["mpi"][0][0]["elapsed_runs"][0] for s in sweeps]
            self.assertEqual(tm.paired_ratios(ferry, mpi), [5.0 / 7.0])

    def test_a_dump_of_the_wrong_shape_is_refused(self):
        for bad in ([], {"metg": []}, {"points": [{"impl": "mpi"}]},
                    {"points": self.saved("mpi", 0, [(4, [])])}):
            with self.assertRaises(ValueError):
                tm.saved_sweeps([bad])

    def test_a_live_sweep_numbers_its_points_and_takes_the_point_asked_for(self):
        import argparse
        runs = iter([3.0, 1.0, 2.0] * 10)

        def fake_run(impl, ranks, mpirun, flags, timeout):
            return {"elapsed": next(runs), "tasks": 4, "deps": 3, "flops": 400,
                    "bytes": 0}, None

        args = argparse.Namespace(iter_max=2, iter_min=1, reps=3, timeout=1, mpirun="",
                                  steps=4, cores_per_rank=1, point="fastest",
                                  peak_flops=None, stop_below=0.0, sweep_number=3)
        real, tm.run_once = tm.run_once, fake_run
        try:
            out = tm.sweep([tm.Impl("mpi", "x", {})], "stencil_1d", 1, args, lambda s: None)
        finally:
            tm.run_once = real
        points, error = out["mpi"]
        self.assertIsNone(error)
        self.assertEqual([(p["iter"], p["sweep"], p["elapsed"]) for p in points],
                         [(2, 3, 1.0), (1, 3, 1.0)])

    def test_recompute_prints_the_metg_of_the_fastest_runs(self):
        import contextlib
        import io
        import json
        import tempfile
        # The fastest runs give efficiency 1, 0.8, 0.5 and 0.2 at iter 8,
        # 4, 2 and 1; the medians are twice as slow below iter 8, where
        # their METG would be iter 8's 41 us.
        work = {8: [4.0e-5 * 10, 8.0e-5 * 10, 4.1e-5 * 10], 4: [2.5e-5 * 10, 5e-5 * 10, 5e-5 * 10],
                2: [2.0e-5 * 10, 4e-5 * 10, 4e-5 * 10], 1: [2.5e-5 * 10, 5e-5 * 10, 5e-5 * 10]}
        pts = self.saved("ferry", 0, sorted(work.items(), reverse=True))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump({"points": pts, "metg": []}, fh)
        try:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(tm.main(["--recompute", fh.name, "--point", "fastest"]), 0)
            row = [line for line in out.getvalue().splitlines() if line.startswith("stencil_1d")]
            # Granularity is elapsed / tasks: 20 us at iter 2 (efficiency 0.5).
            self.assertEqual(row[0].split()[2], "20.00")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(tm.main(["--recompute", fh.name]), 0)
            row = [line for line in out.getvalue().splitlines() if line.startswith("stencil_1d")]
            self.assertEqual(row[0].split()[2], "41.00", "the medians")
            with open(fh.name, "w") as bad:
                bad.write("[1, 2]")
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(tm.main(["--recompute", fh.name]), 2)
        finally:
            os.unlink(fh.name)


class Pooling(unittest.TestCase):
    saved = staticmethod(Estimates.saved)

    def test_a_points_runs_are_pooled_across_sweeps(self):
        # The second sweep stopped at iter 4: iter 2 has the first's runs only.
        a = {"points": self.saved("mpi", 0, [(4, [1.0, 2.0]), (2, [3.0])])
             + self.saved("ferry", 0, [(4, [9.0])])}
        b = {"points": self.saved("mpi", 1, [(4, [0.5])])}
        sweeps = tm.saved_sweeps([a, b])[("stencil_1d", 1, 10, 1)]
        got = tm.pooled(sweeps)
        self.assertEqual([(p["iter"], p["elapsed_runs"]) for p in got["mpi"]],
                         [(4, [1.0, 2.0, 0.5]), (2, [3.0])])
        self.assertEqual([p["elapsed_runs"] for p in got["ferry"]], [[9.0]])
        # The sweeps' own points are left as they were.
        self.assertEqual(sweeps[0]["mpi"][0][0]["elapsed_runs"], [1.0, 2.0])

    def test_pooled_metg_takes_the_runs_of_every_sweep(self):
        # iter 4 is 40 us a task at efficiency 1 in both sweeps; iter 2 is
        # slow in the first (80 us, efficiency 0.25) and fast in the second
        # (20 us, efficiency 1); iter 1 is slow in both (below 50%).
        s0 = self.saved("mpi", 0, [(4, [4e-4]), (2, [8e-4]), (1, [4e-3])])
        s1 = self.saved("mpi", 1, [(4, [4e-4]), (2, [2e-4]), (1, [4e-3])])
        sweeps = tm.saved_sweeps([{"points": s0 + s1}])[("stencil_1d", 1, 10, 1)]
        row = tm.pooled_row("stencil_1d", 1, sweeps, "fastest", 0.5, None)
        self.assertEqual((row["mpi"], row["runs"]), ("20.00", 2))
        # Their median (50 us, efficiency 0.4) is below 50%: iter 4's 40 us.
        row = tm.pooled_row("stencil_1d", 1, sweeps, "median", 0.5, None)
        self.assertEqual(row["mpi"], "40.00")

    def test_recompute_prints_the_pooled_table_when_asked(self):
        import contextlib
        import io
        import json
        import tempfile
        # iter 4 is 40 us a task at efficiency 1 everywhere; iter 1 is slow
        # (efficiency 0.025: every METG is bracketed). At iter 2 each
        # implementation is slow in its first sweep (80 us, efficiency 0.25:
        # that sweep's METG is iter 4's 40 us) and fast in its second: Ferry
        # 30 us (efficiency 2/3), MPI 20 us (efficiency 1).
        slow = (1, [4e-3])
        pts = (self.saved("ferry", 0, [(4, [4e-4]), (2, [8e-4]), slow])
               + self.saved("ferry", 1, [(4, [4e-4]), (2, [3e-4]), slow])
               + self.saved("mpi", 0, [(4, [4e-4]), (2, [8e-4]), slow])
               + self.saved("mpi", 1, [(4, [4e-4]), (2, [2e-4]), slow]))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump({"points": pts, "metg": []}, fh)
        try:
            for extra, pooled_lines in (([], 0), (["--pool"], 1)):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    self.assertEqual(tm.main(["--recompute", fh.name, "--point", "fastest"]
                                             + extra), 0)
                text = out.getvalue()
                self.assertEqual(text.count("pooled across the sweeps"), pooled_lines)
            rows = [line.split() for line in text.splitlines() if line.startswith("stencil_1d")]
            # Per sweep: medians of (40, 30) and (40, 20), ratio of 1 and 1.5.
            self.assertEqual(rows[0][2:5], ["35.00", "30.00", "1.25"])
            # Pooled: each implementation's fast second sweep at iter 2.
            self.assertEqual(rows[-1][2:6], ["30.00", "20.00", "1.50", "2"])
        finally:
            os.unlink(fh.name)

    def test_a_pooled_row_against_a_given_peak_and_with_a_failed_sweep(self):
        # FLOP/s: iter 4 1e7 (40 us a task), iter 2 8e6 (25 us), iter 1
        # 2.5e5 (400 us).
        ok = self.saved("mpi", 0, [(4, [4e-4]), (2, [2.5e-4]), (1, [4e-3])])
        sweeps = [{"mpi": (ok, None), "ferry": ([], "exit 1: taskbench-ferry ...")},
                  {"mpi": ([], "timed out"), "ferry": ([], "exit 1: taskbench-ferry ...")}]
        # Against its own best iter 2 is at 80%: 25 us.
        row = tm.pooled_row("stencil_1d", 1, sweeps, "fastest", 0.5, None)
        self.assertEqual(row["mpi"], "25.00")
        self.assertEqual(row["ferry"], "fail", "no points, and an error")
        # Against 2e7 iter 4 is at 50% and iter 2 at 40%: 40 us.
        row = tm.pooled_row("stencil_1d", 1, sweeps, "fastest", 0.5, 2e7)
        self.assertEqual(row["mpi"], "40.00")
        # Against 1e8 no point reaches 50%: the second sweep's error.
        row = tm.pooled_row("stencil_1d", 1, sweeps, "fastest", 0.5, 1e8)
        self.assertEqual(row["mpi"], "fail")
        self.assertEqual(row["runs"], 1)

    def test_a_live_run_pools_its_sweeps_when_asked(self):
        import contextlib
        import io
        # Two sweeps of one run a point: iter 2 at 8e-4 s, then 2e-4 s;
        # iter 1 always slow. Pooled, iter 2's fastest run is at
        # efficiency 1 (20 us a task), as the second sweep alone.
        times = iter([4e-4, 8e-4, 4e-3, 4e-4, 2e-4, 4e-3])

        def fake_run(impl, ranks, mpirun, flags, timeout):
            k = int(flags[flags.index("-iter") + 1])
            return {"elapsed": next(times), "tasks": 10, "deps": 0, "flops": 1000 * k,
                    "bytes": 0}, None

        real, tm.run_once = tm.run_once, fake_run
        try:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = tm.main(["--mpi-bin", "x", "--ranks", "1", "--sweeps", "2", "--reps", "1",
                                "--iter-max", "4", "--stop-below", "0", "--point", "fastest",
                                "--pool", "-q"])
        finally:
            tm.run_once = real
        self.assertEqual(code, 0)
        lines = out.getvalue().splitlines()
        pooled_at = [i for i, line in enumerate(lines) if "pooled across the sweeps" in line]
        self.assertEqual(len(pooled_at), 1)
        row = [line.split() for line in lines[pooled_at[0]:] if line.startswith("stencil_1d")]
        self.assertEqual(row[0][3], "20.00")
        self.assertEqual(row[0][-1], "2")


class Parsing(unittest.TestCase):
    TEXT = ("Total Tasks 12\nTotal Dependencies 20\nTotal FLOPs 16128\n"
            "Total Bytes 640\nElapsed Time 5.000000e-01 seconds\n"
            "FLOP/s 3.225600e+04\nB/s 1.280000e+03\n")

    def test_summary(self):
        self.assertEqual(tm.parse_summary("noise\n" + self.TEXT),
                         {"tasks": 12, "deps": 20, "flops": 16128, "bytes": 640,
                          "elapsed": 0.5})
        self.assertIsNone(tm.parse_summary(self.TEXT.replace("Elapsed", "Spent")))
        self.assertIsNone(tm.parse_summary("Total Tasks x\n" + self.TEXT))

    def test_flags_stay_valid_when_narrow(self):
        f = tm.graph_flags("spread", 1, 10, 4)
        self.assertEqual(f[f.index("-radix") + 1], "1")
        self.assertEqual(f[f.index("-period") + 1], "1")
        f = tm.graph_flags("spread", 8, 10, 4)
        self.assertEqual((f[f.index("-radix") + 1], f[f.index("-period") + 1]), ("3", "3"))
        self.assertNotIn("-radix", tm.graph_flags("stencil_1d", 8, 10, 4))
        self.assertEqual(tm.iter_counts(16, 2), [16, 8, 4, 2])
        self.assertEqual(tm.iter_counts(5, 1), [5, 2, 1])


def find_mpi_bin():
    env = os.environ.get("TASKBENCH_MPI_BIN")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    path = os.path.join(target, "release", "taskbench-mpi")
    return path if os.access(path, os.X_OK) else None


class Smoke(unittest.TestCase):
    def test_a_tiny_sweep_through_taskbench_mpi(self):
        binary = find_mpi_bin()
        if binary is None:
            print("skipped the sweep smoke: no taskbench-mpi built "
                  "(cargo build --release -p ferry-taskbench --features mpi)", file=sys.stderr)
            return
        out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"taskbench-metg-{os.getpid()}.json")
        code = tm.main(["--mpi-bin", binary, "--ranks", "1", "--steps", "10", "--reps", "1",
                        "--iter-max", "16", "--iter-min", "4", "--stop-below", "0",
                        "--quiet", "--json", out])
        self.assertEqual(code, 0)
        import json
        with open(out) as fh:
            dump = json.load(fh)
        os.unlink(out)
        self.assertEqual([p["iter"] for p in dump["points"]], [16, 8, 4])
        self.assertTrue(all(p["tasks"] == 10 and p["elapsed"] > 0 for p in dump["points"]))
        self.assertEqual(len(dump["metg"]), 1)
        # Repeated sweeps: every point of each, one METG per sweep.
        code = tm.main(["--mpi-bin", binary, "--ranks", "1", "--steps", "10", "--reps", "1",
                        "--iter-max", "16", "--iter-min", "4", "--stop-below", "0",
                        "--sweeps", "2", "--quiet", "--json", out])
        self.assertEqual(code, 0)
        with open(out) as fh:
            dump = json.load(fh)
        os.unlink(out)
        self.assertEqual([p["iter"] for p in dump["points"]], [16, 8, 4, 16, 8, 4])
        self.assertEqual([m["sweep"] for m in dump["metg"]], [0, 1])


if __name__ == "__main__":
    unittest.main()
