"""The segmented path's state on the job item: the plan, the tasks done, who stitches.

A task is recorded done by one conditional update (ADD to a number set, only if the task is not
in it yet), so each task counts once however often SQS delivers it; the update returns the set,
and the caller that sees it full may try to claim the stitch, a second conditional write that
only one claimant wins while its claim lasts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.expressions.condition import Condition

from chalicelib.adapters.dynamodb.models import AttemptModel, JobModel
from chalicelib.adapters.dynamodb.transactions import Cancelled, Tx, is_condition_failure
from chalicelib.domain import JobStatus, Outcome, QueueMessage
from chalicelib.errors import ServiceUnavailableError
from chalicelib.processing.ports import SegmentState


def _current(ref: QueueMessage) -> Condition:
    return (JobModel.status == JobStatus.PROCESSING.value) & (JobModel.attempt == ref.attempt)


def _state(m: JobModel, newly_done: bool) -> SegmentState | None:
    if m.segPlan is None or m.segTasks is None:
        return None
    return SegmentState(
        plan=m.segPlan,
        tasks=int(m.segTasks),
        done=frozenset(int(t) for t in m.segDone or ()),
        newly_done=newly_done,
    )


class SegmentTransitions:
    """The Repository port's segment methods."""

    def start_segments(
        self, ref: QueueMessage, plan: str, words: str, tasks: int, segments: int, lease_until: datetime
    ) -> bool:
        """Record the plan on the job and, in words, on the attempt: one transaction.

        A re-plan after a crash keeps the tasks already done.
        """
        tx = Tx()
        tx.update(
            "job",
            JobModel(id=ref.job_id),
            [
                JobModel.segPlan.set(plan),
                JobModel.segTasks.set(tasks),
                JobModel.segTotal.set(segments),
                JobModel.progress.set(JobModel.progress | 0),
                JobModel.leaseUntil.set(lease_until),
                JobModel.sweepAt.set(lease_until),
            ],
            _current(ref),
        )
        tx.update(
            "attempt",
            AttemptModel(jobId=ref.job_id, n=ref.attempt),
            [AttemptModel.plan.set(words)],
            AttemptModel.outcome == Outcome.PROCESSING.value,
        )
        try:
            tx.commit()
        except Cancelled:
            return False
        return True

    def segment_state(self, ref: QueueMessage) -> SegmentState | None:
        """The plan and the tasks done, while the attempt is the job's current one and processing."""
        try:
            m = JobModel.get(ref.job_id, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise ServiceUnavailableError() from exc
        if m.status != JobStatus.PROCESSING.value or int(m.attempt) != ref.attempt:
            return None
        return _state(m, newly_done=False)

    def finish_task(
        self, ref: QueueMessage, task: int, now: datetime, lease_until: datetime
    ) -> SegmentState | None:
        """Count the task done once; the state after it. None when the attempt moved on."""
        m = JobModel(id=ref.job_id)
        try:
            m.update(
                actions=[
                    JobModel.segDone.add({task}),
                    JobModel.updatedAt.set(now),
                    JobModel.leaseUntil.set(lease_until),  # every finished task renews the lease
                    JobModel.sweepAt.set(lease_until),
                ],
                condition=_current(ref) & JobModel.segPlan.exists() & ~JobModel.segDone.contains(task),
                add_version_condition=False,
            )
        except PynamoDBException as exc:
            if not is_condition_failure(exc):
                raise ServiceUnavailableError() from exc
            return self.segment_state(ref)  # done before (a redelivery), or the attempt moved on
        return _state(m, newly_done=True)

    def claim_stitch(self, ref: QueueMessage, now: datetime, until: datetime) -> bool:
        """Only one caller stitches while its claim lasts; a crashed stitcher's claim runs out."""
        free = JobModel.stitchUntil.does_not_exist() | (JobModel.stitchUntil < now)
        return self._update(
            ref,
            [JobModel.stitchUntil.set(until), JobModel.leaseUntil.set(until), JobModel.sweepAt.set(until)],
            _current(ref) & free,
        )

    def release_stitch(self, ref: QueueMessage) -> None:
        self._update(ref, [JobModel.stitchUntil.remove()], _current(ref))

    def _update(self, ref: QueueMessage, actions: list[Any], condition: Condition) -> bool:
        try:
            JobModel(id=ref.job_id).update(actions=actions, condition=condition, add_version_condition=False)
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                return False
            raise ServiceUnavailableError() from exc
        return True
