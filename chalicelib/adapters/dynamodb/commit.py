"""Any lifecycle Transition as ONE conditional write: the one place the adapter turns the
lifecycle's writes and guards into DynamoDB's.

Every write becomes an item of one TransactWriteItems (or, when the transition touches one item,
one UpdateItem or PutItem: half the write capacity, the same conditions). A failed condition
comes back as that item's label, and the transition's own refusal says what it means.
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime
from typing import Any

from pynamodb.expressions.condition import Condition

from chalicelib.adapters.dynamodb.answers import put_answer, release_answer
from chalicelib.adapters.dynamodb.mapping import (
    ATTEMPT_ATTRIBUTES,
    JOB_ATTRIBUTES,
    WORKSPACE_ATTRIBUTES,
    attempt_model,
    event_model,
    job_model,
    ledger_model,
    member_model,
    payment_model,
    purchase_model,
    session_key,
    stored,
    workspace_from,
    workspace_model,
    ws_status,
)
from chalicelib.adapters.dynamodb.models import (
    AttemptModel,
    JobModel,
    LedgerModel,
    MemberModel,
    PaymentModel,
    WorkspaceModel,
)
from chalicelib.adapters.dynamodb.transactions import Cancelled, Tx
from chalicelib.domain import JobStatus, RetryPricing
from chalicelib.lifecycle.apply import workspace_refusals
from chalicelib.lifecycle.model import (
    AttemptWrite,
    JobGuard,
    JobWrite,
    PurchaseWrite,
    Transition,
    WorkspaceWrite,
)


def commit(transition: Transition) -> None:
    """Commit the transition, or raise its refusal for the writes whose conditions failed."""
    tx = Tx()
    if transition.member is not None:
        user_id, workspace_id = transition.member
        tx.check("member", MemberModel, user_id, workspace_id, MemberModel.userId.exists())
    if transition.answer is not None:
        put_answer(tx, transition.answer, transition.at)
    if transition.release is not None:
        release_answer(tx, transition.release, transition.at)
    if transition.membership is not None:
        tx.put("membership", member_model(transition.membership))
    if transition.workspace is not None:
        _workspace(tx, transition.workspace, transition.at)
    for entry in transition.entries:
        tx.put(f"ledger:{entry.id}", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
    if transition.event is not None:
        tx.put("event", event_model(transition.event), PaymentModel.id.does_not_exist())
    if transition.purchase is not None:
        _purchase(tx, transition.purchase)
    for attempt in transition.attempts:
        _attempt(tx, attempt)
    for job in transition.jobs:
        _job(tx, job)
    try:
        tx.commit()
    except Cancelled as exc:
        raise transition.refused(_labels(transition, exc)) from exc


def _labels(transition: Transition, refused: Cancelled) -> frozenset[str]:
    """The failed writes' labels; for the workspace, which of its guards failed, read from the
    item DynamoDB returned with the cancellation (its balance, or the cap on its active jobs)."""
    labels = set(refused.labels)
    write = transition.workspace
    raw = refused.items.get(WorkspaceWrite.label)
    if write is not None and write.create is None and raw is not None:
        precise = workspace_refusals(write, workspace_from(WorkspaceModel.from_raw_data(raw)))
        if precise:  # (empty: it changed between the two; the plain label stands)
            labels = (labels - {WorkspaceWrite.label}) | precise
    return frozenset(labels)


def _workspace(tx: Tx, write: WorkspaceWrite, at: datetime) -> None:
    if write.create is not None:
        tx.put(write.label, workspace_model(write.create, at), WorkspaceModel.id.does_not_exist())
        return
    condition = WorkspaceModel.id.exists()
    if write.at_least is not None and write.at_least > 0:
        condition &= WorkspaceModel.credits >= write.at_least
    if write.balance is not None:
        condition &= WorkspaceModel.credits == write.balance
    if write.pricing_in is not None:
        condition &= _pricing_in(write.pricing_in)
    if write.active_at_most is not None:
        condition &= _active_at_most(write.active_at_most)
    actions = _actions(WORKSPACE_ATTRIBUTES, write.changes)
    if write.credits:
        actions.append(WorkspaceModel.credits.add(write.credits))
    if write.active:  # ADD on a missing number starts it at 0
        actions.append(WorkspaceModel.activeJobs.add(write.active))
    if not actions:  # only guards: a condition check
        tx.check(write.label, WorkspaceModel, write.workspace_id, None, condition)
        return
    guarded = write.active_at_most is not None
    tx.update(write.label, WorkspaceModel(id=write.workspace_id), actions, condition, return_old=guarded)


def _active_at_most(most: int) -> Condition:
    """The workspace's active jobs are at most `most` (no attribute: 0, a workspace stored before
    the count was kept)."""
    within = WorkspaceModel.activeJobs <= most
    return within | WorkspaceModel.activeJobs.does_not_exist() if most >= 0 else within


def _purchase(tx: Tx, write: PurchaseWrite) -> None:
    """A new purchase: its session's item and its payment's pointer, each only if absent. A
    reversal: the purchase's reversed credits, only from the value it was decided from."""
    if write.create is not None:
        tx.put(write.label, purchase_model(write.create), PaymentModel.id.does_not_exist())
        if write.create.payment_id is not None:
            tx.put(write.label, payment_model(write.create), PaymentModel.id.does_not_exist())
        return
    condition = PaymentModel.id.exists() & (PaymentModel.reversedCredits == write.reversed_from)
    item = PaymentModel(id=session_key(write.session_id))
    tx.update(write.label, item, [PaymentModel.reversedCredits.set(write.reversed_to)], condition)


def _pricing_in(overrides: frozenset[RetryPricing | None]) -> Condition:
    """The workspace's RETRY_PRICING override is one of these (None: it has none)."""
    override = WorkspaceModel.retryPricing
    options: list[Condition] = [override == p.value for p in overrides if p is not None]
    if None in overrides:
        options.append(override.does_not_exist())
    return functools.reduce(operator.or_, options)


def _attempt(tx: Tx, write: AttemptWrite) -> None:
    if write.create is not None:
        tx.put(write.label, attempt_model(write.create), AttemptModel.n.does_not_exist())
        return
    condition = AttemptModel.n.exists()
    if write.outcomes:
        condition &= AttemptModel.outcome.is_in(*[o.value for o in write.outcomes])
    if write.not_refunded:
        condition &= AttemptModel.refunded.does_not_exist() | (AttemptModel.refunded == False)  # noqa: E712
    item = AttemptModel(jobId=write.job_id, n=write.n)
    tx.update(write.label, item, _actions(ATTEMPT_ATTRIBUTES, write.changes), condition)


def _job(tx: Tx, write: JobWrite) -> None:
    if write.create is not None:
        tx.put(write.label, job_model(write.create), JobModel.id.does_not_exist())
        return
    assert write.guard is not None
    actions = _actions(JOB_ATTRIBUTES, write.changes)
    status = write.changes.get("status")
    if isinstance(status, JobStatus):
        actions.append(JobModel.wsStatus.set(ws_status(write.workspace_id, status.value)))
    actions += [JOB_ATTRIBUTES[name].add(delta) for name, delta in write.adds.items() if delta]
    if write.add_task is not None:
        actions.append(JobModel.segDone.add({write.add_task}))
    tx.update(write.label, JobModel(id=write.job_id), actions, _job_condition(write.guard))


def _job_condition(guard: JobGuard) -> Condition:
    states: Condition | None = None
    for status, lease in guard.states.items():
        state = JobModel.status == status.value
        if lease is not None:
            held = JobModel.leaseUntil < lease.expired_before
            if lease.owner is not None:
                held |= JobModel.leaseOwner == lease.owner
            state &= held
        states = state if states is None else states | state
    assert states is not None, "a job guard names at least one status"
    condition = states
    if guard.attempt is not None:
        condition &= JobModel.attempt == guard.attempt
    if guard.retry_count is not None:
        condition &= JobModel.retryCount == guard.retry_count
    if guard.has_plan:
        condition &= JobModel.segPlan.exists()
    if guard.task_not_done is not None:
        condition &= ~JobModel.segDone.contains(guard.task_not_done)
    if guard.stitch_free_at is not None:
        condition &= JobModel.stitchUntil.does_not_exist() | (JobModel.stitchUntil < guard.stitch_free_at)
    if guard.due_before is not None:
        condition &= JobModel.sweepAt < guard.due_before  # false when the attribute is absent
    return condition


def _actions(attributes: dict[str, Any], changes: Any) -> list[Any]:
    actions = []
    for name, value in changes.items():
        attribute, kept = attributes[name], stored(value)
        actions.append(attribute.remove() if kept is None else attribute.set(kept))
    return actions
