"""Retrying failed jobs: the seed's `retryJob` mutation, and its "Retry All Failed" batch.

The rules, in the order the seed checks them:
1. the job exists and belongs to a workspace the caller is a member of (else 404 "Job not found");
2. its status is failed (else 400 "Only failed jobs can be retried");
3. the workspace has the retry's price (else 403 "Insufficient credits ..."); the price is 1
   credit, or 0 for the job's free retry under RETRY_PRICING first_free, and a job whose start
   was refunded pays its first retry as a start (chalicelib.lifecycle.pricing);
4. the original upload is still in R2 (else 409);
5. the workspace has fewer than MAX_ACTIVE_JOBS jobs queued or processing (else 429 with
   Retry-After; the batch reports the jobs it could not queue). The transaction itself checks it
   and counts the job in, so two retries at once can never both pass the cap.
Then ONE transaction (chalicelib.lifecycle.transitions.retry): job failed→queued (guard: still
failed at the attempt and retry count read), credits −price (guard: credits ≥ price, and the
workspace's pricing override is exactly what the price was decided from), the caller's
membership, a `retry` ledger entry, a new attempt and the Idempotency-Key's answer. On success
that is 4 round trips: the job, HEAD, the transaction, the send: the price is decided under the
deployment's pricing, which holds when the workspace has no other override; the workspace is read
only when it does. The reads that only decide which error to give (membership, balance) run on
the error path, so the seed's order and words are unchanged. After the commit the message is
sent (see dispatch.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from chalicelib.domain import (
    Attempt,
    Job,
    JobStatus,
    LedgerReason,
    Principal,
    Trigger,
    Workspace,
)
from chalicelib.errors import (
    ActiveJobsLimitError,
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
from chalicelib.lifecycle import PricingBasis, Release, Transition, project, transitions
from chalicelib.lifecycle.pricing import retry_price
from chalicelib.observability import count, logger
from chalicelib.processing.access import require_member, resolve_workspace
from chalicelib.processing.contention import with_contention
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import Dispatch, dispatch
from chalicelib.processing.idempotency import Key
from chalicelib.processing.pricing import pricing_of

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
    delivery: Dispatch | None = None
    credits_charged: int | None = None  # a queued job: what its retry costs


@dataclass(frozen=True)
class Retried:
    job: Job  # as queued
    credits_charged: int
    delivery: Dispatch = Dispatch.SENT


@dataclass(frozen=True)
class BatchResult:
    results: list[ItemResult]
    credits_charged: int
    credits: int | None  # the balance after the commit; None when it could not be read


def retry_job(
    svc: Services,
    principal: Principal,
    job_id: str,
    workspace_id: str | None = None,
    key: Key[Retried] | None = None,
) -> Retried:
    """Re-queue one failed job (`job_id` in its canonical form) for its price."""

    def once() -> Retried:
        job = svc.repo.get_job(job_id)
        if job is None or (workspace_id and job.workspace_id != workspace_id):
            raise JobNotFoundError()
        return _retry_once(svc, job, Trigger.MANUAL, principal.user_id, principal.user_id, key=key)

    return with_contention(once)


def requeue(
    svc: Services,
    job: Job,
    trigger: Trigger,
    actor: str,
    granted: bool = False,
    key: Key[Retried] | None = None,
) -> Retried:
    """An operator's retry of a job as read (`reprocess`): no membership; `key` makes one
    request charge each job at most once. A lost race with another transaction reads the job
    again and decides again."""
    read: list[Job] = [job]

    def once() -> Retried:
        current = read.pop() if read else svc.repo.get_job(job.id)
        if current is None:
            raise JobNotFoundError()
        return _retry_once(svc, current, trigger, actor, None, granted=granted, key=key)

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

    The price is decided under the deployment's RETRY_PRICING, which the transaction requires the
    workspace not to override otherwise; when it does, the workspace is read and the price decided
    again under exactly its override. The reads that decide an error's wording (membership,
    balance) happen on the error paths, so the answer keeps the seed's order: not failed, then
    credits, then the upload.
    """
    if job.status != JobStatus.FAILED:
        _require_member(svc, member, job)
        raise JobNotFailedError()
    if svc.store.head(job.input_file_key) is None:
        _require_member(svc, member, job)
        if not granted:
            _require_credits(svc, job)
        raise UploadGoneError()
    basis = PricingBasis.assumed(svc.settings.retry_pricing)
    for _ in range(3):
        try:
            return _commit_retry(svc, job, trigger, actor, member, basis, granted, key)
        except InsufficientCreditsForRetryError:
            workspace = svc.repo.get_workspace(job.workspace_id)
            if workspace is None or workspace.retry_pricing in basis.overrides:
                _require_member(svc, member, job)
                raise  # the price held: the balance is short
            basis = PricingBasis.read(workspace, svc.settings.retry_pricing)
    raise TransactionConflictError()  # the override kept changing under us: start over


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
    basis: PricingBasis,
    granted: bool,
    key: Key[Retried] | None,
) -> Retried:
    retried = transitions.retry(
        [job], basis, trigger, actor, member, svc.clock(), granted=granted, cap=svc.settings.max_active_jobs
    )
    queued, attempt = project(job, retried), _new_attempt(retried, job.id)
    charged = attempt.credits_charged
    if key:
        retried = dataclasses.replace(retried, answer=key.answer(svc, Retried(queued, charged)))
    try:
        svc.repo.commit(retried)
    except JobsChangedError as exc:  # a lost race: the seed's 400
        raise JobNotFailedError() from exc
    message = RETRY_REFUND_MESSAGE if charged else FREE_RETRY_UNQUEUED_MESSAGE
    release = Release(key.record_id, whole=True) if key else None
    sent = dispatch(svc, queued, attempt, LedgerReason.RETRY_REFUND, message, actor, release)
    count("JobsRetried", trigger=trigger.value)
    logger().info(
        "job retried",
        extra={"job_id": job.id, "workspace_id": job.workspace_id, "attempt": attempt.n, "charged": charged},
    )
    return Retried(job=queued, credits_charged=charged, delivery=sent)


def _new_attempt(transition: Transition, job_id: str) -> Attempt:
    """The attempt a retry transition creates for the job."""
    return next(w.create for w in transition.attempts if w.job_id == job_id and w.create is not None)


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
    """Re-queue every eligible job of the list at its price, all in one transaction.

    Unknown and not-failed jobs are reported and not charged. If the balance cannot cover every
    eligible job, nothing is retried (403). Nothing after the commit can turn it into an error:
    the balance read at the end is best effort.
    """
    ids = _parse_batch(job_ids, svc.settings.batch_retry_max)
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    ws_id = membership.workspace_id
    results: dict[str, ItemResult] = {}
    batch = with_contention(lambda: _commit_batch(svc, principal, ws_id, ids, results, key))
    jobs = {job.id: job for job in batch[1]} if batch else {}
    retried = batch[0] if batch else None

    def send(job: Job) -> ItemResult:
        assert retried is not None
        attempt = _new_attempt(retried, job.id)
        message = RETRY_REFUND_MESSAGE if attempt.credits_charged else FREE_RETRY_UNQUEUED_MESSAGE
        release = Release(key.record_id, False, job.id) if key else None
        try:
            sent = dispatch(
                svc,
                project(job, retried),
                attempt,
                LedgerReason.RETRY_REFUND,
                message,
                principal.user_id,
                release,
            )
        except QueueSendError as exc:
            return _failure(job.id, exc)
        return ItemResult(job_id=job.id, success=True, delivery=sent, credits_charged=attempt.credits_charged)

    charged = 0
    for sent in _concurrently(send, list(jobs.values())):
        results[sent.job_id] = sent
        if sent.success and retried is not None:
            charged += _new_attempt(retried, sent.job_id).credits_charged
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
) -> tuple[Transition, list[Job]] | None:
    """The batch's transaction, committed: the jobs it queued (None: none could be)."""
    results.clear()  # a re-run after a TransactionConflict judges every job afresh
    eligible = _eligible(svc, ws_id, ids, results)
    workspace, repriced = _workspace(svc, ws_id), 0  # its pricing decides each job's price
    cap = svc.settings.max_active_jobs
    while eligible:
        eligible = _within_cap(eligible, cap - workspace.active_jobs, results)
        if not eligible:
            break
        basis = PricingBasis.read(workspace, svc.settings.retry_pricing)
        retried = transitions.retry(
            eligible, basis, Trigger.BATCH, principal.user_id, principal.user_id, svc.clock(), cap=cap
        )
        if workspace.credits < -retried.credits:
            raise InsufficientCreditsForRetryError()
        if key:
            retried = dataclasses.replace(
                retried, answer=key.answer(svc, _as_committed(ids, results, retried))
            )
        try:
            svc.repo.commit(retried)
            return retried, eligible
        except JobsChangedError as exc:
            for job_id in exc.job_ids:
                results[job_id] = _failure(job_id, JobNotFailedError())
            eligible = [job for job in eligible if job.id not in exc.job_ids]
        except ActiveJobsLimitError:
            workspace = _workspace(svc, ws_id)  # others joined the active jobs meanwhile: fewer fit
        except InsufficientCreditsForRetryError:
            fresh = _workspace(svc, ws_id)
            if fresh.retry_pricing == workspace.retry_pricing:
                raise  # the prices held: the balance is short
            workspace, repriced = fresh, repriced + 1  # the override changed: decide again
            if repriced > 2:
                raise TransactionConflictError() from None
    return None


def _within_cap(eligible: list[Job], room: int, results: dict[str, ItemResult]) -> list[Job]:
    """The first `room` jobs (in the request's order); the others reported as not queued."""
    kept = eligible[: max(0, room)]
    for job in eligible[len(kept) :]:
        results[job.id] = _failure(job.id, ActiveJobsLimitError())
    return kept


def _workspace(svc: Services, ws_id: str) -> Workspace:
    workspace = svc.repo.get_workspace(ws_id)
    if workspace is None:
        raise WorkspaceNotFoundError()
    return workspace


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


def _as_committed(ids: list[str], results: dict[str, ItemResult], retried: Transition) -> BatchResult:
    """The batch's answer as its transaction commits it (stored with an Idempotency-Key)."""
    prices = {w.job_id: w.create.credits_charged for w in retried.attempts if w.create is not None}
    return BatchResult(
        results=[
            ItemResult(job_id=i, success=True, delivery=Dispatch.SENT, credits_charged=prices[i])
            if i in prices
            else results[i]
            for i in ids
        ],
        credits_charged=-retried.credits,
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
    """The batch's job ids (canonical, from the route), each once, within the limit."""
    if not job_ids:
        raise ValidationError("jobIds must name at least one job")
    if len(job_ids) > limit:
        raise ValidationError(f"At most {limit} jobs can be retried at once (got {len(job_ids)})")
    return list(dict.fromkeys(job_ids))


def refunded_item(job_id: str, price: int) -> ItemResult:
    """A batch job whose send failed after the commit: its retry's `price` came back."""
    return _failure(job_id, QueueSendError(RETRY_REFUND_MESSAGE if price else FREE_RETRY_UNQUEUED_MESSAGE))


def _failure(job_id: str, error: DomainError) -> ItemResult:
    return ItemResult(job_id=job_id, success=False, code=http_error_for(error).code, message=error.message)


def _concurrently(action: Callable[[A], R], items: Sequence[A]) -> list[R]:
    """`action` over `items` on a few threads, results in order: a batch's reads and sends are
    independent round trips, and 25 of them one after another dominate its latency."""
    if len(items) <= 1:
        return [action(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_BATCH_THREADS, len(items))) as pool:
        return list(pool.map(action, items))
