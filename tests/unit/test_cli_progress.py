"""The operator CLI's progress: a bar with counts and the time left on a terminal, plain lines
(no control characters) anywhere else."""

from __future__ import annotations

import io

from cli.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_with_the_count_the_share_the_rate_and_the_time_left() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress("reprocess", 10, stream=out, tty=True, clock=clock)
    for _ in range(3):
        clock.now += 1.0
        bar.advance()
    assert bar.line() == f"reprocess [{'#' * 9}{'-' * 21}] 3/10  30%   1.0/s ETA 0:00:07"
    bar.close()
    frames = out.getvalue().split("\r\x1b[2K")
    assert frames[0] == "" and len(frames) == 5  # drawn after each of 3 items, and once more at the end
    assert frames[-1] == f"reprocess [{'#' * 9}{'-' * 21}] 3/10  30%   1.0/s ETA 0:00:07\n"


def test_elsewhere_a_plain_line_every_tenth_of_the_way_and_one_at_the_end() -> None:
    out = io.StringIO()
    progress = Progress("redrive", 25, stream=out, tty=False, clock=Clock())
    for _ in range(25):
        progress.advance()
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "redrive: 3/25 (12%)"
    assert lines[-1] == "redrive: 25/25 (100%)"
    assert len(lines) == 9  # 3, 6, ... 24 and the end
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_without_a_total_plain_lines_come_every_hundred_and_at_the_end() -> None:
    out = io.StringIO()
    progress = Progress("redrive", None, stream=out, tty=False, clock=Clock())
    for _ in range(250):
        progress.advance()
    progress.close()
    assert out.getvalue().splitlines() == ["redrive: 100", "redrive: 200", "redrive: 250"]


def test_nothing_done_prints_nothing() -> None:
    out = io.StringIO()
    Progress("reprocess", 0, stream=out, tty=False).close()
    assert out.getvalue() == ""
