"""Automated reprocessing: re-queue a workspace's failed jobs without the dashboard.

Reached by `python -m cli reprocess` and by a `reprocess` message on the jobs queue (an
EventBridge rule, another service). Each job goes through the manual retry's transaction
(retry.requeue): charged at the workspace's retry price, or paid by the operator
(`free`: the charge and an `operator_grant` entry of the same amount, so the workspace pays
nothing and the attempt says creditsCharged 0). A job that cannot be re-queued is reported and
costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.domain import Job, JobStatus, ReprocessRequest, Trigger
from chalicelib.errors import DomainError, http_error_for
from chalicelib.observability import logger
from chalicelib.processing.context import Services
from chalicelib.processing.retry import requeue

PAGE = 100


@dataclass
class ReprocessReport:
    selected: list[str] = field(default_factory=list)  # the failed jobs that matched
    requeued: int = 0
    credits_charged: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # job id -> why it was not re-queued


def reprocess(svc: Services, request: ReprocessRequest, actor: str) -> ReprocessReport:
    report = ReprocessReport()
    for job in failed_jobs(svc, request):
        report.selected.append(job.id)
        if request.dry_run:
            continue
        try:
            retried = requeue(svc, job, Trigger.REPROCESS, actor, granted=request.free)
        except DomainError as error:
            report.refused[job.id] = f"{http_error_for(error).code}: {error.message}"
            continue
        report.requeued += 1
        report.credits_charged += retried.credits_charged
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
