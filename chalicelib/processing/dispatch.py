"""Getting a committed attempt onto the queue, without ever losing a credit or a job.

The order is always: commit the charge and the status flip, then send. If the send fails,
the charge is refunded and the job put back to failed in one transaction (lifecycle `undo`). If
the process dies between commit and send, the job sits in queued with an old `dispatchedAt`, and
the sweeper re-sends it. A second message for the same attempt is a no-op in the worker.

The answer says what is true after a failed send: refunded (QueueSendError, a 503), or queued and
charged when the refund itself could not be written (`Dispatch.DEFERRED`: the job stays queued
and the sweeper sends it). The refund runs under the one contention policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.domain import Attempt, Job, LedgerReason, QueueMessage
from chalicelib.errors import ConflictError, QueueSendError, ServiceUnavailableError, TransactionConflictError
from chalicelib.lifecycle import RecordedError, Release, transitions
from chalicelib.observability import logger
from chalicelib.processing.contention import with_contention
from chalicelib.processing.context import Services

QUEUE_SEND_FAILED = "QUEUE_SEND_FAILED"


class Dispatch(StrEnum):
    """Whether a charged attempt's message is on the queue."""

    SENT = "sent"  # the message is on the queue
    DEFERRED = "deferred"  # the send failed and so did the refund: queued, the sweeper sends it


@dataclass(frozen=True)
class Queued:
    """A job charged and queued, and whether its message is already on the queue."""

    job: Job
    delivery: Dispatch = Dispatch.SENT


def message_for(job: Job) -> QueueMessage:
    return QueueMessage(job_id=job.id, workspace_id=job.workspace_id, attempt=job.attempt, preset=job.preset)


def dispatch(
    svc: Services,
    job: Job,
    attempt: Attempt,
    refund_reason: LedgerReason,
    refund_message: str,
    actor: str,
    release: Release | None = None,
) -> Dispatch:
    """Send the message for the job's new `attempt` (the job as the charge left it).

    On a failed send: undo the queueing (what the attempt charged refunded, the job failed) and
    raise QueueSendError(refund_message); when that cannot be written either, the job stays
    queued (and charged) and the answer is DEFERRED.
    """
    try:
        svc.queue.send(message_for(job))
        return Dispatch.SENT
    except QueueSendError:
        logger().warning(
            "queue send failed; refunding", extra={"job_id": job.id, "workspace_id": job.workspace_id}
        )
    error = RecordedError(refund_message, QUEUE_SEND_FAILED)
    try:
        with_contention(
            lambda: svc.repo.commit(
                transitions.undo(job, attempt, refund_reason, error, actor, svc.clock(), release)
            )
        )
    except (TransactionConflictError, ServiceUnavailableError):
        # Nothing was refunded: the job stays queued and charged, and the sweeper sends it.
        logger().exception("refund failed; leaving the job to the sweeper", extra={"job_id": job.id})
        return Dispatch.DEFERRED
    except ConflictError:
        return Dispatch.SENT  # a worker already claimed this attempt: the message did arrive
    raise QueueSendError(refund_message)
