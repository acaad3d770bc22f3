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

_PREFIX = {"dynamodb": "ddb", "sqs": "sqs", "s3": "s3"}


@dataclass
class Call:
    op: str
    seconds: float
    started: float  # time.perf_counter() when it was sent


@dataclass
class Recording:
    calls: list[Call] = field(default_factory=list)

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
        return Counter(c.op for c in self.calls)

    def signature(self) -> str:
        return signature(self.counts())


def signature(counts: Counter[str]) -> str:
    """'ddb:GetItem x2, s3:HeadObject, sqs:SendMessage' (DynamoDB first, then S3, then SQS)."""
    order = {"ddb": 0, "s3": 1, "sqs": 2}
    parts = []
    for op, n in sorted(counts.items(), key=lambda kv: (order.get(kv[0].split(":")[0], 9), kv[0])):
        parts.append(op if n == 1 else f"{op} x{n}")
    return ", ".join(parts) or "none"


def _call(c: aws_calls.Call) -> Call:
    return Call(f"{_PREFIX.get(c.service, c.service)}:{c.operation}", c.seconds, c.started)


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
            recording.calls[:] = [_call(c) for c in raw.calls if all_threads or c.thread == me]
