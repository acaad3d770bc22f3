"""The repository's state transitions: start, retry, undo, claim, progress, complete, fail.

Each is ONE conditional transaction; a failed condition becomes the method's domain error (or
False where the caller only needs to know the transition did not happen).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.dynamodb.jobs import JobReads
from chalicelib.adapters.dynamodb.mapping import attempt_model, ledger_model, ws_status
from chalicelib.adapters.dynamodb.models import AttemptModel, JobModel, LedgerModel, WorkspaceModel
from chalicelib.adapters.dynamodb.transactions import Cancelled, Tx, is_condition_failure
from chalicelib.domain import Attempt, Job, JobStatus, LedgerEntry, Outcome, QueueMessage
from chalicelib.errors import (
    ConflictError,
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobNotStartableError,
    JobsChangedError,
    ServiceUnavailableError,
    TransactionConflictError,
)
from chalicelib.processing.ports import RetryPlan

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
    ]


class Transitions(JobReads):
    """Every multi-item state change of a job, each one transaction."""

    def start_job(self, job: Job, attempt: Attempt, entry: LedgerEntry, now: datetime) -> Job:
        """uploading → queued, credits −1, ledger entry and first attempt: one transaction."""
        tx = Tx()
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
            [*queued_actions(now, job.workspace_id), JobModel.attempt.set(attempt.n)],
            (JobModel.status == JobStatus.UPLOADING.value) & (JobModel.attempt == job.attempt),
        )
        try:
            tx.commit()
        except Cancelled as exc:
            if "job" in exc.labels or "attempt" in exc.labels:
                raise JobNotStartableError() from exc
            raise InsufficientCreditsError() from exc
        # The job as the transaction left it, without reading it back.
        return dataclasses.replace(
            job,
            status=JobStatus.QUEUED,
            attempt=attempt.n,
            updated_at=now,
            dispatched_at=now,
            resends=0,
            lease_until=None,
            progress=None,
        )

    def retry_jobs(self, workspace_id: str, plans: Sequence[RetryPlan], now: datetime) -> None:
        """failed → queued for every plan, credits −len(plans): one transaction.

        Each job's condition is status = failed AND attempt = the attempt that was read, so two
        concurrent retries of a job can never both win. On cancellation: JobNotFailedError
        carrying the ids whose condition failed, else InsufficientCreditsForRetryError.
        """
        tx = Tx()
        for plan in plans:
            tx.put(f"attempt:{plan.job.id}", attempt_model(plan.new_attempt), AttemptModel.n.does_not_exist())
            tx.put(f"ledger:{plan.job.id}", ledger_model(plan.entry), LedgerModel.entryKey.does_not_exist())
        tx.update(
            "workspace",
            WorkspaceModel(id=workspace_id),
            [WorkspaceModel.credits.add(-len(plans))],
            WorkspaceModel.credits >= len(plans),
        )
        for plan in plans:
            tx.update(
                f"job:{plan.job.id}",
                JobModel(id=plan.job.id),
                [
                    *queued_actions(now, workspace_id),
                    JobModel.attempt.set(plan.new_attempt.n),
                    JobModel.retryCount.add(1),
                    JobModel.error.remove(),
                    JobModel.errorCode.remove(),
                    JobModel.completedAt.remove(),
                    JobModel.outputFileKey.remove(),
                ],
                (JobModel.status == JobStatus.FAILED.value) & (JobModel.attempt == plan.job.attempt),
            )
        try:
            tx.commit()
        except Cancelled as exc:
            lost = {label.split(":", 1)[1] for label in exc.labels if ":" in label}
            if lost:
                raise JobsChangedError(lost) from exc
            raise InsufficientCreditsForRetryError() from exc

    def undo_queueing(self, job: Job, entry: LedgerEntry, error: str, error_code: str, now: datetime) -> None:
        """The message could not be sent: refund (entry) and put the job back to failed."""
        tx = Tx()
        tx.put("ledger", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        tx.update(
            "workspace", WorkspaceModel(id=job.workspace_id), [WorkspaceModel.credits.add(entry.delta)], None
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
        try:
            JobModel(id=job_id).update(
                actions=[
                    JobModel.dispatchedAt.set(now),
                    JobModel.sweepAt.set(now + hold),
                    JobModel.resends.add(1),
                ],
                condition=(JobModel.status == JobStatus.QUEUED.value) & (JobModel.attempt == attempt),
                add_version_condition=False,
            )
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                return False
            raise ServiceUnavailableError() from exc
        return True

    def claim(self, ref: QueueMessage, now: datetime, lease_until: datetime) -> Job | None:
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
            ],
            fresh | stale,
        )
        try:
            tx.commit()
        except Cancelled:
            return None
        return self.get_job(job_id)

    def set_progress(self, ref: QueueMessage, progress: float) -> None:
        try:
            JobModel(id=ref.job_id).update(
                actions=[JobModel.progress.set(round(progress, 3))],
                condition=(JobModel.status == JobStatus.PROCESSING.value) & (JobModel.attempt == ref.attempt),
                add_version_condition=False,
            )
        except PynamoDBException as exc:
            if not is_condition_failure(exc):
                raise ServiceUnavailableError() from exc

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

    def fail(self, ref: QueueMessage, error: str, error_code: str, detail: str | None, now: datetime) -> bool:
        attempt_actions = [
            AttemptModel.outcome.set(Outcome.FAILED.value),
            AttemptModel.error.set(error),
            AttemptModel.errorCode.set(error_code),
        ]
        if detail:
            attempt_actions.append(AttemptModel.stderrTail.set(detail[-4000:]))
        return self._finish(
            ref,
            now,
            job_actions=failed_actions(ref.workspace_id, error, error_code, now),
            attempt_actions=attempt_actions,
            allowed=(JobStatus.PROCESSING, JobStatus.QUEUED),
        )

    def _finish(
        self,
        ref: QueueMessage,
        now: datetime,
        job_actions: list[Any],
        attempt_actions: list[Any],
        allowed: tuple[JobStatus, ...] = (JobStatus.PROCESSING,),
    ) -> bool:
        job_id, attempt = ref.job_id, ref.attempt
        tx = Tx()
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
            JobModel.status.is_in(*[s.value for s in allowed]) & (JobModel.attempt == attempt),
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
