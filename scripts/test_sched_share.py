#!/usr/bin/env python3
"""Checks scripts/sched_share.py on a fixed `perf sched timehist` text.

    python3 scripts/test_sched_share.py
"""

import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sched_share as ss  # noqa: E402

# Two cores; times are slice ends (s), run times in ms. The window is the
# workers' 10.000-10.009. mpirun ran before it on cpu0 and across its start
# on cpu1 (9.999-10.001, 1 ms of it inside). The two progress threads share
# a name. `pool[1]` has brackets in its name, ran too briefly for timehist
# (0.000 ms) and its line has a call chain after the run time.
TEXT = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
        9.000000 [0000]  mpirun[100]                         0.000      0.000      5.000
       10.001000 [0001]  mpirun[100]                         0.000      0.000      2.000
       10.004000 [0000]  ferry-r0-w0[201/200]                0.000      0.000      4.000
       10.005000 [0001]  ferry-r1-w0[301/300]                0.000      0.000      4.000
       10.006000 [0000]  ferry-actor-Sha[202/200]            0.000      0.000      2.000
       10.006500 [0001]  <idle>                              0.000      0.000      1.500
       10.007500 [0001]  ferry-mpi-progr[303/300]            0.000      0.000      1.000
       10.007500 [0001]  pool[1][31/30]                      0.000      0.000      0.000   futex_wait <- syscall
       10.008000 [0000]  ferry-mpi-progr[203/200]            0.000      0.000      2.000
       10.009000 [0000]  ferry-r0-w0[201/200]                0.000      0.000      1.000
Samples do not have callchains.
"""


def run_main(argv):
    """`main(argv)`'s exit status, with what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = ss.main(argv)
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


class Parse(unittest.TestCase):
    def setUp(self):
        self.slices = ss.parse_timehist(TEXT.splitlines())

    def test_each_slice_line_gives_its_start_end_core_thread_and_id(self):
        self.assertEqual(len(self.slices), 10)  # headers and the note skipped
        start, end, cpu, name, tid = self.slices[2]
        self.assertAlmostEqual(start, 10.000)
        self.assertAlmostEqual(end, 10.004)
        self.assertEqual((cpu, name, tid), (0, "ferry-r0-w0", 201))

    def test_idle_has_no_thread_id(self):
        self.assertEqual(self.slices[5][3:], ("<idle>", None))

    def test_a_line_with_columns_after_the_run_time_is_read(self):
        s = self.slices[7]
        self.assertEqual(s[3:], ("pool[1]", 31))
        self.assertAlmostEqual(s[0], s[1])

    def test_a_name_with_spaces_is_kept_whole(self):
        s = ss.parse_timehist(["  5.000000 [0001]  my thread[7/7]  0.000  0.000  1.000"])
        self.assertEqual(s[0][3:], ("my thread", 7))


class Report(unittest.TestCase):
    def setUp(self):
        self.slices = ss.parse_timehist(TEXT.splitlines())
        self.rx = ss.re.compile(ss.WORKERS)

    def test_the_window_runs_from_the_first_to_the_last_worker_slice(self):
        lo, hi = ss.window(self.slices, self.rx)
        self.assertAlmostEqual(lo, 10.000)
        self.assertAlmostEqual(hi, 10.009)

    def test_only_what_ran_inside_the_window_counts(self):
        per = ss.per_thread(ss.clip(self.slices, 10.000, 10.009))
        self.assertNotIn((0, "mpirun", 100), per)
        sec, n = per[(1, "mpirun", 100)]
        self.assertAlmostEqual(sec, 0.001)  # 9.999-10.001, cut at 10.000
        self.assertEqual(n, 1)
        sec, n = per[(0, "ferry-r0-w0", 201)]
        self.assertAlmostEqual(sec, 0.005)
        self.assertEqual(n, 2)

    def test_a_slice_too_short_to_measure_still_counts_as_a_slice(self):
        per = ss.per_thread(ss.clip(self.slices, 10.000, 10.009))
        self.assertEqual(per[(1, "pool[1]", 31)], (0.0, 1))

    def test_threads_of_one_name_keep_rows_of_their_own(self):
        per = ss.per_thread(ss.clip(self.slices, 10.000, 10.009))
        self.assertAlmostEqual(per[(0, "ferry-mpi-progr", 203)][0], 0.002)
        self.assertAlmostEqual(per[(1, "ferry-mpi-progr", 303)][0], 0.001)

    def test_overlapping_runs_merge(self):
        self.assertEqual(ss.union([(2, 4), (1, 3), (5, 6)]), [(1, 4), (5, 6)])

    def test_the_workers_ran_together_only_where_their_slices_overlap(self):
        both = ss.co_running(self.slices, ["ferry-r0-w0", "ferry-r1-w0"])
        self.assertAlmostEqual(both, 0.003)

    def test_three_names_run_together_only_where_all_three_do(self):
        # The workers overlap 10.001-10.004; mpirun ran until 10.001 only.
        both = ss.co_running(self.slices, ["ferry-r0-w0", "ferry-r1-w0", "mpirun"])
        self.assertEqual(both, 0.0)

    def test_every_thread_of_a_name_counts_towards_running_together(self):
        # The progress threads ran 10.006-10.008 between them; idle on cpu1
        # until 10.0065.
        both = ss.co_running(self.slices, ["ferry-mpi-progr", "<idle>"])
        self.assertAlmostEqual(both, 0.0005)

    def test_a_thread_that_never_ran_never_ran_together(self):
        self.assertEqual(ss.co_running(self.slices, ["ferry-r0-w0", "nobody"]), 0.0)

    def test_the_report_gives_times_per_step(self):
        text = ss.report(self.slices, steps=1000)
        self.assertRegex(text, r"^window 9.00 ms +9.000 us/step\n")
        self.assertRegex(text, r"\ncpu0 +ferry-r0-w0\[201\] +5.00 ms +2 slices, mean +2500.0 us +5.000 us/step\n")
        self.assertIn("ferry-r0-w0 and ferry-r1-w0 at once: 3.00 ms (33% of the window)", text)

    def test_pair_names_the_threads_to_look_at(self):
        text = ss.report(self.slices, pair=["ferry-r1-w0", "ferry-actor-Sha"])
        # cpu1's worker 10.001-10.005, cpu0's shard 10.004-10.006.
        self.assertIn("ferry-r1-w0 and ferry-actor-Sha at once: 1.00 ms (11% of the window)", text)

    def test_top_limits_the_rows(self):
        rows = [l for l in ss.report(self.slices, top=2).splitlines() if l.startswith("cpu")]
        self.assertEqual(len(rows), 2)

    def test_a_window_of_no_length_gives_no_share(self):
        slices = [(1.0, 1.0, 0, "ferry-r0-w0", 1), (1.0, 1.0, 1, "ferry-r1-w0", 2)]
        text = ss.report(slices, steps=10)
        self.assertIn("at once: 0.00 ms    0.000 us/step", text)
        self.assertNotIn("% of the window", text)

    def test_no_matching_thread_says_so(self):
        self.assertIn("nothing to report", ss.report(self.slices, pattern="^absent$"))


class Command(unittest.TestCase):
    def setUp(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(TEXT)
        self.path = f.name

    def tearDown(self):
        os.unlink(self.path)

    def test_it_reads_a_saved_timehist(self):
        status, out, _ = run_main(["--text", self.path, "--steps", "1000"])
        self.assertEqual(status, 0)
        self.assertIn("at once: 3.00 ms", out)

    def test_it_needs_exactly_one_input(self):
        self.assertEqual(run_main([])[0], 2)
        self.assertEqual(run_main(["some.data", "--text", self.path])[0], 2)

    def test_steps_and_top_must_be_positive(self):
        self.assertEqual(run_main(["--text", self.path, "--steps", "0"])[0], 2)
        self.assertEqual(run_main(["--text", self.path, "--top", "-1"])[0], 2)

    def test_a_missing_file_is_an_error_not_a_traceback(self):
        status, _, err = run_main(["--text", self.path + ".absent"])
        self.assertEqual(status, 1)
        self.assertIn("sched_share:", err)

    def test_input_that_is_not_a_timehist_is_refused(self):
        with open(self.path, "w") as f:
            f.write("this is not perf output\n")
        status, _, err = run_main(["--text", self.path])
        self.assertEqual(status, 1)
        self.assertIn("no line of the input", err)


if __name__ == "__main__":
    unittest.main()
