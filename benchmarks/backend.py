"""Counting and timing the backend round trips made in THIS process (DynamoDB, S3, SQS).

Every AWS SDK call here (boto3 and pynamodb alike) ends in botocore's URLLib3Session.send, so
wrapping it sees each HTTP round trip with its operation: `X-Amz-Target` for DynamoDB and SQS
(JSON protocol), the method for S3. The API server is another process: its calls are counted by
running the same route code in-process (benchmarks.calls).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.httpsession import URLLib3Session

_S3_METHODS = {
    "HEAD": "HeadObject",
    "GET": "GetObject",
    "PUT": "PutObject",
    "POST": "Post",
    "DELETE": "Delete",
}


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


class _Recorder:
    def __init__(self) -> None:
        self.local = threading.local()
        self.everywhere: Recording | None = None
        self.lock = threading.Lock()
        self.original: Any = None
        self.ddb_port: int | None = None


_recorder = _Recorder()


def _op(request: Any) -> str:
    target = request.headers.get("X-Amz-Target")
    if isinstance(target, bytes):
        target = target.decode()
    port = urlsplit(request.url).port
    if target:
        service, _, name = str(target).partition(".")
        if service.startswith("DynamoDB"):
            return f"ddb:{name}"
        if service.startswith("AmazonSQS"):
            return f"sqs:{name}"
        return f"{service}:{name}"
    if port is not None and port == _recorder.ddb_port:
        return "ddb:?"
    return f"s3:{_S3_METHODS.get(request.method, request.method)}"


def _send(self: URLLib3Session, request: Any) -> Any:
    started = time.perf_counter()
    try:
        return _recorder.original(self, request)
    finally:
        elapsed = time.perf_counter() - started
        targets = [getattr(_recorder.local, "recording", None), _recorder.everywhere]
        for recording in targets:
            if recording is not None:
                with _recorder.lock:
                    recording.calls.append(Call(_op(request), elapsed, started))


def install(ddb_url: str) -> None:
    """Wrap botocore's HTTP send (idempotent). Costs one perf_counter pair per call when idle."""
    _recorder.ddb_port = urlsplit(ddb_url).port
    if _recorder.original is None:
        _recorder.original = URLLib3Session.send
        URLLib3Session.send = _send


@contextmanager
def record(all_threads: bool = False) -> Iterator[Recording]:
    """Record the round trips made in this thread (or in every thread) inside the block."""
    if _recorder.original is None:
        raise RuntimeError("benchmarks.backend.install() first")
    recording = Recording()
    if all_threads:
        _recorder.everywhere = recording
    else:
        _recorder.local.recording = recording
    try:
        yield recording
    finally:
        if all_threads:
            _recorder.everywhere = None
        else:
            _recorder.local.recording = None
