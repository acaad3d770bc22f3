"""Progress of a long operator command (`reprocess`, `dlq redrive`) on stderr.

On a terminal: one line redrawn in place, a bar with the count, the share, the rate and the time
left. Anywhere else (a pipe, a log file, CI): a plain line at every tenth of the way (every
`PLAIN_EVERY` items when the total is unknown) and one at the end, with no control characters.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 30
PLAIN_EVERY = 100  # items between plain lines when the total is unknown


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.done = 0
        self._next_plain = self._step()
        self._last_plain = -1

    def _step(self) -> int:
        if self.total:
            return max(1, -(-self.total // 10))  # a tenth, rounded up
        return PLAIN_EVERY

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.tty:
            self._draw()
        elif self.done >= self._next_plain:
            self._plain()
            while self._next_plain <= self.done:
                self._next_plain += self._step()

    def close(self) -> None:
        """The last word: the bar's final state, or the final plain line."""
        if self.tty:
            self._draw()
            self.stream.write("\n")
        elif self.done and self.done != self._last_plain:
            self._plain()
        self.stream.flush()

    def _rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The terminal's line: `label [####----] 14/30  47%  3.1/s  ETA 0:00:05`."""
        rate = self._rate()
        if self.total:
            share = min(1.0, self.done / self.total)
            filled = int(WIDTH * share)
            bar = "#" * filled + "-" * (WIDTH - filled)
            eta = _clock_text((self.total - self.done) / rate) if rate else "?"
            return f"{self.label} [{bar}] {self.done}/{self.total} {share:4.0%} {rate:5.1f}/s ETA {eta}"
        return f"{self.label} {self.done} done {rate:5.1f}/s"

    def _draw(self) -> None:
        self.stream.write("\r\x1b[2K" + self.line())
        self.stream.flush()

    def _plain(self) -> None:
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        of = f"/{self.total}" if self.total else ""
        self.stream.write(f"{self.label}: {self.done}{of}{share}\n")
        self.stream.flush()
        self._last_plain = self.done
