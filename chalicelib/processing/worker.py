"""One delivery of a job message: claim the attempt, run it the one way it needs, record the outcome.

Claiming is a conditional transaction keyed by the attempt (queued → processing). A duplicate
delivery of an attempt that is running or finished claims nothing and does nothing: never a
second transcode, never a second charge. A claim whose lease ran out (the worker died) can be
taken again by a redelivery. The strategy is chosen once, after the claim: a video longer than
the threshold goes in segments (chalicelib.processing.segmented: plan now, tasks later), any
other in one pass (chalicelib.processing.single_pass). Both run under the watch
(chalicelib.processing.watch), which keeps the claim alive and stops the work when the job is
cancelled. A failure is settled by autoretry: a free automatic try, or the end.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from chalicelib.domain import QueueMessage, new_id
from chalicelib.errors import (
    InternalProcessingError,
    ProcessingError,
    QueueSendError,
    ServiceUnavailableError,
    StoppedError,
)
from chalicelib.lifecycle import transitions
from chalicelib.observability import count, logger
from chalicelib.processing import segmented, single_pass
from chalicelib.processing.autoretry import Handled, give_up, settle_failure
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.storage import discard_if_cancelled, media_prefix, opened_input
from chalicelib.processing.watch import Receipt, watching

__all__ = ["Handled", "HandedBack", "Receipt", "deliver", "process", "reject_malformed"]


def has_time_for_a_transcode(svc: Services, remaining_millis: int) -> bool:
    """Whether an invocation with this much time left can finish a transcode (plus margin).

    A record claimed too late would be killed with the invocation: it is handed back instead.
    """
    settings = svc.settings
    needed = settings.transcode_timeout_seconds + settings.invocation_margin_seconds
    return remaining_millis >= needed * 1000


class HandedBack(Exception):
    """Not claimed: the invocation could not finish it. SQS redelivers it to another invocation."""


def deliver(svc: Services, ref: QueueMessage, receipt: Receipt, remaining_millis: int | None) -> Handled:
    """One delivery of a job message, as the SQS-triggered worker gets it.

    Raises HandedBack when the invocation has no time for it, and re-raises when the outcome
    could not be recorded; on the last delivery before the DLQ (MAX_RECEIVE_COUNT) the job is
    given up first (failed, its credit refunded) unless another worker's live claim holds it.
    """
    if remaining_millis is not None and not has_time_for_a_transcode(svc, remaining_millis):
        hand_back(svc, ref, receipt, remaining_millis)
    owner = new_id()  # this delivery's claim
    try:
        return process(svc, ref, receipt, owner)
    except Exception:
        if receipt.receive_count >= svc.settings.max_receive_count:
            logger().exception("last delivery failed; giving the job up", extra=_keys(ref))
            give_up(svc, ref, owner)
        raise  # the message stays (or goes to the DLQ) for an operator to see


def hand_back(svc: Services, ref: QueueMessage, receipt: Receipt, remaining_millis: int) -> None:
    logger().warning(
        "too little invocation time left; handing the record back",
        extra={**_keys(ref), "remaining_ms": remaining_millis},
    )
    count("RecordsHandedBack")
    with contextlib.suppress(QueueSendError):  # come back now, not after the visibility timeout
        svc.queue.extend_visibility(receipt.receipt_handle, 0)
    raise HandedBack(ref.job_id)


def reject_malformed(svc: Services, body: str, reason: str) -> None:
    """A body that is not one of ours can never succeed: to the DLQ at once, nothing charged.
    Raises QueueSendError if even that fails (SQS then redelivers it, and in the end moves it)."""
    svc.queue.dead_letter(body, reason)
    count("MessagesDeadLettered")
    logger().warning("malformed message moved to the DLQ", extra={"reason": reason})


def process(
    svc: Services, ref: QueueMessage, receipt: Receipt | None = None, owner: str | None = None
) -> Handled:
    """Run the attempt (or the segment task) the message names; `owner` names this delivery's claim.

    Raises only when the outcome could not be recorded, or (TaskRetryError) when a segment task
    failed for a platform reason and SQS should deliver it again.
    """
    if ref.task is not None:
        return segmented.run_task(svc, ref, receipt)
    log = logger()
    now = svc.clock()
    lease = now + timedelta(seconds=svc.settings.claim_lease_seconds)
    if not committed(svc.repo, transitions.claim(ref, now, lease, owner or new_id())):
        log.info("attempt not claimable; skipping", extra=_keys(ref))
        return Handled.SKIPPED
    log.info("attempt claimed", extra=_keys(ref))
    try:
        with watching(svc, ref, receipt) as watch, opened_input(svc, ref) as upload:
            if segmented.plan_if_long(svc, ref, watch, upload):
                return Handled.PLANNED
            key, facts = single_pass.transcode_and_store(svc, ref, watch, upload)
    except StoppedError:
        log.info("attempt stopped: the job was cancelled or moved on", extra=_keys(ref))
        return Handled.STOPPED
    except ProcessingError as error:
        return _record_failure(svc, ref, error)
    except ServiceUnavailableError as exc:
        return _record_failure(svc, ref, InternalProcessingError(detail=repr(exc)))
    except Exception as exc:  # anything else (a full disk, a bug): nobody can tell whose fault
        log.exception("unexpected error in the attempt", extra=_keys(ref))
        return _record_failure(svc, ref, ProcessingError(detail=repr(exc)))
    if not committed(svc.repo, transitions.complete(ref, key, svc.clock(), facts)):
        log.warning("attempt finished but no longer ours", extra=_keys(ref))
        media = media_prefix(ref.workspace_id, ref.job_id, ref.attempt)
        return Handled.STOPPED if discard_if_cancelled(svc, ref, key, media) else Handled.SKIPPED
    count("JobsCompleted")
    log.info("job completed", extra={**_keys(ref), "output_key": key})
    return Handled.COMPLETED


def _record_failure(svc: Services, ref: QueueMessage, error: ProcessingError) -> Handled:
    job = svc.repo.get_job(ref.job_id)  # only a failure reads the job: its retry history decides
    if job is None or job.attempt != ref.attempt:
        return Handled.SKIPPED
    return settle_failure(svc, job, error)


def _keys(ref: QueueMessage) -> dict[str, object]:
    return {"job_id": ref.job_id, "workspace_id": ref.workspace_id, "attempt": ref.attempt}
