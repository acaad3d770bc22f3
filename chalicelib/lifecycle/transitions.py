"""Every transition of a job, its attempts and its workspace's credits, as a pure function.

Each takes what it is decided from (the job or the message's reference to it, the attempt, the
workspace's figures, the time, the policy) and returns the Transition to commit: the changes,
the ledger entries, the guards and the refusal. Nothing here reads or writes anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import (
    Attempt,
    FailureKind,
    FreeRetry,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    Outcome,
    OutputFacts,
    PaymentEvent,
    Preset,
    Purchase,
    QueueMessage,
    Trigger,
    Workspace,
)
from chalicelib.errors import (
    ActiveJobsLimitError,
    AnswerExistsError,
    ConflictError,
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobExistsError,
    JobNotReplaceableError,
    JobNotStartableError,
    JobsChangedError,
    NotAMemberError,
    PaymentAppliedError,
    TransitionRefusedError,
    WorkspaceNotFoundError,
)
from chalicelib.lifecycle.model import (
    AttemptWrite,
    Changes,
    JobGuard,
    JobWrite,
    KeyedAnswer,
    Lease,
    PurchaseWrite,
    RecordedError,
    Release,
    Transition,
    WorkspaceWrite,
    job_ids_of,
)
from chalicelib.lifecycle.moves import MOVES, Move
from chalicelib.lifecycle.pricing import (
    START_PRICE,
    PricingBasis,
    free_retry_after,
    keeps_credit,
    retry_price,
)

SYSTEM = "system"  # the actor of what the platform does by itself
PAYMENT_PROVIDER = "stripe"  # the actor of a reversal: the provider's refund or dispute
OPEN = frozenset({Outcome.QUEUED, Outcome.PROCESSING})  # an attempt that has no outcome yet
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})  # what MAX_ACTIVE_JOBS counts
DETAIL_KEPT = 4000  # characters of an operator's detail (stderr tail) kept on the attempt


# --- guards and change sets ---------------------------------------------------------------------


def guard(move: Move, attempt: int | None, lease: Lease | None = None, **more: Any) -> JobGuard:
    """The job guard of `move`: its source statuses from the table, the attempt, and (for a move
    whose table row says so) the lease condition on a processing job."""
    row = MOVES[move]
    states = {s: (lease if row.lease and s is JobStatus.PROCESSING else None) for s in row.sources}
    return JobGuard(states=states, attempt=attempt, **more)


def _segments_reset() -> Changes:
    """A new attempt plans its segments afresh (finished segment files are reused by key)."""
    return {
        "segment_plan": None,
        "segment_tasks": None,
        "segments_total": None,
        "tasks_done": frozenset(),
        "stitch_until": None,
        "hls_published": 0,
        "stream_key": None,  # a long HLS video's growing stream belongs to its attempt
    }


# What a completed attempt produced: a new round starts without it.
_NO_OUTPUTS: Changes = {
    "output_file_key": None,
    "output_width": None,
    "output_height": None,
    "output_duration": None,
    "output_size": None,
    "poster_key": None,
    "thumbnails_key": None,
    "stream_key": None,
}


def _queued(now: datetime, due: datetime | None = None) -> Changes:
    return {
        "status": JobStatus.QUEUED,
        "updated_at": now,
        "dispatched_at": now,
        "sweep_at": due or now,  # the sweeper re-sends it only once it is due and unclaimed
        "resends": 0,
        "lease_until": None,
        "lease_owner": None,
        "progress": None,
        **_segments_reset(),
    }


def _new_round(n: int) -> Changes:
    """A charged attempt opens a round of automatic tries, and is the one a refund pays back."""
    return {"attempt": n, "charged_attempt": n, "auto_attempts": 0, "next_attempt_at": None}


def _ended(status: JobStatus, now: datetime) -> Changes:
    return {
        "status": status,
        "updated_at": now,
        "lease_until": None,
        "lease_owner": None,
        "sweep_at": None,
        "next_attempt_at": None,
        "stitch_until": None,
    }


def _failed(error: RecordedError, now: datetime) -> Changes:
    return {
        **_ended(JobStatus.FAILED, now),
        "error": error.message,
        "error_code": error.code,
        "progress": None,
    }


def _attempt_failed(error: RecordedError, now: datetime) -> Changes:
    changes: dict[str, Any] = {
        "outcome": Outcome.FAILED,
        "finished_at": now,
        "error": error.message,
        "error_code": error.code,
    }
    if error.detail:
        changes["stderr_tail"] = error.detail[-DETAIL_KEPT:]
    return changes


def _processing(ref: QueueMessage, move: Move, **more: Any) -> JobGuard:
    return guard(move, ref.attempt, **more)


# --- refusals: the seed's errors, in the seed's order -----------------------------------------


def _charge_refusal(labels: frozenset[str]) -> Exception | None:
    if "answer" in labels:
        return AnswerExistsError()
    if "member" in labels:
        return NotAMemberError()
    return None


def _start_refused(labels: frozenset[str]) -> Exception:
    refusal = _charge_refusal(labels)
    if refusal is not None:
        return refusal
    if job_ids_of(labels):
        return JobNotStartableError()
    if labels == {WorkspaceWrite.cap_label}:  # the balance held: only the cap refused it
        return ActiveJobsLimitError()
    return InsufficientCreditsError()


def _retry_refused(labels: frozenset[str]) -> Exception:
    refusal = _charge_refusal(labels)
    if refusal is not None:
        return refusal
    lost = job_ids_of(labels)
    if lost:
        return JobsChangedError(lost)
    if labels == {WorkspaceWrite.cap_label}:
        return ActiveJobsLimitError()
    return InsufficientCreditsForRetryError()


def _undo_refused(labels: frozenset[str]) -> Exception:
    # A worker claimed it after all (the send did go through): nothing to undo.
    return ConflictError("The job was picked up after all; nothing was refunded")


def _cancel_refused(labels: frozenset[str]) -> Exception:
    if "member" in labels:
        return NotAMemberError()
    return TransitionRefusedError(labels)  # the job moved on since it was read


def _replace_refused(labels: frozenset[str]) -> Exception:
    if "member" in labels:
        return NotAMemberError()
    return JobNotReplaceableError()  # it is not failed (any more) at the attempt read


def _create_refused(labels: frozenset[str]) -> Exception:
    if "workspace" in labels:
        return WorkspaceNotFoundError()
    return JobExistsError()


# --- the workspace ---------------------------------------------------------------------------


def open_workspace(workspace: Workspace, entry: LedgerEntry | None, now: datetime) -> Transition:
    """A new workspace with its opening balance (and the ledger entry that explains it)."""
    return Transition(
        Move.OPEN_WORKSPACE,
        now,
        workspace=WorkspaceWrite(workspace.id, create=workspace),
        entries=(entry,) if entry else (),
    )


def add_member(membership: Membership, now: datetime) -> Transition:
    return Transition(Move.ADD_MEMBER, now, membership=membership)


def change_credits(entry: LedgerEntry, expected: int | None = None) -> Transition:
    """An operator's grant or adjustment: the balance never goes below 0; with `expected`, it
    must still be that balance."""
    return Transition(
        Move.CREDITS,
        entry.created_at,
        workspace=WorkspaceWrite(
            entry.workspace_id,
            credits=entry.delta,
            at_least=-entry.delta if entry.delta < 0 else None,
            balance=expected,
        ),
        entries=(entry,),
        refusal=lambda _: ConflictError("The balance changed or would go below 0; nothing was changed"),
    )


def set_preset(workspace_id: str, preset: Preset | None, member: str, now: datetime) -> Transition:
    """A member chooses the workspace's default preset (None: the service's default)."""
    return Transition(
        Move.PRESET,
        now,
        workspace=WorkspaceWrite(workspace_id, changes={"preset": preset}),
        member=(member, workspace_id),
        refusal=lambda labels: NotAMemberError() if "member" in labels else WorkspaceNotFoundError(),
    )


def set_retention(workspace_id: str, days: int | None, member: str | None, now: datetime) -> Transition:
    """An owner's choice of how long the workspace's uploads are kept after their job completed
    or was cancelled (None: back to the deployment's default), if `member` (None: an operator)
    is still a member."""
    return Transition(
        Move.RETENTION,
        now,
        workspace=WorkspaceWrite(workspace_id, changes={"keep_originals_days": days}),
        member=(member, workspace_id) if member is not None else None,
        refusal=lambda labels: NotAMemberError() if "member" in labels else WorkspaceNotFoundError(),
    )


def set_pricing(workspace_id: str, pricing: Any, now: datetime) -> Transition:
    """An operator's RETRY_PRICING override for one workspace (None removes it)."""
    return Transition(
        Move.PRICING,
        now,
        workspace=WorkspaceWrite(workspace_id, changes={"retry_pricing": pricing}),
        refusal=lambda _: WorkspaceNotFoundError(),
    )


# --- purchases: credits bought, and taken back ------------------------------------------------------


def _purchase_refused(labels: frozenset[str]) -> Exception:
    if labels & {"event", "purchase"}:
        return PaymentAppliedError(labels)
    return WorkspaceNotFoundError()


def _reversal_refused(labels: frozenset[str]) -> Exception:
    if "event" in labels:
        return PaymentAppliedError(labels)
    return TransitionRefusedError(labels)  # another reversal moved the purchase on: decide again


def _purchase_entry(
    bought: Purchase, delta: int, reason: LedgerReason, actor: str, now: datetime
) -> LedgerEntry:
    """A ledger entry about a purchase: it names the Checkout session and the payment."""
    return LedgerEntry(
        bought.workspace_id,
        delta,
        reason,
        actor=actor,
        created_at=now,
        session_id=bought.session_id,
        payment_id=bought.payment_id,
    )


def purchase(bought: Purchase, event: PaymentEvent, now: datetime) -> Transition:
    """A paid Checkout session grants its pack: the credits, a `purchase` entry naming the session
    and the payment, the purchase recorded (once per session, once per payment) and the event
    recorded (once): one transaction, so a replayed event, a second event for the session, or
    two deliveries at once grant nothing more."""
    entry = _purchase_entry(bought, bought.credits, LedgerReason.PURCHASE, bought.buyer, now)
    return Transition(
        Move.PURCHASE,
        now,
        workspace=WorkspaceWrite(bought.workspace_id, credits=bought.credits),
        entries=(entry,),
        event=event,
        purchase=PurchaseWrite(bought.session_id, create=bought),
        refusal=_purchase_refused,
    )


def purchase_reversal(bought: Purchase, event: PaymentEvent, reversed_to: int, now: datetime) -> Transition:
    """A refund or a dispute takes back what the purchase has not had taken back yet, up to
    `reversed_to` of its credits: a `purchase_reversal` entry, the purchase's reversed credits
    moved on (from what was read) and the event recorded, in one transaction. The balance may go
    below 0: the workspace then owes credits, and no charge passes its `credits >= price` guard
    until a purchase or an operator settles it."""
    taken = reversed_to - bought.reversed_credits
    if not 0 < taken <= bought.credits - bought.reversed_credits:
        raise ValueError(f"a reversal takes back 1..{bought.credits - bought.reversed_credits}, not {taken}")
    entry = _purchase_entry(bought, -taken, LedgerReason.PURCHASE_REVERSAL, PAYMENT_PROVIDER, now)
    return Transition(
        Move.PURCHASE_REVERSAL,
        now,
        workspace=WorkspaceWrite(bought.workspace_id, credits=-taken),
        entries=(entry,),
        event=event,
        purchase=PurchaseWrite(
            bought.session_id, reversed_from=bought.reversed_credits, reversed_to=reversed_to
        ),
        refusal=_reversal_refused,
    )


# --- charging: create, start, retry, undo ---------------------------------------------------------


def create_job(job: Job, remember: bool = False) -> Transition:
    """A new job waiting for its upload; with `remember`, its preset becomes the workspace's (the
    one the next upload starts with), in the same write."""
    workspace = WorkspaceWrite(job.workspace_id, changes={"preset": job.preset}) if remember else None
    return Transition(
        Move.CREATE,
        job.created_at,
        jobs=(JobWrite(job.id, job.workspace_id, create=job),),
        workspace=workspace,
        refusal=_create_refused,
    )


def uploaded(job: Job, now: datetime) -> Transition:
    """The job's multipart upload is complete (its parts joined into the object): the sweeper no
    longer watches it, and it waits for its start like any uploaded job."""
    return _upload_move(job, Move.UPLOADED, now, {"sweep_at": None, "updated_at": now})


def expire_upload(job: Job, error: RecordedError, now: datetime) -> Transition:
    """uploading → failed: the multipart upload was still unfinished when it fell due (`sweep_at`
    before `now`) and its parts were discarded. Nothing was charged, so nothing comes back. An
    upload completed meanwhile is no longer due: the guard refuses it."""
    return _upload_move(job, Move.EXPIRE_UPLOAD, now, _failed(error, now), due_before=now)


def _upload_move(job: Job, move: Move, now: datetime, changes: Changes, **more: Any) -> Transition:
    guarded = guard(move, job.attempt, **more)
    return Transition(move, now, jobs=(JobWrite(job.id, job.workspace_id, guard=guarded, changes=changes),))


def _cap(cap: int | None, jobs: int) -> int | None:
    """The most active jobs a workspace may have before `jobs` more join them."""
    return None if cap is None else cap - jobs


def start(
    job: Job, actor: str, now: datetime, answer: KeyedAnswer | None = None, cap: int | None = None
) -> Transition:
    """uploading → queued: 1 credit, a `job_start` entry and the first attempt, if the actor is
    still a member, the key (if any) has no answer yet and the workspace has fewer than `cap`
    jobs queued or processing (the job joins them)."""
    n = job.attempt + 1
    attempt = Attempt(job.id, n, Trigger.INITIAL, START_PRICE, now, requested_by=actor, preset=job.preset)
    entry = LedgerEntry(job.workspace_id, -START_PRICE, LedgerReason.JOB_START, job.id, actor, now)
    return Transition(
        Move.START,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(Move.START, job.attempt),
                changes={**_queued(now), **_new_round(n)},
                adds={"credits_paid": START_PRICE},
            ),
        ),
        attempts=(AttemptWrite(job.id, n, create=attempt),),
        workspace=WorkspaceWrite(
            job.workspace_id,
            credits=-START_PRICE,
            at_least=START_PRICE,
            active=1,
            active_at_most=_cap(cap, 1),
        ),
        entries=(entry,),
        member=(actor, job.workspace_id),
        answer=answer,
        refusal=_start_refused,
    )


def retry(
    jobs: Sequence[Job],
    basis: PricingBasis,
    trigger: Trigger,
    actor: str,
    member: str | None,
    now: datetime,
    answer: KeyedAnswer | None = None,
    granted: bool = False,
    preset: Preset | None = None,
    replaced: frozenset[str] = frozenset(),
    cap: int | None = None,
) -> Transition:
    """failed → queued for every job, each at its price under `basis`, in one transaction.

    `preset` (one job: "Retry with different settings") is what the new attempt produces, at the
    same price; without it each job keeps its own. The jobs in `replaced` have their announced new
    file in place: each takes the file's name, type and size (`replace_input`); the history stays.
    The jobs join the workspace's active ones, which must stay within `cap`.
    The workspace pays the sum (credits ≥ it), under the pricing the prices were decided from;
    with `granted` an operator pays (a charge and an `operator_grant` of the same amount, so the
    workspace's balance does not move). `member` (None: an operator) must still be a member.
    Each job must still be failed at the attempt and retry count read: two retries of one job
    can never both win. The reset is the seed's: error, errorCode, completedAt, outputFileKey
    cleared; inputFileKey, originalFilename, createdAt kept.
    """
    workspace_id = jobs[0].workspace_id
    job_writes, attempt_writes, entries, paid = [], [], [], 0
    if preset is not None and len(jobs) != 1:
        raise ValueError("a preset is for a retry of one job (a batch keeps each job's own)")
    for job in jobs:
        price = retry_price(basis.pricing, job)
        n = job.attempt + 1
        workspace_pays = 0 if granted else price
        paid += workspace_pays
        produces = preset or job.preset
        attempt = Attempt(job.id, n, trigger, workspace_pays, now, requested_by=actor, preset=produces)
        attempt_writes.append(AttemptWrite(job.id, n, create=attempt))
        if price:
            entries.append(LedgerEntry(workspace_id, -price, LedgerReason.RETRY, job.id, actor, now))
        if price and granted:
            entries.append(LedgerEntry(workspace_id, price, LedgerReason.OPERATOR_GRANT, job.id, actor, now))
        changes: dict[str, Any] = {
            **_queued(now),
            **_new_round(n),
            **_NO_OUTPUTS,
            "error": None,
            "error_code": None,
            "completed_at": None,
            "preset": produces,
        }
        if price == 0:
            changes["free_retry"] = FreeRetry.RUNNING
        if job.id in replaced:
            changes.update(_replacement_taken(job))
        job_writes.append(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(Move.RETRY, job.attempt, retry_count=job.retry_count),
                changes=changes,
                adds={"retry_count": 1, "credits_paid": workspace_pays},
            )
        )
    return Transition(
        Move.RETRY,
        now,
        jobs=tuple(job_writes),
        attempts=tuple(attempt_writes),
        workspace=WorkspaceWrite(
            workspace_id,
            credits=-paid,
            at_least=paid,
            pricing_in=basis.overrides,
            active=len(jobs),
            active_at_most=_cap(cap, len(jobs)),
        ),
        entries=tuple(entries),
        member=(member, workspace_id) if member is not None else None,
        answer=answer,
        refusal=_retry_refused,
    )


def _replacement_taken(job: Job) -> Changes:
    """The announced file is the job's input now: its name, type and size; nothing pending."""
    return {
        "original_filename": job.pending_filename or job.original_filename,
        "content_type": job.pending_content_type or job.content_type,
        "size": job.pending_size if job.pending_size is not None else job.size,
        "pending_filename": None,
        "pending_content_type": None,
        "pending_size": None,
    }


def replace_input(
    job: Job, filename: str, content_type: str, size: int, member: str, now: datetime
) -> Transition:
    """A failed job gets a new file ("Upload a new file"): the file announced (its bytes go to the
    job's input key through a new presigned upload, replacing the old ones), the job still failed
    at its attempt. Nothing is charged: the retry that takes the file is the retry's own
    transaction, at its price."""
    return Transition(
        Move.REPLACE_INPUT,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(Move.REPLACE_INPUT, job.attempt),
                changes={
                    "pending_filename": filename,
                    "pending_content_type": content_type,
                    "pending_size": size,
                    "updated_at": now,
                },
            ),
        ),
        member=(member, job.workspace_id),
        refusal=_replace_refused,
    )


def undo(
    job: Job,
    attempt: Attempt,
    reason: LedgerReason,
    error: RecordedError,
    actor: str,
    now: datetime,
    release: Release | None = None,
) -> Transition:
    """The message of the job's new attempt could not be sent: the attempt failed, the job back
    to failed, what the attempt charged refunded, the retry not counted, the free retry (if this
    was it) available again, and the request's Idempotency-Key record released: one transaction.

    `job` is the job as the charge left it (queued at `attempt`)."""
    refund = attempt.credits_charged
    entries, workspace = _refund(job, refund, reason, actor, now, ended=True)
    changes = {**_failed(error, now), "free_retry": free_retry_after(job, kept=False)}
    return Transition(
        Move.UNDO,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(Move.UNDO, job.attempt),
                changes=changes,
                adds={
                    "credits_paid": -refund,
                    "retry_count": -1 if attempt.trigger is not Trigger.INITIAL else 0,
                },
            ),
        ),
        attempts=(
            AttemptWrite(
                job.id, attempt.n, outcomes=frozenset({Outcome.QUEUED}), changes=_attempt_failed(error, now)
            ),
        ),
        workspace=workspace,
        entries=entries,
        release=release,
        refusal=_undo_refused,
    )


def dispatched(job: Job, now: datetime, hold: timedelta) -> Transition:
    """The sweeper re-sent the attempt's message at `now`: counted, and not due again for `hold` more."""
    return Transition(
        Move.DISPATCH,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(Move.DISPATCH, job.attempt),
                changes={"dispatched_at": now, "sweep_at": now + hold},
                adds={"resends": 1},
            ),
        ),
    )


# --- the worker ------------------------------------------------------------------------------


def claim(ref: QueueMessage, now: datetime, lease_until: datetime, owner: str) -> Transition:
    """queued → processing for the message's attempt, or a processing claim whose lease ran out."""
    return Transition(
        Move.CLAIM,
        now,
        jobs=(
            JobWrite(
                ref.job_id,
                ref.workspace_id,
                guard=_processing(ref, Move.CLAIM, lease=Lease(now)),
                changes={
                    "status": JobStatus.PROCESSING,
                    "updated_at": now,
                    "lease_until": lease_until,
                    "lease_owner": owner,
                    "sweep_at": lease_until,
                    "next_attempt_at": None,
                },
            ),
        ),
        attempts=(
            AttemptWrite(
                ref.job_id,
                ref.attempt,
                outcomes=OPEN,
                changes={"outcome": Outcome.PROCESSING, "started_at": now},
            ),
        ),
    )


def progress(ref: QueueMessage, fraction: float, now: datetime) -> Transition:
    return _touch(ref, Move.PROGRESS, now, {"progress": _fraction(fraction)})


def _fraction(value: float) -> float:
    return round(min(max(value, 0.0), 1.0), 3)


def heartbeat(
    ref: QueueMessage, now: datetime, lease_until: datetime, fraction: float | None = None
) -> Transition:
    """The worker's claim renewed (it runs until `lease_until`), with the progress so far; refused
    once the attempt is not the job's processing one (cancelled, or handed to another worker)."""
    changes: dict[str, Any] = {"lease_until": lease_until, "sweep_at": lease_until}
    if fraction is not None:
        changes["progress"] = _fraction(fraction)
    return _touch(ref, Move.HEARTBEAT, now, changes)


def _touch(ref: QueueMessage, move: Move, now: datetime, changes: Changes) -> Transition:
    return Transition(
        move,
        now,
        jobs=(JobWrite(ref.job_id, ref.workspace_id, guard=_processing(ref, move), changes=changes),),
    )


def complete(
    ref: QueueMessage, output_key: str, now: datetime, facts: OutputFacts | None = None
) -> Transition:
    """processing → completed, with what the attempt produced (`facts`: its size, length, poster,
    thumbnails and, for HLS, the stream's index)."""
    produced: dict[str, Any] = {}
    if facts is not None:
        produced = {
            "output_width": facts.width,
            "output_height": facts.height,
            "output_duration": facts.duration,
            "output_size": facts.size,
            "poster_key": facts.poster_key,
            "thumbnails_key": facts.thumbnails_key,
            "stream_key": facts.stream_key,
        }
    return Transition(
        Move.COMPLETE,
        now,
        jobs=(
            JobWrite(
                ref.job_id,
                ref.workspace_id,
                guard=_processing(ref, Move.COMPLETE),
                changes={
                    **_ended(JobStatus.COMPLETED, now),
                    **produced,
                    "sweep_at": now,  # the sweeper looks at the upload's retention from now on
                    "output_file_key": output_key,
                    "completed_at": now,
                    "progress": 1.0,
                    "error": None,
                    "error_code": None,
                },
            ),
        ),
        attempts=(
            AttemptWrite(
                ref.job_id,
                ref.attempt,
                outcomes=OPEN,
                changes={"outcome": Outcome.SUCCEEDED, "finished_at": now},
            ),
        ),
        workspace=WorkspaceWrite(ref.workspace_id, active=-1),  # it leaves the active jobs
    )


def refund_due(kind: FailureKind | None, charged: Attempt | None) -> int:
    """What ending the round gives back of its charged attempt: everything, unless a failure is
    proven to be the input's (`kind` None: not a failure, a cancel)."""
    if charged is None or charged.refunded or charged.credits_charged <= 0:
        return 0
    if kind is not None and keeps_credit(kind):
        return 0
    return charged.credits_charged


def _settled(
    job_id: str, n: int, changes: Changes, charged: Attempt | None, refund: int
) -> tuple[AttemptWrite, ...]:
    """The current attempt's outcome, and the round's charged attempt marked refunded (one write
    when they are the same attempt: a transaction may touch an item only once)."""
    same = bool(refund) and charged is not None and charged.n == n
    writes = []
    if n > 0:
        writes.append(
            AttemptWrite(
                job_id,
                n,
                outcomes=OPEN,
                not_refunded=same,
                changes={**changes, "refunded": True} if same else changes,
            )
        )
    if refund and charged is not None and not same:
        writes.append(AttemptWrite(job_id, charged.n, not_refunded=True, changes={"refunded": True}))
    return tuple(writes)


def _refund(
    job: Job, refund: int, reason: LedgerReason, actor: str, now: datetime, ended: bool
) -> tuple[tuple[LedgerEntry, ...], WorkspaceWrite | None]:
    """The refund's entry, and the workspace write: the credit back, and (`ended`: the job left
    queued/processing for good) one active job fewer."""
    entries = (LedgerEntry(job.workspace_id, refund, reason, job.id, actor, now),) if refund else ()
    if not refund and not ended:
        return entries, None
    return entries, WorkspaceWrite(job.workspace_id, credits=refund, active=-1 if ended else 0)


def fail(
    job: Job,
    error: RecordedError,
    kind: FailureKind,
    now: datetime,
    charged: Attempt | None = None,
    lease: Lease | None = None,
    move: Move = Move.FAIL,
) -> Transition:
    """The job's current attempt failed for good: the attempt and the job failed, and (unless
    the input is proven at fault) the round's charged attempt refunded, in one transaction.

    `charged`: the round's charged attempt as read (None: nothing to refund). `lease`: the
    condition on the worker's claim (the sweeper's: it ran out; the give-up's: ran out or ours).
    """
    refund = refund_due(kind, charged)
    entries, workspace = _refund(job, refund, LedgerReason.SYSTEM_FAILURE_REFUND, SYSTEM, now, ended=True)
    return Transition(
        move,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(move, job.attempt, lease=lease),
                changes={**_failed(error, now), "free_retry": free_retry_after(job, kept=keeps_credit(kind))},
                adds={"credits_paid": -refund},
            ),
        ),
        attempts=_settled(job.id, job.attempt, _attempt_failed(error, now), charged, refund),
        workspace=workspace,
        entries=entries,
    )


def reschedule(
    job: Job,
    error: RecordedError,
    now: datetime,
    due: datetime,
    lease: Lease | None = None,
    move: Move = Move.RESCHEDULE,
) -> Transition:
    """A free automatic retry, in one transaction: the attempt failed with `error`, a free
    attempt created, and the job queued again for it, due at `due`."""
    n = job.attempt
    again = Attempt(job.id, n + 1, Trigger.AUTO, 0, now, requested_by=SYSTEM, preset=job.preset)
    return Transition(
        move,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=guard(move, n, lease=lease),
                changes={
                    **_queued(now, due),
                    "attempt": n + 1,
                    "next_attempt_at": due,
                    "error": None,
                    "error_code": None,
                },
                adds={"auto_attempts": 1},
            ),
        ),
        attempts=(
            AttemptWrite(job.id, n, outcomes=OPEN, changes=_attempt_failed(error, now)),
            AttemptWrite(job.id, n + 1, create=again),
        ),
    )


def cancel(job: Job, charged: Attempt | None, actor: str, member: str | None, now: datetime) -> Transition:
    """uploading, queued or processing → cancelled: the attempt's outcome, and what the round
    charged refunded (`cancel_refund`), in one transaction, if `member` (None: an operator) is
    still a member. Final.

    A queued or processing job leaves the active jobs; an uploading one never joined them. The
    guard holds the job to the side it was read on (a job started since is cancelled again,
    read afresh), so the count moves exactly when the job leaves."""
    refund = refund_due(None, charged)
    active = job.status in ACTIVE
    entries, workspace = _refund(job, refund, LedgerReason.CANCEL_REFUND, actor, now, ended=active)
    cancelling = guard(Move.CANCEL, job.attempt)
    side = {s: lease for s, lease in cancelling.states.items() if (s in ACTIVE) == active}
    return Transition(
        Move.CANCEL,
        now,
        jobs=(
            JobWrite(
                job.id,
                job.workspace_id,
                guard=dataclasses.replace(cancelling, states=side),
                changes={
                    **_ended(JobStatus.CANCELLED, now),
                    "sweep_at": now,  # the upload's retention, as for a completed job
                    "progress": None,
                    "free_retry": free_retry_after(job, kept=False),
                },
                adds={"credits_paid": -refund},
            ),
        ),
        attempts=_settled(
            job.id, job.attempt, {"outcome": Outcome.CANCELLED, "finished_at": now}, charged, refund
        ),
        workspace=workspace,
        entries=entries,
        member=(member, job.workspace_id) if member is not None else None,
        refusal=_cancel_refused,
    )


# --- the upload of a finished job ---------------------------------------------------------------


def original_due(job: Job, at: datetime, now: datetime) -> Transition:
    """The sweeper looks at a finished job's upload again at `at` (its retention has not run out,
    or the workspace may shorten it meanwhile)."""
    return _expire(job, now, {"sweep_at": at})


def original_deleted(job: Job, now: datetime) -> Transition:
    """A finished job's upload was deleted under its workspace's retention: recorded, and the
    sweeper looks at it no more. The job keeps its status and its output."""
    return _expire(job, now, {"original_deleted_at": now, "sweep_at": None})


def _expire(job: Job, now: datetime, changes: Changes) -> Transition:
    return Transition(
        Move.EXPIRE_ORIGINAL,
        now,
        jobs=(JobWrite(job.id, job.workspace_id, guard=guard(Move.EXPIRE_ORIGINAL, None), changes=changes),),
    )


# --- the segmented path --------------------------------------------------------------------------


def plan(
    ref: QueueMessage,
    plan_json: str,
    words: str,
    tasks: int,
    segments: int,
    now: datetime,
    lease_until: datetime,
) -> Transition:
    """Record the segment plan on the job (JSON) and in words on the attempt. A re-plan after a
    crash keeps the tasks already done."""
    return Transition(
        Move.PLAN,
        now,
        jobs=(
            JobWrite(
                ref.job_id,
                ref.workspace_id,
                guard=_processing(ref, Move.PLAN),
                changes={
                    "segment_plan": plan_json,
                    "segment_tasks": tasks,
                    "segments_total": segments,
                    "progress": 0.0,
                    "lease_until": lease_until,
                    "sweep_at": lease_until,
                },
            ),
        ),
        attempts=(
            AttemptWrite(
                ref.job_id, ref.attempt, outcomes=frozenset({Outcome.PROCESSING}), changes={"plan": words}
            ),
        ),
    )


def finish_task(ref: QueueMessage, task: int, now: datetime, lease_until: datetime) -> Transition:
    """One task recorded done, once however often SQS delivers it; every finished task renews the lease."""
    return Transition(
        Move.FINISH_TASK,
        now,
        jobs=(
            JobWrite(
                ref.job_id,
                ref.workspace_id,
                guard=_processing(ref, Move.FINISH_TASK, has_plan=True, task_not_done=task),
                changes={"updated_at": now, "lease_until": lease_until, "sweep_at": lease_until},
                add_task=task,
            ),
        ),
    )


def claim_stitch(ref: QueueMessage, now: datetime, until: datetime) -> Transition:
    """Only one caller stitches while its claim lasts; a crashed stitcher's claim runs out."""
    return Transition(
        Move.CLAIM_STITCH,
        now,
        jobs=(
            JobWrite(
                ref.job_id,
                ref.workspace_id,
                guard=_processing(ref, Move.CLAIM_STITCH, stitch_free_at=now),
                changes={"stitch_until": until, "lease_until": until, "sweep_at": until},
            ),
        ),
    )


def release_stitch(ref: QueueMessage, now: datetime) -> Transition:
    return _touch(ref, Move.RELEASE_STITCH, now, {"stitch_until": None})


def publish(ref: QueueMessage, before: int, after: int, index_key: str, now: datetime) -> Transition:
    """A long HLS video's first `after` video tasks are playable: `index_key` is the stream's index
    as far as they go, if exactly `before` were published. Publishers that race apply their step in
    turn, and what is published never goes back."""
    return Transition(
        Move.PUBLISH,
        now,
        jobs=(
            JobWrite(
                ref.job_id,
                ref.workspace_id,
                guard=_processing(ref, Move.PUBLISH, has_plan=True, published=before),
                changes={"hls_published": after, "stream_key": index_key, "updated_at": now},
            ),
        ),
    )
