"""Retrying failed jobs: the seed's `retryJob` mutation, and its "Retry All Failed" batch.

The rules, in the order the seed checks them:
1. the job exists and belongs to a workspace the caller is a member of (else 404 "Job not found");
2. its status is failed (else 400 "Only failed jobs can be retried");
3. the workspace has the retry's price (else 403 "Insufficient credits ..."); the price is 1
   credit, or 0 for a job's first retry under RETRY_PRICING first_free (see pricing.py);
4. the original upload is still in R2 (else 409).
Then ONE transaction: job failed→queued (condition: still failed at the attempt and retry count
read), credits −price (condition: credits ≥ price), a `retry` ledger entry and a new attempt.
The reset is the seed's: error, errorCode, completedAt, outputFileKey cleared; inputFileKey,
originalFilename, createdAt kept; attempt +1, retryCount +1. After the commit the message is
sent (see dispatch.py).
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from chalicelib.domain import (
    Job,
    JobStatus,
    LedgerReason,
    Principal,
    Trigger,
)
from chalicelib.errors import (
    DomainError,
    InsufficientCreditsForRetryError,
    JobNotFailedError,
    JobNotFoundError,
    JobsChangedError,
    QueueSendError,
    TransactionConflictError,
    UploadGoneError,
    ValidationError,
    WorkspaceNotFoundError,
    http_error_for,
)
from chalicelib.observability import count, logger
from chalicelib.processing.access import resolve_workspace, visible_job
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import dispatch, next_attempt
from chalicelib.processing.ports import RetryPlan
from chalicelib.processing.pricing import pricing_of, retry_price

RETRY_REFUND_MESSAGE = "Could not queue the retry. Your credit was refunded."
FREE_RETRY_UNQUEUED_MESSAGE = "Could not queue the retry. Nothing was charged."
_CONTENTION_TRIES = 8
_BATCH_THREADS = 8

T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class ItemResult:
    job_id: str
    success: bool
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Retried:
    job: Job  # as queued
    credits_charged: int


@dataclass(frozen=True)
class BatchResult:
    results: list[ItemResult]
    credits_charged: int
    credits: int


def parse_job_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValidationError(f"jobId must be a UUID (got '{value}')") from exc


def retry_job(svc: Services, principal: Principal, job_id: str, workspace_id: str | None = None) -> Retried:
    """Re-queue one failed job for its price (1 credit, or 0 under first_free)."""
    job_id = parse_job_id(job_id)
    job = visible_job(svc.repo, principal, job_id, workspace_id)
    return requeue(svc, job, Trigger.MANUAL, principal.user_id)


def requeue(svc: Services, job: Job, trigger: Trigger, actor: str, granted: bool = False) -> Retried:
    """The manual retry's transaction for a job the caller may see, as read (also `reprocess`'s).
    A lost race with another transaction reads the job again and decides again."""
    read: list[Job] = [job]

    def once() -> Retried:
        current = read.pop() if read else svc.repo.get_job(job.id)
        if current is None:
            raise JobNotFoundError()
        return _retry_once(svc, current, trigger, actor, granted)

    return _with_contention(once)


def _retry_once(svc: Services, job: Job, trigger: Trigger, actor: str, granted: bool) -> Retried:
    if job.status != JobStatus.FAILED:
        raise JobNotFailedError()
    workspace = svc.repo.get_workspace(job.workspace_id)
    price = retry_price(pricing_of(svc, workspace), job)
    if workspace is None or (workspace.credits < price and not granted):
        raise InsufficientCreditsForRetryError()
    if svc.store.head(job.input_file_key) is None:
        raise UploadGoneError()
    now = svc.clock()
    plan = next_attempt(job, trigger, LedgerReason.RETRY, actor, now, price=price, granted=granted)
    svc.repo.retry_jobs(job.workspace_id, [plan], now)  # a lost race: JobsChangedError, a 400
    queued = _as_queued(job, plan, now)
    charged = plan.new_attempt.credits_charged
    message = RETRY_REFUND_MESSAGE if charged else FREE_RETRY_UNQUEUED_MESSAGE
    dispatch(svc, queued, LedgerReason.RETRY_REFUND, message, actor, charged=charged)
    count("JobsRetried", trigger=trigger.value)
    logger().info(
        "job retried",
        extra={
            "job_id": job.id,
            "workspace_id": job.workspace_id,
            "attempt": plan.new_attempt.n,
            "charged": charged,
        },
    )
    return Retried(job=queued, credits_charged=charged)


def retry_jobs(
    svc: Services, principal: Principal, job_ids: list[str], workspace_id: str | None = None
) -> BatchResult:
    """Re-queue every eligible job of the list for 1 credit each, all in one transaction.

    Unknown and not-failed jobs are reported and not charged. If the balance cannot cover every
    eligible job, nothing is retried (403).
    """
    ids = _parse_batch(job_ids, svc.settings.batch_retry_max)
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    ws_id = membership.workspace_id
    results: dict[str, ItemResult] = {}
    plans = _with_contention(lambda: _commit_batch(svc, principal, ws_id, ids, results))

    def send(plan: RetryPlan) -> ItemResult:
        queued = _as_queued(plan.job, plan, plan.new_attempt.queued_at)
        price = plan.new_attempt.credits_charged
        message = RETRY_REFUND_MESSAGE if price else FREE_RETRY_UNQUEUED_MESSAGE
        try:
            dispatch(svc, queued, LedgerReason.RETRY_REFUND, message, principal.user_id, charged=price)
        except QueueSendError as exc:
            return _failure(plan.job.id, exc)
        return ItemResult(job_id=plan.job.id, success=True)

    for sent in _concurrently(send, plans):
        results[sent.job_id] = sent
    charged = sum(plan.new_attempt.credits_charged for plan in plans if results[plan.job.id].success)
    if charged:
        count("JobsRetried", value=charged, trigger=Trigger.BATCH.value)
    workspace = svc.repo.get_workspace(ws_id)
    return BatchResult(
        results=[results[i] for i in ids],
        credits_charged=charged,
        credits=workspace.credits if workspace else 0,
    )


def _commit_batch(
    svc: Services, principal: Principal, ws_id: str, ids: list[str], results: dict[str, ItemResult]
) -> list[RetryPlan]:
    eligible = []
    for job_id, checked in zip(ids, _concurrently(lambda i: _eligible(svc, ws_id, i), ids), strict=True):
        if isinstance(checked, ItemResult):
            results[job_id] = checked
        else:
            eligible.append(checked)
    while eligible:
        workspace = svc.repo.get_workspace(ws_id)
        if workspace is None:
            raise WorkspaceNotFoundError()
        pricing = pricing_of(svc, workspace)
        now = svc.clock()
        plans = [_plan(job, Trigger.BATCH, principal, now, retry_price(pricing, job)) for job in eligible]
        if workspace.credits < sum(plan.new_attempt.credits_charged for plan in plans):
            raise InsufficientCreditsForRetryError()
        try:
            svc.repo.retry_jobs(ws_id, plans, now)
            return plans
        except JobsChangedError as exc:
            changed = exc.job_ids
            for job_id in changed:
                results[job_id] = _failure(job_id, JobNotFailedError())
            eligible = [job for job in eligible if job.id not in changed]
    return []


def _eligible(svc: Services, ws_id: str, job_id: str) -> Job | ItemResult:
    """The job, if it can be retried; otherwise why not."""
    job = svc.repo.get_job(job_id)
    if job is None or job.workspace_id != ws_id:
        return _failure(job_id, JobNotFoundError())
    if job.status != JobStatus.FAILED:
        return _failure(job_id, JobNotFailedError())
    if svc.store.head(job.input_file_key) is None:
        return _failure(job_id, UploadGoneError())
    return job


def _parse_batch(job_ids: list[str], limit: int) -> list[str]:
    if not job_ids:
        raise ValidationError("jobIds must name at least one job")
    if len(job_ids) > limit:
        raise ValidationError(f"At most {limit} jobs can be retried at once (got {len(job_ids)})")
    return list(dict.fromkeys(parse_job_id(i) for i in job_ids))


def _plan(job: Job, trigger: Trigger, principal: Principal, now: datetime, price: int) -> RetryPlan:
    return next_attempt(job, trigger, LedgerReason.RETRY, principal.user_id, now, price=price)


def _as_queued(job: Job, plan: RetryPlan, now: datetime) -> Job:
    """The job as the transaction left it, without reading it back."""
    return dataclasses.replace(
        job,
        status=JobStatus.QUEUED,
        attempt=plan.new_attempt.n,
        retry_count=job.retry_count + 1,
        error=None,
        error_code=None,
        completed_at=None,
        output_file_key=None,
        progress=None,
        updated_at=now,
        dispatched_at=now,
        resends=0,
        lease_until=None,
        auto_attempts=0,
        next_attempt_at=None,
        charged_attempt=plan.new_attempt.n,
    )


def _failure(job_id: str, error: DomainError) -> ItemResult:
    return ItemResult(job_id=job_id, success=False, code=http_error_for(error).code, message=error.message)


def _concurrently(action: Callable[[A], R], items: Sequence[A]) -> list[R]:
    """`action` over `items` on a few threads, results in order: a batch's reads and sends are
    independent round trips, and 25 of them one after another dominate its latency."""
    if len(items) <= 1:
        return [action(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_BATCH_THREADS, len(items))) as pool:
        return list(pool.map(action, items))


def _with_contention(action: Callable[[], T]) -> T:
    """Run a read-validate-commit action again when a concurrent transaction held an item."""
    for attempt in range(_CONTENTION_TRIES - 1):
        try:
            return action()
        except TransactionConflictError:
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
    return action()
