"""Moving a job along in tests with the lifecycle's own transitions (what the worker commits)."""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.domain import FailureKind, QueueMessage, utcnow
from chalicelib.lifecycle import RecordedError, transitions
from chalicelib.processing.contention import committed
from chalicelib.processing.ports import Repository

NOT_A_VIDEO = "The file is not a readable video"


def claim(
    repo: Repository,
    ref: QueueMessage,
    now: datetime | None = None,
    until: datetime | None = None,
    owner: str = "test-worker",
) -> bool:
    """A worker's claim on the attempt, its lease running until `until` (default 15 minutes)."""
    now = now or utcnow()
    return committed(repo, transitions.claim(ref, now, until or now + timedelta(minutes=15), owner))


def complete(
    repo: Repository, ref: QueueMessage, output_key: str = "out", now: datetime | None = None
) -> bool:
    return committed(repo, transitions.complete(ref, output_key, now or utcnow()))


def fail(
    repo: Repository,
    ref: QueueMessage,
    message: str = NOT_A_VIDEO,
    code: str = "INVALID_VIDEO",
    detail: str | None = None,
    now: datetime | None = None,
    kind: FailureKind = FailureKind.PERMANENT,
) -> bool:
    """The attempt failed for good (for the input by default: nothing refunded)."""
    job = repo.get_job(ref.job_id)
    if job is None or job.attempt != ref.attempt:
        return False
    ended = transitions.fail(job, RecordedError(message, code, detail), kind, now or utcnow())
    return committed(repo, ended)


def claim_and_fail(repo: Repository, ref: QueueMessage, code: str = "INVALID_VIDEO") -> None:
    """A worker took the attempt and the input failed it (a failed job, paid for)."""
    assert claim(repo, ref) and fail(repo, ref, code=code)
