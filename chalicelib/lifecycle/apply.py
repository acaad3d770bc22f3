"""What a transition's guards mean and what its writes do, on plain data.

The fake repository commits with these (find the failed guards, then apply every write), and a
service uses `project` to know the job a commit leaves without reading it back. The DynamoDB
adapter renders the same guards as condition expressions; tests/integration/test_contract.py
proves the two agree, guard by guard.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

from chalicelib.domain import Attempt, Job, Purchase, Workspace
from chalicelib.lifecycle.model import (
    AttemptWrite,
    JobGuard,
    JobWrite,
    KeyedAnswer,
    PurchaseWrite,
    Transition,
    WorkspaceWrite,
)

T = TypeVar("T", Job, Attempt, Workspace)


def job_guard_holds(guard: JobGuard, job: Job | None) -> bool:
    if job is None or job.status not in guard.states:
        return False
    lease = guard.states[job.status]
    if lease is not None:
        expired = job.lease_until is not None and job.lease_until < lease.expired_before
        ours = lease.owner is not None and job.lease_owner == lease.owner
        if not (expired or ours):
            return False
    if guard.attempt is not None and job.attempt != guard.attempt:
        return False
    if guard.retry_count is not None and job.retry_count != guard.retry_count:
        return False
    if guard.has_plan and job.segment_plan is None:
        return False
    if guard.task_not_done is not None and guard.task_not_done in job.tasks_done:
        return False
    if guard.due_before is not None and (job.sweep_at is None or job.sweep_at >= guard.due_before):
        return False
    free_at = guard.stitch_free_at
    return free_at is None or job.stitch_until is None or job.stitch_until < free_at


def job_write_holds(write: JobWrite, job: Job | None) -> bool:
    if write.create is not None:
        return job is None
    assert write.guard is not None
    return job_guard_holds(write.guard, job)


def attempt_write_holds(write: AttemptWrite, attempt: Attempt | None) -> bool:
    if write.create is not None:
        return attempt is None
    if attempt is None:
        return False
    if write.outcomes and attempt.outcome not in write.outcomes:
        return False
    return not (write.not_refunded and attempt.refunded)


def workspace_refusals(write: WorkspaceWrite, workspace: Workspace | None) -> frozenset[str]:
    """The labels of the write's guards that `workspace` fails (empty: the write may happen):
    `workspace` for its existence, balance and pricing, `workspace:active` for the cap."""
    if write.create is not None:
        return frozenset() if workspace is None else frozenset({write.label})
    if workspace is None:
        return frozenset({write.label})
    failed = set()
    if write.at_least is not None and write.at_least > 0 and workspace.credits < write.at_least:
        failed.add(write.label)
    if write.balance is not None and workspace.credits != write.balance:
        failed.add(write.label)
    if write.pricing_in is not None and workspace.retry_pricing not in write.pricing_in:
        failed.add(write.label)
    if write.active_at_most is not None and workspace.active_jobs > write.active_at_most:
        failed.add(write.cap_label)
    return frozenset(failed)


def workspace_write_holds(write: WorkspaceWrite, workspace: Workspace | None) -> bool:
    return not workspace_refusals(write, workspace)


def purchase_write_holds(write: PurchaseWrite, purchase: Purchase | None, payment_recorded: bool) -> bool:
    """A new purchase: its session has none yet, nor its payment another one. A reversal: the
    purchase exists and has had exactly `reversed_from` credits taken back."""
    if write.create is not None:
        return purchase is None and not payment_recorded
    return purchase is not None and purchase.reversed_credits == write.reversed_from


def apply_purchase(purchase: Purchase | None, write: PurchaseWrite) -> Purchase:
    if write.create is not None:
        return write.create
    assert purchase is not None
    return dataclasses.replace(purchase, reversed_credits=write.reversed_to)


def answer_is_live(answer: KeyedAnswer | None, released: bool, now: datetime) -> bool:
    """An Idempotency-Key record that still answers: not released and not expired."""
    return answer is not None and not released and answer.expires_at > now


def _changed(item: T, changes: dict[str, Any]) -> T:
    return dataclasses.replace(item, **changes)


def apply_job(job: Job | None, write: JobWrite) -> Job:
    if write.create is not None:
        return write.create
    assert job is not None
    changes: dict[str, Any] = dict(write.changes)
    for name, delta in write.adds.items():
        changes[name] = changes.get(name, getattr(job, name)) + delta
    if write.add_task is not None:
        changes["tasks_done"] = changes.get("tasks_done", job.tasks_done) | {write.add_task}
    return _changed(job, changes)


def apply_attempt(attempt: Attempt | None, write: AttemptWrite) -> Attempt:
    if write.create is not None:
        return write.create
    assert attempt is not None
    return _changed(attempt, dict(write.changes))


def apply_workspace(workspace: Workspace | None, write: WorkspaceWrite) -> Workspace:
    if write.create is not None:
        return write.create
    assert workspace is not None
    return _changed(
        workspace,
        {
            **write.changes,
            "credits": workspace.credits + write.credits,
            "active_jobs": workspace.active_jobs + write.active,
        },
    )


def project(job: Job, transition: Transition) -> Job:
    """The job as `transition` leaves it (if it commits), without reading it back."""
    write = transition.job(job.id)
    return apply_job(job, write) if write is not None else job
