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
- The upload of a job that completed or was cancelled is deleted once its workspace's retention
  ran out (chalicelib.processing.retention); the job and its output stay.
- A multipart upload still unfinished at its `sweepAt` (UPLOAD_MULTIPART_EXPIRY_SECONDS after it
  began) is aborted at R2 and its job failed with UPLOAD_EXPIRED (chalicelib.uploads): nothing
  was charged, and the job says why it will never run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain import Job, JobStatus
from chalicelib.errors import QueueSendError, WorkerInterruptedError
from chalicelib.lifecycle import transitions
from chalicelib.observability import count, logger
from chalicelib.processing import retention
from chalicelib.processing.autoretry import Handled, settle_failure
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import message_for
from chalicelib.uploads import service as uploads

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
    originals_deleted: int = 0
    uploads_expired: int = 0


def sweep(svc: Services) -> SweepReport:
    """One pass. A failure on one job is logged and the pass goes on: every due job and every
    expired lease is looked at."""
    now = svc.clock()
    cutoff = now - timedelta(seconds=svc.settings.sweeper_requeue_after_seconds)
    due = svc.repo.jobs_to_sweep(JobStatus.QUEUED, cutoff, BATCH)
    requeued = sum(_each(due, lambda job: _resend(svc, job)))
    expired = svc.repo.jobs_to_sweep(JobStatus.PROCESSING, now, BATCH)
    interrupted = sum(_each(expired, lambda job: _interrupt(svc, job, now)))
    unfinished = svc.repo.jobs_to_sweep(JobStatus.UPLOADING, now, BATCH)
    uploads_expired = sum(_each(unfinished, lambda job: uploads.expire(svc, job, now)))
    finished, workspaces = retention.due_originals(svc, now, BATCH)

    def expire(job: Job) -> bool:
        return retention.expire_original(svc, job, workspaces.get(job.workspace_id), now)

    deleted = sum(_each(finished, expire))
    if requeued:
        count("JobsRequeued", requeued)
    if deleted:
        count("OriginalsDeleted", deleted)
    return SweepReport(
        requeued=requeued, interrupted=interrupted, uploads_expired=uploads_expired, originals_deleted=deleted
    )


def _each(found: list[Job], action: Callable[[Job], bool]) -> list[bool]:
    done = []
    for job in found:
        try:
            done.append(action(job))
        except Exception:  # one job's failure must not leave the others stuck
            logger().exception("sweeper could not handle a job", extra={"job_id": job.id})
    return done


def _resend(svc: Services, job: Job) -> bool:
    try:
        svc.queue.send(message_for(job))
    except QueueSendError:
        logger().warning("sweeper could not re-send", extra={"job_id": job.id})
        return False
    if not committed(svc.repo, transitions.dispatched(job, svc.clock(), backoff(svc, job.resends + 1))):
        return False
    logger().info("re-sent a queued job", extra={"job_id": job.id, "workspace_id": job.workspace_id})
    return True


def _interrupt(svc: Services, job: Job, now: datetime) -> bool:
    if settle_failure(svc, job, WorkerInterruptedError(), interrupted_at=now) == Handled.SKIPPED:
        return False
    count("JobsInterrupted")
    return True
