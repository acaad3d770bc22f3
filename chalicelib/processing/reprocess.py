"""Automated reprocessing: re-queue a workspace's failed jobs without the dashboard.

Reached by `python -m cli reprocess` and by a `reprocess` message on the jobs queue (an
EventBridge rule, another service). Each job goes through the manual retry's transaction
(retry.requeue): charged at the workspace's retry price, or paid by the operator
(`free`: the charge and an `operator_grant` entry of the same amount, so the workspace pays
nothing and the attempt says creditsCharged 0). A job that cannot be re-queued is reported and
costs nothing.

One request charges each job at most once: each job's retry writes a record keyed by the
request and the job in its own transaction, so a message SQS delivers twice (or one re-run after
a timeout partway through a large workspace) finds the jobs it already re-queued answered, even
when they have failed again since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.domain import Job, JobStatus, ReprocessRequest, Trigger
from chalicelib.errors import AnswerExistsError, DomainError, http_error_for
from chalicelib.observability import logger
from chalicelib.processing.context import Services
from chalicelib.processing.idempotency import Key
from chalicelib.processing.retry import Retried, requeue

PAGE = 100
# Longer than SQS keeps a message (14 days at most): no redelivery outlives the record.
REQUEST_KEPT = timedelta(days=15)


@dataclass
class ReprocessReport:
    selected: list[str] = field(default_factory=list)  # the failed jobs that matched
    requeued: int = 0
    credits_charged: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # job id -> why it was not re-queued


def reprocess(
    svc: Services,
    request: ReprocessRequest,
    actor: str,
    each: Callable[[int, int], None] | None = None,
) -> ReprocessReport:
    """Re-queue the matching failed jobs; `each(done, total)` after every job (an operator's
    progress bar)."""
    report = ReprocessReport()
    matched = failed_jobs(svc, request)
    for done, job in enumerate(matched, start=1):
        report.selected.append(job.id)
        try:
            _one(svc, request, actor, job, report)
        finally:
            if each is not None:
                each(done, len(matched))
    logger().info(
        "reprocess done",
        extra={
            "workspace_id": request.workspace_id,
            "selected": len(report.selected),
            "requeued": report.requeued,
            "refused": len(report.refused),
            "dry_run": request.dry_run,
        },
    )
    return report


def _one(svc: Services, request: ReprocessRequest, actor: str, job: Job, report: ReprocessReport) -> None:
    if request.dry_run:
        return
    try:
        retried = requeue(svc, job, Trigger.REPROCESS, actor, request.free, _key(request, job))
    except AnswerExistsError:
        report.refused[job.id] = "ALREADY_DONE: this request already re-queued the job"
        return
    except DomainError as error:
        report.refused[job.id] = f"{http_error_for(error).code}: {error.message}"
        return
    report.requeued += 1
    report.credits_charged += retried.credits_charged


def _key(request: ReprocessRequest, job: Job) -> Key[Retried] | None:
    """The record that makes this request charge this job once (None: a request with no id)."""
    if not request.request_id:
        return None
    return Key(
        record_id=f"vidproc.reprocess#{request.request_id}#{job.id}",
        target=job.id,
        expires_in=REQUEST_KEPT,
        render=_rendered,
    )


def _rendered(retried: Retried) -> dict[str, Any]:
    return {"jobId": retried.job.id, "creditsCharged": retried.credits_charged}


def failed_jobs(svc: Services, request: ReprocessRequest) -> list[Job]:
    """The workspace's failed jobs matching the request's error code and time, oldest first."""
    matched: list[Job] = []
    cursor: str | None = None
    while True:
        page = svc.repo.list_jobs(request.workspace_id, JobStatus.FAILED, PAGE, cursor)
        matched.extend(job for job in page.jobs if _matches(job, request))
        cursor = page.cursor
        if not cursor:
            return list(reversed(matched))


def _matches(job: Job, request: ReprocessRequest) -> bool:
    if request.error_code and job.error_code != request.error_code:
        return False
    return not (request.since and job.updated_at < request.since)
