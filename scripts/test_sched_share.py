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

# Two cores. Times are slice ends (s), run times in ms. The workers run
# 10.000-10.004 (cpu0) and 10.001-10.005 (cpu1): 3 ms at once; the shard
# runs after the worker on cpu0; start-up (mpirun) before the window.
TEXT = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
        9.000000 [0000]  mpirun[100]                         0.000      0.000      5.000
       10.004000 [0000]  ferry-r0-w0[201/200]                0.000      0.000      4.000
       10.005000 [0001]  ferry-r1-w0[301/300]                0.000      0.000      4.000
       10.006000 [0000]  ferry-actor-Sha[202/200]            0.000      0.000      2.000
       10.007000 [0001]  <idle>                              0.000      0.000      2.000
       10.009000 [0000]  ferry-r0-w0[201/200]                0.000      0.000      1.000
"""


class Parse(unittest.TestCase):
    def test_each_slice_line_gives_its_start_end_core_and_thread(self):
        s = ss.parse_timehist(TEXT.splitlines())
        self.assertEqual(len(s), 6)  # the three header lines skipped
        start, end, cpu, name = s[1]
        self.assertAlmostEqual(start, 10.000)
        self.assertAlmostEqual(end, 10.004)
        self.assertEqual((cpu, name), (0, "ferry-r0-w0"))
        self.assertEqual(s[4][3], "<idle>")

    def test_a_name_with_spaces_is_kept_whole(self):
        s = ss.parse_timehist(["  5.000000 [0001]  my thread[7/7]  0.000  0.000  1.000"])
        self.assertEqual(s[0][3], "my thread")


class Report(unittest.TestCase):
    def setUp(self):
        self.slices = ss.parse_timehist(TEXT.splitlines())

    def test_the_window_runs_from_the_first_to_the_last_worker_slice(self):
        lo, hi = ss.window(self.slices, ss.WORKERS)
        self.assertAlmostEqual(lo, 10.000)
        self.assertAlmostEqual(hi, 10.009)

    def test_time_outside_the_window_is_not_counted(self):
        per = ss.per_thread(ss.clip(self.slices, 10.000, 10.009))
        self.assertNotIn((0, "mpirun"), per)
        sec, n = per[(0, "ferry-r0-w0")]
        self.assertAlmostEqual(sec, 0.005)
        self.assertEqual(n, 2)

    def test_the_workers_ran_together_only_where_their_slices_overlap(self):
        both = ss.co_running(self.slices, ["ferry-r0-w0", "ferry-r1-w0"])
        self.assertAlmostEqual(both, 0.003)

    def test_a_thread_that_never_ran_never_ran_together(self):
        self.assertEqual(ss.co_running(self.slices, ["ferry-r0-w0", "nobody"]), 0.0)

    def test_the_report_gives_times_per_step(self):
        text = ss.report(self.slices, steps=1000)
        # Window 9 ms over 1000 steps: 9 us a step; r0's worker 5 us.
        self.assertRegex(text, r"^window 9.00 ms +9.000 us/step\n")
        self.assertIn("ferry-r0-w0", text)
        self.assertIn("5.000 us/step", text)
        self.assertIn("ferry-r0-w0 and ferry-r1-w0 at once: 3.00 ms (33% of the window)", text)

    def test_no_matching_thread_says_so(self):
        self.assertIn("nothing to report", ss.report(self.slices, pattern="^absent$"))

    def test_the_command_reads_a_saved_timehist(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(TEXT)
        try:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(ss.main(["--text", f.name, "--steps", "1000"]), 0)
            self.assertIn("at once: 3.00 ms", out.getvalue())
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
