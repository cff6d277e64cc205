"""Progress lines of long phases: count, elapsed time and ETA, at most every EVERY_S seconds."""

import logging

from experiments import progress


def test_progress_line_counts_and_estimates_the_rest():
  assert progress.progress_line("decoding test sequences", 120, 480, 25.0) == \
      "decoding test sequences: 120/480, 25 s, ETA 75 s"
  assert progress.progress_line("x", 0, 10, 3.0) == "x: 0/10, 3 s, ETA unknown"


def test_lines_come_at_most_every_interval_and_once_at_the_end(caplog):
  now = [0.0]
  report = progress.Progress("work", 4, every_s=10.0, clock=lambda: now[0])
  with caplog.at_level(logging.INFO, logger="absl"):
    for done, seconds in [(1, 4.0), (2, 11.0), (3, 15.0), (4, 18.0)]:
      now[0] = seconds
      report.update(done)
  assert [r.getMessage() for r in caplog.records] == ["work: 2/4, 11 s, ETA 11 s", "work: 4/4, 18 s, ETA 0 s"]


def test_a_short_phase_logs_nothing(caplog):
  report = progress.Progress("work", 2, every_s=10.0, clock=lambda: 1.0)
  with caplog.at_level(logging.INFO, logger="absl"):
    report.update(1)
    report.update(2)
  assert not caplog.records
