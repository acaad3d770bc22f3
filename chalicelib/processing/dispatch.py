"""Getting a committed attempt onto the queue, without ever losing a credit or a job.

The order is always: commit the charge and the status flip, then send. If the send fails,
the charge is refunded and the job put back to failed in one transaction (choice (a)). If the
process dies between commit and send, the job sits in queued with an old `dispatchedAt`, and
the sweeper re-sends it. A second message for the same attempt is a no-op in the worker.

The answer says what is true after a failed send: refunded (QueueSendError, a 503), or queued and
charged when the refund itself could not be written (`Delivery.DEFERRED`: the job stays queued
and the sweeper sends it). The refund runs under the one contention policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chalicelib.domain import Attempt, Job, LedgerEntry, LedgerReason, QueueMessage, Trigger
from chalicelib.errors import ConflictError, QueueSendError, ServiceUnavailableError, TransactionConflictError
from chalicelib.observability import logger
from chalicelib.processing.contention import with_contention
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Release, RetryPlan

QUEUE_SEND_FAILED = "QUEUE_SEND_FAILED"


class Delivery(StrEnum):
    SENT = "sent"  # the message is on the queue
    DEFERRED = "deferred"  # the send failed and so did the refund: queued, the sweeper sends it


@dataclass(frozen=True)
class Queued:
    """A job charged and queued, and whether its message is already on the queue."""

    job: Job
    delivery: Delivery = Delivery.SENT


def next_attempt(
    job: Job,
    trigger: Trigger,
    reason: LedgerReason,
    actor: str,
    now: datetime,
    price: int = 1,
    granted: bool = False,
) -> RetryPlan:
    """The job's next attempt and the ledger entries that pay for it: none when it is free;
    the charge and an operator's grant of it when `granted` (the workspace pays nothing)."""
    entries: tuple[LedgerEntry, ...] = ()
    if price:
        entries = (
            LedgerEntry(
                workspace_id=job.workspace_id,
                delta=-price,
                reason=reason,
                job_id=job.id,
                actor=actor,
                created_at=now,
            ),
        )
    if price and granted:
        entries += (
            LedgerEntry(
                workspace_id=job.workspace_id,
                delta=price,
                reason=LedgerReason.OPERATOR_GRANT,
                job_id=job.id,
                actor=actor,
                created_at=now,
            ),
        )
    return RetryPlan(
        job=job,
        new_attempt=Attempt(
            job_id=job.id,
            n=job.attempt + 1,
            trigger=trigger,
            credits_charged=0 if granted else price,
            queued_at=now,
            requested_by=actor,
        ),
        entries=entries,
    )


def message_for(job: Job) -> QueueMessage:
    return QueueMessage(job_id=job.id, workspace_id=job.workspace_id, attempt=job.attempt)


def dispatch(
    svc: Services,
    job: Job,
    refund_reason: LedgerReason,
    refund_message: str,
    actor: str,
    charged: int = 1,
    release: Release | None = None,
) -> Delivery:
    """Send the message for the job's current attempt.

    On a failed send: refund what was `charged` (if anything), put the job back to failed and
    raise QueueSendError(refund_message); when that cannot be written either, the job stays
    queued (and charged) and the answer is DEFERRED.
    """
    try:
        svc.queue.send(message_for(job))
        return Delivery.SENT
    except QueueSendError:
        logger().warning(
            "queue send failed; refunding", extra={"job_id": job.id, "workspace_id": job.workspace_id}
        )
    refund = (
        LedgerEntry(
            workspace_id=job.workspace_id, delta=charged, reason=refund_reason, job_id=job.id, actor=actor
        )
        if charged
        else None
    )
    try:
        with_contention(
            lambda: svc.repo.undo_queueing(
                job, refund, refund_message, QUEUE_SEND_FAILED, svc.clock(), release
            )
        )
    except (TransactionConflictError, ServiceUnavailableError):
        # Nothing was refunded: the job stays queued and charged, and the sweeper sends it.
        logger().exception("refund failed; leaving the job to the sweeper", extra={"job_id": job.id})
        return Delivery.DEFERRED
    except ConflictError:
        return Delivery.SENT  # a worker already claimed this attempt: the message did arrive
    raise QueueSendError(refund_message)
