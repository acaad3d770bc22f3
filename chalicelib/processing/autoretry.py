"""What happens after an attempt fails: a free automatic retry, or the end (with a refund when
the platform was at fault). Used by the worker, the sweeper (an interrupted attempt) and the
worker's last-receive check (a message about to reach the dead-letter queue).

The state change is ONE transaction (the attempt's outcome, the new free attempt, the job queued
again with `nextAttemptAt`), and the delayed message is sent after the commit. If that send is
lost, the job stays queued and the sweeper re-sends it once it is due: nothing waits on a
sleeping Lambda, nothing is lost.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import StrEnum

from chalicelib.domain import Attempt, Job, LedgerEntry, LedgerReason, QueueMessage, Trigger
from chalicelib.errors import ProcessingError, QueueSendError, RepeatedFailureError
from chalicelib.observability import count, logger
from chalicelib.processing import failures
from chalicelib.processing.context import Services
from chalicelib.processing.ports import RecordedError, Refund

SYSTEM = "system"
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds


class Settled(StrEnum):
    RETRYING = "retrying"  # a free automatic try is queued
    FAILED = "failed"  # final
    SKIPPED = "skipped"  # the attempt was no longer ours to settle


def backoff_seconds(svc: Services, tries_so_far: int) -> int:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2^(tries-1)))."""
    settings = svc.settings
    ceiling = min(settings.auto_retry_cap_seconds, settings.auto_retry_base_seconds * 2 ** (tries_so_far - 1))
    return min(MAX_DELAY_SECONDS, int(random.uniform(0, ceiling)))


def settle_failure(
    svc: Services, job: Job, error: ProcessingError, lease_expired_before: datetime | None = None
) -> Settled:
    """Record that the job's current attempt failed with `error`, and what comes next."""
    failure = failures.classify(error)
    tries = job.auto_attempts + 1
    ref = QueueMessage(job.id, job.workspace_id, job.attempt)
    recorded = RecordedError(failure.message, failure.error_code, error.detail or None)
    if failures.retry_automatically(failure.kind, tries, svc.settings.max_auto_attempts):
        return _retry_later(svc, job, recorded, tries, lease_expired_before)
    refund = refund_for(svc, job) if failures.refunds(failure.kind) else None
    return _fail(svc, ref, recorded, refund, lease_expired_before)


def give_up(svc: Services, ref: QueueMessage) -> Settled:
    """The message failed its last delivery: fail the attempt it names and refund the charge."""
    job = svc.repo.get_job(ref.job_id)
    if job is None or job.attempt != ref.attempt or job.status.value not in ("queued", "processing"):
        return Settled.SKIPPED
    error = RepeatedFailureError()
    recorded = RecordedError(error.message, error.code, None)
    return _fail(svc, ref, recorded, refund_for(svc, job), None)


def refund_for(svc: Services, job: Job) -> Refund | None:
    """The credit the job's charged attempt took, to give back; None when it was free."""
    charged = svc.repo.get_attempt(job.id, job.charged_attempt) if job.charged_attempt else None
    if charged is None or charged.credits_charged <= 0 or charged.refunded:
        return None
    entry = LedgerEntry(
        workspace_id=job.workspace_id,
        delta=charged.credits_charged,
        reason=LedgerReason.SYSTEM_FAILURE_REFUND,
        job_id=job.id,
        actor=SYSTEM,
        created_at=svc.clock(),
    )
    return Refund(entry=entry, attempt=charged.n)


def _retry_later(
    svc: Services, job: Job, error: RecordedError, tries: int, lease_expired_before: datetime | None
) -> Settled:
    now = svc.clock()
    delay = backoff_seconds(svc, tries)
    retry = Attempt(
        job_id=job.id,
        n=job.attempt + 1,
        trigger=Trigger.AUTO,
        credits_charged=0,
        queued_at=now,
        requested_by=SYSTEM,
    )
    ref = QueueMessage(job.id, job.workspace_id, job.attempt)
    due = now + timedelta(seconds=delay)
    if not svc.repo.reschedule(ref, error, retry, due, now, lease_expired_before):
        return Settled.SKIPPED
    count("JobsAutoRetried", errorCode=error.code)
    logger().warning(
        "attempt failed; retrying automatically",
        extra={**_keys(ref), "error_code": error.code, "try": tries + 1, "delay_seconds": delay},
    )
    try:
        svc.queue.send(QueueMessage(job.id, job.workspace_id, retry.n), delay_seconds=delay)
    except QueueSendError:
        # Committed: the job is queued and due at `due`; the sweeper re-sends it from then on.
        logger().warning("could not send the automatic retry; the sweeper will", extra=_keys(ref))
    return Settled.RETRYING


def _fail(
    svc: Services,
    ref: QueueMessage,
    error: RecordedError,
    refund: Refund | None,
    lease_expired_before: datetime | None,
) -> Settled:
    if not svc.repo.fail(
        ref, error.message, error.code, error.detail, svc.clock(), refund, lease_expired_before
    ):
        return Settled.SKIPPED
    count("JobsFailed", errorCode=error.code)
    if refund is not None:
        count("CreditsRefunded", refund.entry.delta)
    logger().warning(
        "job failed",
        extra={
            **_keys(ref),
            "error_code": error.code,
            "error": error.message,
            "refunded": refund is not None,
        },
    )
    return Settled.FAILED


def _keys(ref: QueueMessage) -> dict[str, object]:
    return {"job_id": ref.job_id, "workspace_id": ref.workspace_id, "attempt": ref.attempt}
