"""What a transition is: the writes it makes, the guards each write carries, the answer it leaves.

A Transition is plain data. The Repository commits one as a single conditional write (DynamoDB:
one TransactWriteItems, or one UpdateItem/PutItem when it touches one item); the fake applies it
with chalicelib.lifecycle.apply. Field changes name the domain dataclasses' fields (Job, Attempt,
Workspace); a value of None removes the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain import (
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    Membership,
    Outcome,
    PaymentEvent,
    Purchase,
    RetryPricing,
    Workspace,
)
from chalicelib.errors import TransitionRefusedError
from chalicelib.lifecycle.moves import Move

Changes = Mapping[str, Any]  # a domain field -> its new value (None: removed)


@dataclass(frozen=True)
class KeyedAnswer:
    """An Idempotency-Key's record: the request it answers (`target`) and its answer.

    `refunded`: jobs of a batch whose send failed after the commit and whose credit came back.
    """

    record_id: str
    target: str
    response: dict[str, Any]
    expires_at: datetime
    refunded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Release:
    """What a refund does to its request's Idempotency-Key record, in the refund's transaction:
    `whole` frees the key (the request was undone); otherwise `job_id` is noted as refunded."""

    record_id: str
    whole: bool
    job_id: str = ""


@dataclass(frozen=True)
class RecordedError:
    """What an attempt failed with, as stored on the attempt (and, when final, on the job)."""

    message: str
    code: str
    detail: str | None = None


@dataclass(frozen=True)
class Lease:
    """A condition on a processing job's claim: it ran out before `expired_before`, or (with
    `owner`) it is that owner's claim."""

    expired_before: datetime
    owner: str | None = None


@dataclass(frozen=True)
class JobGuard:
    """What must still be true of the job item for the write to happen."""

    states: Mapping[JobStatus, Lease | None]  # its status is one of these (with that lease condition)
    attempt: int | None = None  # its current attempt is this one
    retry_count: int | None = None
    has_plan: bool = False  # a segment plan is recorded
    task_not_done: int | None = None  # this segment task is not recorded done yet
    stitch_free_at: datetime | None = None  # nobody's stitch claim runs past this time
    due_before: datetime | None = None  # its `sweep_at` is set and before this time


@dataclass(frozen=True)
class JobWrite:
    """A new job item (`create`), or changes to one under `guard`."""

    job_id: str
    workspace_id: str
    create: Job | None = None
    guard: JobGuard | None = None
    changes: Changes = field(default_factory=dict)
    adds: Mapping[str, int] = field(default_factory=dict)  # counters: added to, never read first
    add_task: int | None = None  # recorded in tasks_done (a set: each task counts once)

    def __post_init__(self) -> None:
        if (self.create is None) == (self.guard is None):
            raise ValueError("a job write either creates the job or is guarded")
        # One write may not both set and add to a field (DynamoDB refuses overlapping paths).
        if set(self.changes) & set(self.adds) or (self.add_task is not None and "tasks_done" in self.changes):
            raise ValueError("a job write sets and adds to the same field")

    @property
    def label(self) -> str:
        return job_label(self.job_id)


@dataclass(frozen=True)
class AttemptWrite:
    """A new attempt (`create`), or changes to one that exists and passes its guards."""

    job_id: str
    n: int
    create: Attempt | None = None
    outcomes: frozenset[Outcome] = frozenset()  # its outcome is one of these (empty: any)
    not_refunded: bool = False  # its credit has not come back yet
    changes: Changes = field(default_factory=dict)

    @property
    def label(self) -> str:
        return attempt_label(self.job_id, self.n)


@dataclass(frozen=True)
class WorkspaceWrite:
    """A new workspace (`create`), or its balance, active jobs and settings changed under guards.

    Refused, it names `workspace` (it is missing, or a guard on its balance or pricing failed)
    and/or `workspace:active` (the cap on its active jobs)."""

    workspace_id: str
    create: Workspace | None = None
    credits: int = 0  # added to the balance
    at_least: int | None = None  # the balance is at least this before the write
    balance: int | None = None  # the balance is exactly this before the write
    # The operator's RETRY_PRICING override is one of these (None: no override): a retry's price
    # holds only under what it was decided from.
    pricing_in: frozenset[RetryPricing | None] | None = None
    active: int = 0  # added to the jobs queued or processing
    active_at_most: int | None = None  # ... which are at most this before the write (the cap)
    changes: Changes = field(default_factory=dict)

    label = "workspace"
    cap_label = "workspace:active"


@dataclass(frozen=True)
class PurchaseWrite:
    """A purchase recorded once per Checkout session and once per payment (`create`), or the
    credits it has had taken back moved from `reversed_from` (still so) to `reversed_to`."""

    session_id: str
    create: Purchase | None = None
    reversed_from: int = 0
    reversed_to: int = 0

    label = "purchase"


def job_label(job_id: str) -> str:
    return f"job:{job_id}"


def attempt_label(job_id: str, n: int) -> str:
    return f"attempt:{job_id}:{n}"


def job_ids_of(labels: frozenset[str]) -> set[str]:
    """The jobs whose job or attempt write a refusal names."""
    return {label.split(":")[1] for label in labels if label.startswith(("job:", "attempt:"))}


Refusal = Callable[[frozenset[str]], Exception]


def moved_on(labels: frozenset[str]) -> Exception:
    """The default refusal: the transition did not happen (the caller usually only needs that)."""
    return TransitionRefusedError(labels)


@dataclass(frozen=True)
class Transition:
    """One change of state, committed as one conditional write or not at all.

    Labels name what refused: `member`, `answer`, `workspace`, `workspace:active`, `membership`,
    `ledger:<id>`, `job:<id>`, `attempt:<job>:<n>`, `event`, `purchase`; `refusal` turns the set of
    them into the caller's error.
    """

    move: Move
    at: datetime
    jobs: tuple[JobWrite, ...] = ()
    attempts: tuple[AttemptWrite, ...] = ()
    workspace: WorkspaceWrite | None = None
    entries: tuple[LedgerEntry, ...] = ()
    member: tuple[str, str] | None = None  # (user, workspace): must be a member
    membership: Membership | None = None  # written as it is
    answer: KeyedAnswer | None = None  # written; refused while a live answer for the key exists
    release: Release | None = None
    event: PaymentEvent | None = None  # recorded; refused while it already is (applied once)
    purchase: PurchaseWrite | None = None
    refusal: Refusal = field(default=moved_on, compare=False, repr=False)

    def refused(self, labels: frozenset[str]) -> Exception:
        return self.refusal(labels)

    def job(self, job_id: str) -> JobWrite | None:
        return next((w for w in self.jobs if w.job_id == job_id), None)

    @property
    def credits(self) -> int:
        """What the transition adds to the workspace's balance (negative: a charge)."""
        return self.workspace.credits if self.workspace else 0
