"""The sweeper: a scheduled pass that leaves no job stuck.

- A job queued longer than `sweeper_requeue_after_seconds` without being claimed (the process
  died between commit and send, or the message was lost) gets its message sent again. The
  worker treats a second message for the same attempt as a no-op, so this is always safe; the
  wait doubles after each re-send, so a job behind a long backlog is not flooded.
- A job whose worker claim (lease) ran out without an outcome was interrupted: that is the
  platform's fault, so it becomes a free automatic retry (or, after the last try, a failure with
  the credit refunded). The write is conditional on the lease still being expired, so a live
  worker that re-claimed the attempt in the meantime keeps it.
- An automatic retry waiting for its `nextAttemptAt` is not due (its `sweepAt` is that time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chalicelib.errors import QueueSendError, WorkerInterruptedError
from chalicelib.observability import count, logger
from chalicelib.processing.autoretry import Settled, settle_failure
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import message_for

BATCH = 100
MAX_WAIT = timedelta(hours=1)


def backoff(svc: Services, resends: int) -> timedelta:
    """How much longer than the usual wait to hold a job after its n-th re-send.

    The waits double (2, 4, 8 ... times `sweeper_requeue_after_seconds`, at most an hour): a job
    that waits behind a long backlog is not given a new duplicate message every pass.
    """
    base = timedelta(seconds=svc.settings.sweeper_requeue_after_seconds)
    return min(base * 2 ** min(resends, 20), max(MAX_WAIT, base)) - base


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    interrupted: int


def sweep(svc: Services) -> SweepReport:
    now = svc.clock()
    cutoff = now - timedelta(seconds=svc.settings.sweeper_requeue_after_seconds)
    requeued = 0
    for job in svc.repo.queued_not_dispatched_since(cutoff, BATCH):
        try:
            svc.queue.send(message_for(job))
        except QueueSendError:
            logger().warning("sweeper could not re-send", extra={"job_id": job.id})
            continue
        if svc.repo.mark_dispatched(job.id, job.attempt, svc.clock(), backoff(svc, job.resends + 1)):
            requeued += 1
            logger().info("re-sent a queued job", extra={"job_id": job.id, "workspace_id": job.workspace_id})
    interrupted = 0
    for job in svc.repo.processing_lease_expired(now, BATCH):
        if settle_failure(svc, job, WorkerInterruptedError(), lease_expired_before=now) != Settled.SKIPPED:
            interrupted += 1
            count("JobsInterrupted")
    if requeued:
        count("JobsRequeued", requeued)
    return SweepReport(requeued=requeued, interrupted=interrupted)
