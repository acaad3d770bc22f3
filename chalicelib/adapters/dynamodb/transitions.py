"""The repository's state transitions: start, retry, undo, claim, heartbeat, progress, complete,
fail (with a refund), reschedule (an automatic retry).

Each is ONE conditional transaction; a failed condition becomes the method's domain error (or
False where the caller only needs to know the transition did not happen).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.condition import Condition

from chalicelib.adapters.dynamodb.answers import Answers, put_answer, release_answer
from chalicelib.adapters.dynamodb.jobs import JobReads
from chalicelib.adapters.dynamodb.mapping import attempt_model, ledger_model, ws_status
from chalicelib.adapters.dynamodb.models import (
    AttemptModel,
    JobModel,
    LedgerModel,
    MemberModel,
    WorkspaceModel,
)
from chalicelib.adapters.dynamodb.transactions import Cancelled, Tx, is_condition_failure
from chalicelib.domain import Attempt, Job, JobStatus, LedgerEntry, Outcome, QueueMessage
from chalicelib.errors import (
    AnswerExistsError,
    ConflictError,
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobNotStartableError,
    JobsChangedError,
    NotAMemberError,
    ServiceUnavailableError,
    TransactionConflictError,
)
from chalicelib.processing.ports import KeyedAnswer, RecordedError, Refund, Release, RetryPlan

FINISH_TRIES = 4


def queued_actions(now: datetime, workspace_id: str) -> list[Any]:
    return [
        JobModel.status.set(JobStatus.QUEUED.value),
        JobModel.wsStatus.set(ws_status(workspace_id, JobStatus.QUEUED.value)),
        JobModel.updatedAt.set(now),
        JobModel.dispatchedAt.set(now),
        JobModel.sweepAt.set(now),
        JobModel.resends.set(0),
        JobModel.leaseUntil.remove(),
        JobModel.progress.remove(),
        *segment_reset_actions(),
    ]


def segment_reset_actions() -> list[Any]:
    """A new attempt plans its segments afresh (finished segment files are reused by key)."""
    return [
        JobModel.segPlan.remove(),
        JobModel.segTasks.remove(),
        JobModel.segTotal.remove(),
        JobModel.segDone.remove(),
        JobModel.stitchUntil.remove(),
    ]


def charged_actions(attempt: int) -> list[Any]:
    """A charged attempt starts a new round of automatic tries, and is the one a refund pays back."""
    return [
        JobModel.attempt.set(attempt),
        JobModel.chargedAttempt.set(attempt),
        JobModel.autoAttempts.set(0),
        JobModel.nextAttemptAt.remove(),
    ]


def failed_actions(workspace_id: str, error: str, error_code: str, now: datetime) -> list[Any]:
    ws = workspace_id
    return [
        JobModel.status.set(JobStatus.FAILED.value),
        JobModel.wsStatus.set(ws_status(ws, JobStatus.FAILED.value)),
        JobModel.error.set(error),
        JobModel.errorCode.set(error_code),
        JobModel.updatedAt.set(now),
        JobModel.leaseUntil.remove(),
        JobModel.sweepAt.remove(),
        JobModel.progress.remove(),
        JobModel.nextAttemptAt.remove(),
    ]


def failed_attempt_actions(error: str, error_code: str, detail: str | None) -> list[Any]:
    actions = [
        AttemptModel.outcome.set(Outcome.FAILED.value),
        AttemptModel.error.set(error),
        AttemptModel.errorCode.set(error_code),
    ]
    if detail:
        actions.append(AttemptModel.stderrTail.set(detail[-4000:]))
    return actions


def charge_guards(
    tx: Tx, user_id: str | None, workspace_id: str, answer: KeyedAnswer | None, now: datetime
) -> None:
    """What every charge checks in its own transaction: the requester is still a member of the
    workspace, and the Idempotency-Key (if any) has no answer yet (its answer is written here)."""
    if user_id is not None:  # None: an operator's command (reprocess), no membership to check
        tx.check("member", MemberModel, user_id, workspace_id, MemberModel.userId.exists())
    if answer is not None:
        put_answer(tx, answer, now)


def refused_charge(labels: set[str]) -> Exception | None:
    """The refusal the guards' labels mean, first in the seed's order; None if they all held."""
    if "answer" in labels:
        return AnswerExistsError()
    if "member" in labels:
        return NotAMemberError()
    return None


def _processing(ref: QueueMessage) -> Condition:
    return (JobModel.status == JobStatus.PROCESSING.value) & (JobModel.attempt == ref.attempt)


def _update_job_if(job_id: str, actions: list[Any], condition: Condition) -> bool:
    """One conditional UpdateItem on a job: False when the condition failed (the job moved on)."""
    try:
        JobModel(id=job_id).update(actions=actions, condition=condition, add_version_condition=False)
    except PynamoDBException as exc:
        if is_condition_failure(exc):
            return False
        raise ServiceUnavailableError() from exc
    return True


class Transitions(JobReads, Answers):
    """Every multi-item state change of a job, each one transaction."""

    def start_job(
        self, job: Job, attempt: Attempt, entry: LedgerEntry, now: datetime, answer: KeyedAnswer | None = None
    ) -> None:
        """uploading → queued, credits −1, ledger entry and first attempt: one transaction."""
        tx = Tx()
        charge_guards(tx, attempt.requested_by, job.workspace_id, answer, now)
        tx.put("attempt", attempt_model(attempt), AttemptModel.n.does_not_exist())
        tx.put("ledger", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        tx.update(
            "workspace",
            WorkspaceModel(id=job.workspace_id),
            [WorkspaceModel.credits.add(-1)],
            WorkspaceModel.credits >= 1,
        )
        tx.update(
            "job",
            JobModel(id=job.id),
            [*queued_actions(now, job.workspace_id), *charged_actions(attempt.n)],
            (JobModel.status == JobStatus.UPLOADING.value) & (JobModel.attempt == job.attempt),
        )
        try:
            tx.commit()
        except Cancelled as exc:
            refusal = refused_charge(exc.labels)
            if refusal is not None:
                raise refusal from exc
            if "job" in exc.labels or "attempt" in exc.labels:
                raise JobNotStartableError() from exc
            raise InsufficientCreditsError() from exc

    def retry_jobs(
        self,
        workspace_id: str,
        plans: Sequence[RetryPlan],
        now: datetime,
        answer: KeyedAnswer | None = None,
        member: str | None = None,
        pricing: str | None = None,
    ) -> None:
        """failed → queued for every plan, credits −(the plans' prices): one transaction, whose
        conditions include `member`'s membership (None: an operator) and the key's answer.

        Each job's condition is status = failed AND attempt AND retry count = what was read, so
        two concurrent retries of a job can never both win, and the price decided from the read
        retry count (RETRY_PRICING first_free) is the one charged. On cancellation:
        JobNotFailedError carrying the ids whose condition failed, else
        InsufficientCreditsForRetryError.
        """
        tx = Tx()
        charge_guards(tx, member, workspace_id, answer, now)
        for plan in plans:
            tx.put(f"attempt:{plan.job.id}", attempt_model(plan.new_attempt), AttemptModel.n.does_not_exist())
            for i, entry in enumerate(plan.entries):
                tx.put(f"ledger{i}:{plan.job.id}", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        price = -sum(entry.delta for plan in plans for entry in plan.entries)
        condition = WorkspaceModel.credits >= price
        if pricing is not None:  # the prices hold only under this pricing
            override = WorkspaceModel.retryPricing
            condition &= override.does_not_exist() | (override == pricing)
        workspace = WorkspaceModel(id=workspace_id)
        tx.update("workspace", workspace, [WorkspaceModel.credits.add(-price)], condition)
        for plan in plans:
            tx.update(
                f"job:{plan.job.id}",
                JobModel(id=plan.job.id),
                [
                    *queued_actions(now, workspace_id),
                    *charged_actions(plan.new_attempt.n),
                    JobModel.retryCount.add(1),
                    JobModel.error.remove(),
                    JobModel.errorCode.remove(),
                    JobModel.completedAt.remove(),
                    JobModel.outputFileKey.remove(),
                ],
                (JobModel.status == JobStatus.FAILED.value)
                & (JobModel.attempt == plan.job.attempt)
                & (JobModel.retryCount == plan.job.retry_count),
            )
        try:
            tx.commit()
        except Cancelled as exc:
            refusal = refused_charge(exc.labels)
            if refusal is not None:
                raise refusal from exc
            lost = {label.split(":", 1)[1] for label in exc.labels if ":" in label}
            if lost:
                raise JobsChangedError(lost) from exc
            raise InsufficientCreditsForRetryError() from exc

    def undo_queueing(
        self,
        job: Job,
        entry: LedgerEntry | None,
        error: str,
        error_code: str,
        now: datetime,
        release: Release | None = None,
    ) -> None:
        """The message could not be sent: refund (entry, if anything was charged), put the job
        back to failed, and mark the request's Idempotency-Key answer (`release`), all in one
        transaction."""
        tx = Tx()
        if release is not None:
            release_answer(tx, release, job.id, now)
        if entry is not None:
            tx.put("ledger", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
            tx.update(
                "workspace",
                WorkspaceModel(id=job.workspace_id),
                [WorkspaceModel.credits.add(entry.delta)],
                None,
            )
        tx.update(
            "attempt",
            AttemptModel(jobId=job.id, n=job.attempt),
            [
                AttemptModel.outcome.set(Outcome.FAILED.value),
                AttemptModel.finishedAt.set(now),
                AttemptModel.error.set(error),
                AttemptModel.errorCode.set(error_code),
            ],
            AttemptModel.outcome == Outcome.QUEUED.value,
        )
        tx.update(
            "job",
            JobModel(id=job.id),
            [*failed_actions(job.workspace_id, error, error_code, now)],
            (JobModel.status == JobStatus.QUEUED.value) & (JobModel.attempt == job.attempt),
        )
        try:
            tx.commit()
        except Cancelled as exc:
            # A worker claimed it after all (the send did go through): nothing to undo.
            raise ConflictError("The job was picked up after all; nothing was refunded") from exc

    def mark_dispatched(self, job_id: str, attempt: int, now: datetime, hold: timedelta) -> bool:
        # sweepAt is when the job's wait is counted from: `hold` pushes the next re-send out.
        return _update_job_if(
            job_id,
            [JobModel.dispatchedAt.set(now), JobModel.sweepAt.set(now + hold), JobModel.resends.add(1)],
            (JobModel.status == JobStatus.QUEUED.value) & (JobModel.attempt == attempt),
        )

    def claim(self, ref: QueueMessage, now: datetime, lease_until: datetime) -> bool:
        """queued → processing for this attempt (or a processing claim whose lease ran out)."""
        job_id, attempt = ref.job_id, ref.attempt
        fresh = (JobModel.status == JobStatus.QUEUED.value) & (JobModel.attempt == attempt)
        stale = (
            (JobModel.status == JobStatus.PROCESSING.value)
            & (JobModel.attempt == attempt)
            & (JobModel.leaseUntil < now)
        )
        tx = Tx()
        tx.update(
            "attempt",
            AttemptModel(jobId=job_id, n=attempt),
            [AttemptModel.outcome.set(Outcome.PROCESSING.value), AttemptModel.startedAt.set(now)],
            AttemptModel.outcome.is_in(Outcome.QUEUED.value, Outcome.PROCESSING.value),
        )
        tx.update(
            "job",
            JobModel(id=job_id),
            [
                JobModel.status.set(JobStatus.PROCESSING.value),
                JobModel.wsStatus.set(ws_status(ref.workspace_id, JobStatus.PROCESSING.value)),
                JobModel.updatedAt.set(now),
                JobModel.leaseUntil.set(lease_until),
                JobModel.sweepAt.set(lease_until),
                JobModel.nextAttemptAt.remove(),
            ],
            fresh | stale,
        )
        try:
            tx.commit()
        except Cancelled:
            return False
        return True

    def set_progress(self, ref: QueueMessage, progress: float) -> None:
        _update_job_if(ref.job_id, [JobModel.progress.set(round(progress, 3))], _processing(ref))

    def complete(self, ref: QueueMessage, output_key: str, now: datetime) -> bool:
        return self._finish(
            ref,
            now,
            job_actions=[
                JobModel.status.set(JobStatus.COMPLETED.value),
                JobModel.wsStatus.set(ws_status(ref.workspace_id, JobStatus.COMPLETED.value)),
                JobModel.outputFileKey.set(output_key),
                JobModel.completedAt.set(now),
                JobModel.updatedAt.set(now),
                JobModel.progress.set(1),
                JobModel.error.remove(),
                JobModel.errorCode.remove(),
                JobModel.leaseUntil.remove(),
                JobModel.sweepAt.remove(),
            ],
            attempt_actions=[AttemptModel.outcome.set(Outcome.SUCCEEDED.value)],
        )

    def extend_lease(self, ref: QueueMessage, lease_until: datetime) -> bool:
        actions = [JobModel.leaseUntil.set(lease_until), JobModel.sweepAt.set(lease_until)]
        return _update_job_if(ref.job_id, actions, _processing(ref))

    def fail(
        self,
        ref: QueueMessage,
        error: str,
        error_code: str,
        detail: str | None,
        now: datetime,
        refund: Refund | None = None,
        lease_expired_before: datetime | None = None,
    ) -> bool:
        attempt_actions = failed_attempt_actions(error, error_code, detail)
        tx = Tx()
        if refund is not None:
            tx.put("ledger", ledger_model(refund.entry), LedgerModel.entryKey.does_not_exist())
            tx.update(
                "workspace",
                WorkspaceModel(id=ref.workspace_id),
                [WorkspaceModel.credits.add(refund.entry.delta)],
                None,
            )
            if refund.attempt == ref.attempt:  # one transaction may touch an item only once
                attempt_actions.append(AttemptModel.refunded.set(True))
            else:
                tx.update(
                    "charged",
                    AttemptModel(jobId=ref.job_id, n=refund.attempt),
                    [AttemptModel.refunded.set(True)],
                    AttemptModel.refunded.does_not_exist(),
                )
        return self._finish(
            ref,
            now,
            job_actions=failed_actions(ref.workspace_id, error, error_code, now),
            attempt_actions=attempt_actions,
            allowed=(JobStatus.PROCESSING, JobStatus.QUEUED),
            tx=tx,
            lease_expired_before=lease_expired_before,
        )

    def reschedule(
        self,
        ref: QueueMessage,
        error: RecordedError,
        retry: Attempt,
        due: datetime,
        now: datetime,
        lease_expired_before: datetime | None = None,
    ) -> bool:
        tx = Tx()
        tx.put("retry", attempt_model(retry), AttemptModel.n.does_not_exist())
        ws = ref.workspace_id
        return self._finish(
            ref,
            now,
            job_actions=[
                JobModel.status.set(JobStatus.QUEUED.value),
                JobModel.wsStatus.set(ws_status(ws, JobStatus.QUEUED.value)),
                JobModel.attempt.set(retry.n),
                JobModel.autoAttempts.add(1),
                JobModel.nextAttemptAt.set(due),
                JobModel.updatedAt.set(now),
                JobModel.dispatchedAt.set(now),
                JobModel.sweepAt.set(due),  # the sweeper re-sends it only once it is due and unclaimed
                JobModel.resends.set(0),
                JobModel.leaseUntil.remove(),
                JobModel.progress.remove(),
                JobModel.error.remove(),
                JobModel.errorCode.remove(),
                *segment_reset_actions(),
            ],
            attempt_actions=failed_attempt_actions(error.message, error.code, error.detail),
            allowed=(JobStatus.PROCESSING,),
            tx=tx,
            lease_expired_before=lease_expired_before,
        )

    def _finish(
        self,
        ref: QueueMessage,
        now: datetime,
        job_actions: list[Any],
        attempt_actions: list[Any],
        allowed: tuple[JobStatus, ...] = (JobStatus.PROCESSING,),
        tx: Tx | None = None,
        lease_expired_before: datetime | None = None,
    ) -> bool:
        job_id, attempt = ref.job_id, ref.attempt
        tx = tx or Tx()
        condition = JobModel.status.is_in(*[s.value for s in allowed]) & (JobModel.attempt == attempt)
        if lease_expired_before is not None:
            condition &= JobModel.leaseUntil < lease_expired_before
        tx.update(
            "attempt",
            AttemptModel(jobId=job_id, n=attempt),
            [*attempt_actions, AttemptModel.finishedAt.set(now)],
            AttemptModel.outcome.is_in(Outcome.QUEUED.value, Outcome.PROCESSING.value),
        )
        tx.update(
            "job",
            JobModel(id=job_id),
            job_actions,
            condition,
        )
        for attempt_no in range(FINISH_TRIES):
            try:
                tx.commit()
                return True
            except Cancelled:
                return False
            except TransactionConflictError:
                # Conditions are evaluated again on each try: re-running is safe.
                if attempt_no == FINISH_TRIES - 1:
                    raise
                time.sleep(0.05 * (attempt_no + 1))
        return False
