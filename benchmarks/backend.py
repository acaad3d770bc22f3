"""Counting and timing the backend round trips made in THIS process (DynamoDB, S3, SQS).

The calls are seen through botocore's event hooks (tests/support/aws_calls.py, the one place
that counts calls for the tests and the benchmarks): every client, boto3's and pynamodb's alike,
reports each operation it makes. The API server is another process: its calls are counted by
running the same route code in-process (benchmarks.calls).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from chalicelib import bootstrap
from tests.support import aws_calls


@dataclass
class Recording:
    calls: list[aws_calls.Call] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """The summed duration of the calls (more than the time they took when they overlap)."""
        return sum(c.seconds for c in self.calls)

    @property
    def wall_seconds(self) -> float:
        """The time during which at least one call was in flight."""
        total, end = 0.0, float("-inf")
        for c in sorted(self.calls, key=lambda c: c.started):
            stop = c.started + c.seconds
            if c.started >= end:
                total += c.seconds
            elif stop > end:
                total += stop - end
            end = max(end, stop)
        return total

    def counts(self) -> Counter[str]:
        return aws_calls.round_trips(self.calls)

    def signature(self) -> str:
        return aws_calls.shape(self.counts())


_installed = False


def install(ddb_url: str = "") -> None:
    """Hook botocore's clients (idempotent). The clients built before are forgotten, so that the
    ones built from now on report their calls."""
    global _installed
    if not _installed:
        aws_calls.install()
        bootstrap.reset()
        _installed = True


@contextmanager
def record(all_threads: bool = False) -> Iterator[Recording]:
    """Record the round trips made in this thread (or in every thread) inside the block."""
    if not _installed:
        raise RuntimeError("benchmarks.backend.install() first")
    recording = Recording()
    me = threading.get_ident()
    with aws_calls.record() as raw:
        try:
            yield recording
        finally:
            recording.calls[:] = [c for c in raw.calls if all_threads or c.thread == me]
