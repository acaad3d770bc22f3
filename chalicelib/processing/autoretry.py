"""What happens after an attempt fails: a free automatic retry, or the end (refunded unless the
input is proven at fault). Used by the worker, the sweeper (an interrupted attempt) and the
worker's last-receive check (a message about to reach the dead-letter queue).

The state change is ONE transaction (lifecycle `reschedule`: the attempt's outcome, the new free
attempt, the job queued again with `nextAttemptAt`), and the delayed message is sent after the
commit. If that send is lost, the job stays queued and the sweeper re-sends it once it is due:
nothing waits on a sleeping Lambda, nothing is lost.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain import Attempt, Job, JobStatus, QueueMessage
from chalicelib.errors import ProcessingError, QueueSendError, RepeatedFailureError
from chalicelib.lifecycle import Lease, Move, RecordedError, Transition, transitions
from chalicelib.lifecycle.pricing import keeps_credit
from chalicelib.observability import count, logger
from chalicelib.processing import failures
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds


class Handled(StrEnum):
    """What one delivery of a job message came to (settling a failure: RETRYING, FAILED or SKIPPED)."""

    COMPLETED = "completed"
    FAILED = "failed"  # final
    RETRYING = "retrying"  # failed for the platform's reasons; a free automatic try is queued
    SKIPPED = "skipped"  # not ours to run or settle: a duplicate, or an attempt that moved on
    PLANNED = "planned"  # a long video: its segment tasks are queued
    ENCODED = "encoded"  # one task of a segmented attempt is done; others remain
    STOPPED = "stopped"  # the job was cancelled (or the attempt moved on) while it ran


def backoff_seconds(svc: Services, tries_so_far: int) -> int:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2^(tries-1)))."""
    settings = svc.settings
    ceiling = min(settings.auto_retry_cap_seconds, settings.auto_retry_base_seconds * 2 ** (tries_so_far - 1))
    return min(MAX_DELAY_SECONDS, int(random.uniform(0, ceiling)))


def settle_failure(
    svc: Services, job: Job, error: ProcessingError, interrupted_at: datetime | None = None
) -> Handled:
    """Record that the job's current attempt failed with `error`, and what comes next.

    `interrupted_at`: the sweeper's time; it settles only an attempt whose worker's lease ran out
    before then, so a live worker that re-claimed it keeps it.
    """
    failure = failures.classify(error)
    tries = job.auto_attempts + 1
    recorded = RecordedError(failure.message, failure.error_code, error.detail or None)
    now = svc.clock()
    lease = Lease(interrupted_at) if interrupted_at else None
    if failures.retry_automatically(failure.kind, tries, svc.settings.max_auto_attempts):
        delay = backoff_seconds(svc, tries)
        move = Move.INTERRUPT if interrupted_at else Move.RESCHEDULE
        again = transitions.reschedule(job, recorded, now, now + timedelta(seconds=delay), lease, move)
        return _retry_later(svc, job, again, recorded, tries, delay)
    charged = None if keeps_credit(failure.kind) else charged_attempt(svc, job)
    move = Move.INTERRUPT if interrupted_at else Move.FAIL
    return _fail(svc, job, transitions.fail(job, recorded, failure.kind, now, charged, lease, move), recorded)


def give_up(svc: Services, ref: QueueMessage, owner: str | None) -> Handled:
    """The message failed its last delivery: fail the attempt it names and refund the charge,
    unless a live worker holds it (`owner`: this delivery's own claim, which it may give up)."""
    job = svc.repo.get_job(ref.job_id)
    if (
        job is None
        or job.attempt != ref.attempt
        or job.status not in (JobStatus.QUEUED, JobStatus.PROCESSING)
    ):
        return Handled.SKIPPED
    error = RepeatedFailureError()
    recorded = RecordedError(error.message, error.code, None)
    now = svc.clock()
    kind = failures.classify(error).kind
    ended = transitions.fail(
        job, recorded, kind, now, charged_attempt(svc, job), Lease(now, owner), Move.GIVE_UP
    )
    return _fail(svc, job, ended, recorded)


def charged_attempt(svc: Services, job: Job) -> Attempt | None:
    """The round's charged attempt, whose credit ending the round may give back."""
    return svc.repo.get_attempt(job.id, job.charged_attempt) if job.charged_attempt else None


def _retry_later(
    svc: Services, job: Job, again: Transition, error: RecordedError, tries: int, delay: int
) -> Handled:
    if not committed(svc.repo, again):
        return Handled.SKIPPED
    count("JobsAutoRetried", errorCode=error.code)
    logger().warning(
        "attempt failed; retrying automatically",
        extra={**_keys(job), "error_code": error.code, "try": tries + 1, "delay_seconds": delay},
    )
    try:
        again_ref = QueueMessage(job.id, job.workspace_id, job.attempt + 1, preset=job.preset)
        svc.queue.send(again_ref, delay_seconds=delay)
    except QueueSendError:
        # Committed: the job is queued and due at `due`; the sweeper re-sends it from then on.
        logger().warning("could not send the automatic retry; the sweeper will", extra=_keys(job))
    return Handled.RETRYING


def _fail(svc: Services, job: Job, ended: Transition, error: RecordedError) -> Handled:
    if not committed(svc.repo, ended):
        return Handled.SKIPPED
    refunded = ended.credits
    count("JobsFailed", errorCode=error.code)
    if refunded:
        count("CreditsRefunded", refunded)
    logger().warning(
        "job failed",
        extra={**_keys(job), "error_code": error.code, "error": error.message, "refunded": bool(refunded)},
    )
    return Handled.FAILED


def _keys(job: Job) -> dict[str, object]:
    return {"job_id": job.id, "workspace_id": job.workspace_id, "attempt": job.attempt}
