"""Retrying failed jobs: the seed's `retryJob` mutation, and its "Retry All Failed" batch.

The rules, in the order the seed checks them:
1. the job exists and belongs to a workspace the caller is a member of (else 404 "Job not found");
2. its status is failed (else 400 "Only failed jobs can be retried");
3. the workspace has the retry's price (else 403 "Insufficient credits ..."); the price is 1
   credit, or 0 for a job's first retry under RETRY_PRICING first_free (see pricing.py);
4. the original upload is still in R2 (else 409).
Then ONE transaction: job failed→queued (condition: still failed at the attempt and retry count
read), credits −price (condition: credits ≥ price), the caller's membership (a condition check),
a `retry` ledger entry, a new attempt and the Idempotency-Key's answer. On success that is 5
round trips: the job, the workspace (its pricing decides the price), HEAD, the transaction, the
send. The reads that only decide which error to give (membership, balance) run
on the error path, so the seed's order and words are unchanged. The reset is the seed's:
error, errorCode, completedAt, outputFileKey cleared; inputFileKey, originalFilename, createdAt
kept; attempt +1, retryCount +1. After the commit the message is sent (see dispatch.py).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from chalicelib.domain import UUID_PATTERN, Job, JobStatus, LedgerReason, Principal, Trigger
from chalicelib.errors import (
    DomainError,
    InsufficientCreditsForRetryError,
    JobNotFailedError,
    JobNotFoundError,
    JobsChangedError,
    QueueSendError,
    ServiceUnavailableError,
    TransactionConflictError,
    UploadGoneError,
    ValidationError,
    WorkspaceNotFoundError,
    http_error_for,
)
from chalicelib.observability import count, logger
from chalicelib.processing.access import require_member, resolve_workspace
from chalicelib.processing.contention import with_contention
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import Delivery, dispatch, next_attempt
from chalicelib.processing.idempotency import Key
from chalicelib.processing.ports import Release, RetryPlan
from chalicelib.processing.pricing import pricing_of, retry_price

RETRY_REFUND_MESSAGE = "Could not queue the retry. Your credit was refunded."
FREE_RETRY_UNQUEUED_MESSAGE = "Could not queue the retry. Nothing was charged."
_BATCH_THREADS = 8

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class ItemResult:
    job_id: str
    success: bool
    code: str | None = None
    message: str | None = None
    delivery: Delivery | None = None


@dataclass(frozen=True)
class Retried:
    job: Job  # as queued
    credits_charged: int
    delivery: Delivery = Delivery.SENT


@dataclass(frozen=True)
class BatchResult:
    results: list[ItemResult]
    credits_charged: int
    credits: int | None  # the balance after the commit; None when it could not be read


def parse_job_id(value: str) -> str:
    """The canonical form of a UUID written the documented way (8-4-4-4-12 hex digits)."""
    if not isinstance(value, str) or not re.fullmatch(UUID_PATTERN, value):
        raise ValidationError(f"jobId must be a UUID (got '{value}')")
    return str(uuid.UUID(value))


def retry_job(
    svc: Services,
    principal: Principal,
    job_id: str,
    workspace_id: str | None = None,
    key: Key[Retried] | None = None,
) -> Retried:
    """Re-queue one failed job for its price (1 credit, or 0 under first_free)."""
    job_id = parse_job_id(job_id)

    def once() -> Retried:
        job = svc.repo.get_job(job_id)
        if job is None or (workspace_id and job.workspace_id != workspace_id):
            raise JobNotFoundError()
        return _retry_once(svc, job, Trigger.MANUAL, principal.user_id, principal.user_id, key=key)

    return with_contention(once)


def requeue(svc: Services, job: Job, trigger: Trigger, actor: str, granted: bool = False) -> Retried:
    """An operator's retry of a job as read (`reprocess`): no membership, no key. A lost race
    with another transaction reads the job again and decides again."""
    read: list[Job] = [job]

    def once() -> Retried:
        current = read.pop() if read else svc.repo.get_job(job.id)
        if current is None:
            raise JobNotFoundError()
        return _retry_once(svc, current, trigger, actor, None, granted=granted)

    return with_contention(once)


def _retry_once(
    svc: Services,
    job: Job,
    trigger: Trigger,
    actor: str,
    member: str | None,
    granted: bool = False,
    key: Key[Retried] | None = None,
) -> Retried:
    """`member`: the caller whose membership the transaction checks (None: an operator).

    The price is decided under the deployment's RETRY_PRICING, and the transaction holds only if
    the workspace has no other override: the common retry reads nothing but the job. The reads
    that decide an error's wording (membership, balance, override) happen on the error paths, so
    the answer keeps the seed's order: not failed, then credits, then the upload.
    """
    if job.status != JobStatus.FAILED:
        _require_member(svc, member, job)
        raise JobNotFailedError()
    if svc.store.head(job.input_file_key) is None:
        _require_member(svc, member, job)
        if not granted:
            _require_credits(svc, job)
        raise UploadGoneError()
    pricing: str = svc.settings.retry_pricing
    for _ in range(2):  # at most once more, under the workspace's own override
        try:
            return _commit_retry(svc, job, trigger, actor, member, pricing, granted, key)
        except InsufficientCreditsForRetryError:
            workspace = svc.repo.get_workspace(job.workspace_id)
            if workspace is None or pricing_of(svc, workspace) == pricing:
                _require_member(svc, member, job)
                raise
            pricing = pricing_of(svc, workspace)
    raise TransactionConflictError()  # the override changed twice under us: start over


def _require_credits(svc: Services, job: Job) -> None:
    workspace = svc.repo.get_workspace(job.workspace_id)
    if workspace is None or workspace.credits < retry_price(pricing_of(svc, workspace), job):
        raise InsufficientCreditsForRetryError()


def _commit_retry(
    svc: Services,
    job: Job,
    trigger: Trigger,
    actor: str,
    member: str | None,
    pricing: str,
    granted: bool,
    key: Key[Retried] | None,
) -> Retried:
    now = svc.clock()
    price = retry_price(pricing, job)
    plan = next_attempt(job, trigger, LedgerReason.RETRY, actor, now, price=price, granted=granted)
    queued = _as_queued(job, plan, now)
    charged = plan.new_attempt.credits_charged
    answer = key.answer(svc, Retried(queued, charged)) if key else None
    try:
        svc.repo.retry_jobs(job.workspace_id, [plan], now, answer, member, pricing)
    except JobsChangedError as exc:  # a lost race: the seed's 400
        raise JobNotFailedError() from exc
    message = RETRY_REFUND_MESSAGE if charged else FREE_RETRY_UNQUEUED_MESSAGE
    release = Release(key.record_id, whole=True) if key else None
    delivery = dispatch(
        svc, queued, LedgerReason.RETRY_REFUND, message, actor, charged=charged, release=release
    )
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
    return Retried(job=queued, credits_charged=charged, delivery=delivery)


def _require_member(svc: Services, member: str | None, job: Job) -> None:
    if member is not None:
        require_member(svc.repo, Principal(user_id=member), job)


def retry_jobs(
    svc: Services,
    principal: Principal,
    job_ids: list[str],
    workspace_id: str | None = None,
    key: Key[BatchResult] | None = None,
) -> BatchResult:
    """Re-queue every eligible job of the list for 1 credit each, all in one transaction.

    Unknown and not-failed jobs are reported and not charged. If the balance cannot cover every
    eligible job, nothing is retried (403). Nothing after the commit can turn it into an error:
    the balance read at the end is best effort.
    """
    ids = _parse_batch(job_ids, svc.settings.batch_retry_max)
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    ws_id = membership.workspace_id
    results: dict[str, ItemResult] = {}
    plans = with_contention(lambda: _commit_batch(svc, principal, ws_id, ids, results, key))
    release = Release(key.record_id, whole=False) if key else None

    def send(plan: RetryPlan) -> ItemResult:
        queued = _as_queued(plan.job, plan, plan.new_attempt.queued_at)
        price = plan.new_attempt.credits_charged
        message = RETRY_REFUND_MESSAGE if price else FREE_RETRY_UNQUEUED_MESSAGE
        try:
            delivery = dispatch(
                svc,
                queued,
                LedgerReason.RETRY_REFUND,
                message,
                principal.user_id,
                charged=price,
                release=release,
            )
        except QueueSendError as exc:
            return _failure(plan.job.id, exc)
        return ItemResult(job_id=plan.job.id, success=True, delivery=delivery)

    for sent in _concurrently(send, plans):
        results[sent.job_id] = sent
    charged = sum(plan.new_attempt.credits_charged for plan in plans if results[plan.job.id].success)
    if charged:
        count("JobsRetried", value=charged, trigger=Trigger.BATCH.value)
    return BatchResult(
        results=[results[i] for i in ids], credits_charged=charged, credits=_balance_if_readable(svc, ws_id)
    )


def _commit_batch(
    svc: Services,
    principal: Principal,
    ws_id: str,
    ids: list[str],
    results: dict[str, ItemResult],
    key: Key[BatchResult] | None,
) -> list[RetryPlan]:
    results.clear()  # a re-run after a TransactionConflict judges every job afresh
    eligible = _eligible(svc, ws_id, ids, results)
    while eligible:
        workspace = svc.repo.get_workspace(ws_id)  # its pricing decides each job's price
        if workspace is None:
            raise WorkspaceNotFoundError()
        pricing = pricing_of(svc, workspace)
        now = svc.clock()
        plans = [_plan(job, Trigger.BATCH, principal, now, retry_price(pricing, job)) for job in eligible]
        if workspace.credits < sum(plan.new_attempt.credits_charged for plan in plans):
            raise InsufficientCreditsForRetryError()
        answer = key.answer(svc, _as_committed(ids, results, plans)) if key else None
        try:
            svc.repo.retry_jobs(ws_id, plans, now, answer, principal.user_id, pricing)
            return plans
        except JobsChangedError as exc:
            changed = exc.job_ids
            for job_id in changed:
                results[job_id] = _failure(job_id, JobNotFailedError())
            eligible = [job for job in eligible if job.id not in changed]
    return []


def _eligible(svc: Services, ws_id: str, ids: list[str], results: dict[str, ItemResult]) -> list[Job]:
    """The jobs that can be retried (one BatchGetItem, the HEADs at once); why not, for the others."""
    found = svc.repo.get_jobs(ids)
    failed = []
    for job_id in ids:
        job = found.get(job_id)
        if job is None or job.workspace_id != ws_id:
            results[job_id] = _failure(job_id, JobNotFoundError())
        elif job.status != JobStatus.FAILED:
            results[job_id] = _failure(job_id, JobNotFailedError())
        else:
            failed.append(job)
    heads = _concurrently(lambda job: svc.store.head(job.input_file_key), failed)
    for job, head in zip(failed, heads, strict=True):
        if head is None:
            results[job.id] = _failure(job.id, UploadGoneError())
    return [job for job in failed if job.id not in results]


def _as_committed(ids: list[str], results: dict[str, ItemResult], plans: list[RetryPlan]) -> BatchResult:
    """The batch's answer as its transaction commits it (stored with an Idempotency-Key)."""
    queued = {plan.job.id for plan in plans}
    return BatchResult(
        results=[
            ItemResult(job_id=i, success=True, delivery=Delivery.SENT) if i in queued else results[i]
            for i in ids
        ],
        credits_charged=sum(plan.new_attempt.credits_charged for plan in plans),
        credits=None,
    )


def balance_if_readable(svc: Services, principal: Principal, workspace_id: str | None) -> int | None:
    """The caller's balance for a replayed batch answer, or None when it cannot be read."""
    try:
        ws_id = resolve_workspace(svc.repo, principal, workspace_id).workspace_id
    except ServiceUnavailableError:
        return None
    return _balance_if_readable(svc, ws_id)


def _balance_if_readable(svc: Services, ws_id: str) -> int | None:
    """The balance after the commit, for the answer; the charge is final whether or not it reads."""
    try:
        workspace = svc.repo.get_workspace(ws_id)
    except ServiceUnavailableError:
        logger().warning("balance unreadable after a batch retry", extra={"workspace_id": ws_id})
        return None
    return workspace.credits if workspace else None


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


def refunded_item(job_id: str) -> ItemResult:
    """A batch job whose send failed after the commit and whose credit came back."""
    return _failure(job_id, QueueSendError(RETRY_REFUND_MESSAGE))


def _failure(job_id: str, error: DomainError) -> ItemResult:
    return ItemResult(job_id=job_id, success=False, code=http_error_for(error).code, message=error.message)


def _concurrently(action: Callable[[A], R], items: Sequence[A]) -> list[R]:
    """`action` over `items` on a few threads, results in order: a batch's reads and sends are
    independent round trips, and 25 of them one after another dominate its latency."""
    if len(items) <= 1:
        return [action(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_BATCH_THREADS, len(items))) as pool:
        return list(pool.map(action, items))
