"""Cancelling a job: a member stops an upload, a queued or a processing job, and gets back what
it was charged.

ONE transaction (lifecycle `cancel`): the job cancelled, the attempt's outcome, and a
`cancel_refund` ledger entry for what the round charged (its charged attempt, unless that came
back already), guarded by the job's status and attempt as read and the caller's membership. A
worker running the attempt notices at its next pulse (within PULSE_SECONDS, chalicelib.processing
.watch) and kills ffmpeg; segment tasks stop the same way, and a stitch is never claimed.
Cancelled is final: a retry answers the seed's "Only failed jobs can be retried".

Idempotent: cancelling a cancelled job answers again with nothing more refunded. A completed or
failed job cannot be cancelled (400).
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain import Job, JobStatus, Principal
from chalicelib.errors import (
    JobNotCancellableError,
    JobNotFoundError,
    TransactionConflictError,
    TransitionRefusedError,
)
from chalicelib.lifecycle import MOVES, Move, project, transitions
from chalicelib.observability import count, logger
from chalicelib.processing.access import require_member
from chalicelib.processing.autoretry import charged_attempt
from chalicelib.processing.contention import with_contention
from chalicelib.processing.context import Services
from chalicelib.processing.storage import discard_upload, remove, segments_prefix


@dataclass(frozen=True)
class Cancelled:
    job: Job  # as cancelled
    credits_refunded: int  # 0 when it was cancelled before (or nothing was charged)


def cancel_job(
    svc: Services, principal: Principal, job_id: str, workspace_id: str | None = None
) -> Cancelled:
    """A member's cancel (the API, the dashboard)."""
    return with_contention(lambda: _cancel(svc, job_id, workspace_id, principal.user_id, principal))


def cancel_as_operator(svc: Services, job_id: str, actor: str = "cli") -> Cancelled:
    """An operator's cancel (`python -m cli cancel`): no membership to check."""
    return with_contention(lambda: _cancel(svc, job_id, None, actor, None))


def _cancel(
    svc: Services, job_id: str, workspace_id: str | None, actor: str, member: Principal | None
) -> Cancelled:
    for _ in range(3):  # the job moved on between the read and the commit: decide again
        job = svc.repo.get_job(job_id)
        if job is None or (workspace_id and job.workspace_id != workspace_id):
            raise JobNotFoundError()
        if job.status == JobStatus.CANCELLED:
            _require(svc, member, job)
            return Cancelled(job, 0)
        if job.status not in MOVES[Move.CANCEL].sources:
            _require(svc, member, job)
            raise JobNotCancellableError()
        cancel = transitions.cancel(
            job, charged_attempt(svc, job), actor, member.user_id if member else None, svc.clock()
        )
        try:
            svc.repo.commit(cancel)
        except TransitionRefusedError:
            continue
        remove(svc, segments_prefix(job.workspace_id, job.id))  # a long video's parts: nobody's now
        if job.status == JobStatus.UPLOADING:
            discard_upload(svc, job)  # an upload never to be started: its parts (or its object)
        count("JobsCancelled")
        logger().info(
            "job cancelled",
            extra={"job_id": job.id, "workspace_id": job.workspace_id, "refunded": cancel.credits},
        )
        return Cancelled(project(job, cancel), cancel.credits)
    raise TransactionConflictError()


def _require(svc: Services, member: Principal | None, job: Job) -> None:
    if member is not None:
        require_member(svc.repo, member, job)
