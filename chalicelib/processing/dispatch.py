"""Getting a committed attempt onto the queue, without ever losing a credit or a job.

The order is always: commit the charge and the status flip, then send. If the send fails,
the charge is refunded and the job put back to failed in one transaction (choice (a)). If the
process dies between commit and send, the job sits in queued with an old `dispatchedAt`, and
the sweeper re-sends it. A second message for the same attempt is a no-op in the worker.
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain import Attempt, Job, LedgerEntry, LedgerReason, QueueMessage, Trigger
from chalicelib.errors import ConflictError, QueueSendError, ServiceUnavailableError, TransactionConflictError
from chalicelib.observability import logger
from chalicelib.processing.context import Services
from chalicelib.processing.ports import RetryPlan

QUEUE_SEND_FAILED = "QUEUE_SEND_FAILED"


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
    svc: Services, job: Job, refund_reason: LedgerReason, refund_message: str, actor: str, charged: int = 1
) -> None:
    """Send the message for the job's current attempt; on failure refund what was `charged` (if
    anything) and raise QueueSendError."""
    try:
        svc.queue.send(message_for(job))
        return
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
        svc.repo.undo_queueing(job, refund, refund_message, QUEUE_SEND_FAILED, svc.clock())
    except TransactionConflictError:
        # Another write held the job: it stays queued and charged, and the sweeper re-sends it.
        logger().warning("refund contended; leaving the job to the sweeper", extra={"job_id": job.id})
        return
    except ConflictError:
        return  # a worker already claimed this attempt: the message did arrive
    except ServiceUnavailableError:
        # The job stays queued and charged; the sweeper re-sends it. Nothing is lost.
        logger().exception("refund failed; leaving the job to the sweeper", extra={"job_id": job.id})
        return
    raise QueueSendError(refund_message)
