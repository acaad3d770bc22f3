"""DynamoDB through pynamodb: the tables, and the repository that owns every write.

Each state change that touches more than one item is ONE TransactWriteItems call built here,
with its conditions as pynamodb expressions. When DynamoDB cancels a transaction, the
CancellationReasons (one per item, in request order) say which condition failed, and that is
what decides the domain error: the item is never read again to guess.

Table names come from settings (`TABLE_PREFIX`); `bind()` applies them on first use, so
importing this module creates no client and reads no environment.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PynamoDBException, QueryError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from chalicelib.config import Settings, get_settings
from chalicelib.domain import (
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    Outcome,
    QueueMessage,
    Role,
    Trigger,
    Workspace,
    utcnow,
)
from chalicelib.errors import (
    ConflictError,
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobNotStartableError,
    JobsChangedError,
    ServiceUnavailableError,
    TransactionConflictError,
    ValidationError,
)
from chalicelib.processing.ports import LedgerPage, Page, RetryPlan

# --- Models ------------------------------------------------------------------------------------


class _Base(Model):
    class Meta:
        abstract = True
        table_name = "unbound"
        region = "us-east-1"
        billing_mode = "PAY_PER_REQUEST"
        max_pool_connections = 50


class WorkspaceModel(_Base):
    class Meta(_Base.Meta):
        kind = "workspaces"

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    credits = NumberAttribute()
    createdAt = UTCDateTimeAttribute()


class MemberModel(_Base):
    class Meta(_Base.Meta):
        kind = "members"

    userId = UnicodeAttribute(hash_key=True)
    workspaceId = UnicodeAttribute(range_key=True)
    role = UnicodeAttribute()
    email = UnicodeAttribute(default="")


class _JobsByWorkspace(GlobalSecondaryIndex["JobModel"]):
    class Meta:
        index_name = "by-workspace"
        projection = AllProjection()

    workspaceId = UnicodeAttribute(hash_key=True)
    createdKey = UnicodeAttribute(range_key=True)


class _JobsByWorkspaceStatus(GlobalSecondaryIndex["JobModel"]):
    class Meta:
        index_name = "by-workspace-status"
        projection = AllProjection()

    wsStatus = UnicodeAttribute(hash_key=True)
    createdKey = UnicodeAttribute(range_key=True)


class _JobsToSweep(GlobalSecondaryIndex["JobModel"]):
    """Sparse: only queued and processing jobs carry `sweepAt`."""

    class Meta:
        index_name = "to-sweep"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    sweepAt = UTCDateTimeAttribute(range_key=True)


class JobModel(_Base):
    class Meta(_Base.Meta):
        kind = "jobs"

    id = UnicodeAttribute(hash_key=True)
    workspaceId = UnicodeAttribute()
    status = UnicodeAttribute()
    wsStatus = UnicodeAttribute()
    createdKey = UnicodeAttribute()
    originalFilename = UnicodeAttribute()
    contentType = UnicodeAttribute()
    size = NumberAttribute()
    inputFileKey = UnicodeAttribute()
    outputFileKey = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    errorCode = UnicodeAttribute(null=True)
    createdAt = UTCDateTimeAttribute()
    updatedAt = UTCDateTimeAttribute()
    completedAt = UTCDateTimeAttribute(null=True)
    createdBy = UnicodeAttribute(default="")
    attempt = NumberAttribute(default=0)
    retryCount = NumberAttribute(default=0)
    progress = NumberAttribute(null=True)
    dispatchedAt = UTCDateTimeAttribute(null=True)
    resends = NumberAttribute(default=0)
    leaseUntil = UTCDateTimeAttribute(null=True)
    sweepAt = UTCDateTimeAttribute(null=True)

    by_workspace = _JobsByWorkspace()
    by_workspace_status = _JobsByWorkspaceStatus()
    to_sweep = _JobsToSweep()


class AttemptModel(_Base):
    class Meta(_Base.Meta):
        kind = "attempts"

    jobId = UnicodeAttribute(hash_key=True)
    n = NumberAttribute(range_key=True)
    trigger = UnicodeAttribute()
    creditsCharged = NumberAttribute()
    requestedBy = UnicodeAttribute(default="")
    queuedAt = UTCDateTimeAttribute()
    outcome = UnicodeAttribute()
    startedAt = UTCDateTimeAttribute(null=True)
    finishedAt = UTCDateTimeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    errorCode = UnicodeAttribute(null=True)
    stderrTail = UnicodeAttribute(null=True)


class LedgerModel(_Base):
    class Meta(_Base.Meta):
        kind = "ledger"

    workspaceId = UnicodeAttribute(hash_key=True)
    entryKey = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    delta = NumberAttribute()
    reason = UnicodeAttribute()
    jobId = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(default="")
    createdAt = UTCDateTimeAttribute()


MODELS: tuple[type[_Base], ...] = (WorkspaceModel, MemberModel, JobModel, AttemptModel, LedgerModel)
IDEMPOTENCY_KIND = "idempotency"
_FINISH_TRIES = 4


_shared: Connection | None = None


def bind(settings: Settings | None = None) -> Connection:
    """Point every model at its table for these settings, all on ONE connection, and return it.

    pynamodb gives each model its own Connection, and each builds its own botocore client from a
    new session (about 50 ms each, far more when request threads build them at once). One shared
    client serves every table and the transactions.
    """
    global _shared
    settings = settings or get_settings()
    shared = Connection(region=settings.aws_region, max_pool_connections=50)
    for model in MODELS:
        model.Meta.table_name = settings.table_name(model.Meta.kind)  # type: ignore[attr-defined]
        model.Meta.region = settings.aws_region
        model._connection = None
        table = model._get_connection()
        shared.add_meta_table(table.get_meta_table())
        table.connection = shared
    _shared = shared
    return shared


def _connection() -> Connection:
    return _shared or bind()


def create_tables(settings: Settings | None = None) -> None:
    """Create every table (and the idempotency table) if missing; wait until they are active."""
    settings = settings or get_settings()
    bind(settings)
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
    _create_idempotency_table(settings)


def _create_idempotency_table(settings: Settings) -> None:
    # Powertools' DynamoDBPersistenceLayer schema: partition key `id`, TTL on `expiration`.
    conn = Connection(region=settings.aws_region)
    name = settings.table_name(IDEMPOTENCY_KIND)
    try:
        conn.describe_table(name)
        return
    except PynamoDBException:
        pass
    conn.create_table(
        name,
        attribute_definitions=[{"attribute_name": "id", "attribute_type": "S"}],
        key_schema=[{"attribute_name": "id", "key_type": "HASH"}],
        billing_mode="PAY_PER_REQUEST",
    )


# --- Mapping -------------------------------------------------------------------------------------


def _created_key(created_at: datetime, job_id: str) -> str:
    return f"{created_at.isoformat()}#{job_id}"


def _ws_status(workspace_id: str, status: str) -> str:
    return f"{workspace_id}#{status}"


def _job_from(m: JobModel) -> Job:
    return Job(
        id=m.id,
        workspace_id=m.workspaceId,
        status=JobStatus(m.status),
        original_filename=m.originalFilename,
        content_type=m.contentType,
        size=int(m.size),
        input_file_key=m.inputFileKey,
        output_file_key=m.outputFileKey,
        error=m.error,
        error_code=m.errorCode,
        created_at=m.createdAt,
        updated_at=m.updatedAt,
        completed_at=m.completedAt,
        created_by=m.createdBy,
        attempt=int(m.attempt),
        retry_count=int(m.retryCount),
        progress=float(m.progress) if m.progress is not None else None,
        dispatched_at=m.dispatchedAt,
        resends=int(m.resends or 0),
        lease_until=m.leaseUntil,
    )


def _job_model(job: Job) -> JobModel:
    return JobModel(
        id=job.id,
        workspaceId=job.workspace_id,
        status=job.status.value,
        wsStatus=_ws_status(job.workspace_id, job.status.value),
        createdKey=_created_key(job.created_at, job.id),
        originalFilename=job.original_filename,
        contentType=job.content_type,
        size=job.size,
        inputFileKey=job.input_file_key,
        outputFileKey=job.output_file_key,
        error=job.error,
        errorCode=job.error_code,
        createdAt=job.created_at,
        updatedAt=job.updated_at,
        completedAt=job.completed_at,
        createdBy=job.created_by,
        attempt=job.attempt,
        retryCount=job.retry_count,
    )


def _attempt_from(m: AttemptModel) -> Attempt:
    return Attempt(
        job_id=m.jobId,
        n=int(m.n),
        trigger=Trigger(m.trigger),
        credits_charged=int(m.creditsCharged),
        requested_by=m.requestedBy,
        queued_at=m.queuedAt,
        outcome=Outcome(m.outcome),
        started_at=m.startedAt,
        finished_at=m.finishedAt,
        error=m.error,
        error_code=m.errorCode,
        stderr_tail=m.stderrTail,
    )


def _attempt_model(a: Attempt) -> AttemptModel:
    return AttemptModel(
        jobId=a.job_id,
        n=a.n,
        trigger=a.trigger.value,
        creditsCharged=a.credits_charged,
        requestedBy=a.requested_by,
        queuedAt=a.queued_at,
        outcome=a.outcome.value,
    )


def _ledger_model(e: LedgerEntry) -> LedgerModel:
    return LedgerModel(
        workspaceId=e.workspace_id,
        entryKey=f"{e.created_at.isoformat()}#{e.id}",
        id=e.id,
        delta=e.delta,
        reason=e.reason.value,
        jobId=e.job_id,
        actor=e.actor,
        createdAt=e.created_at,
    )


def _ledger_from(m: LedgerModel) -> LedgerEntry:
    return LedgerEntry(
        workspace_id=m.workspaceId,
        delta=int(m.delta),
        reason=LedgerReason(m.reason),
        job_id=m.jobId,
        actor=m.actor,
        created_at=m.createdAt,
        id=m.id,
    )


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValidationError("The cursor is not valid") from exc
    # A DynamoDB key: {"attr": {"S" | "N": "value"}, ...}. DynamoDB itself checks the rest.
    if not isinstance(key, dict) or not key or not all(_is_key_value(v) for v in key.values()):
        raise ValidationError("The cursor is not valid")
    return key


def _is_key_value(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("S", "N")
        and isinstance(next(iter(value.values())), str)
    )


# --- Transactions --------------------------------------------------------------------------


@dataclass
class _Tx:
    """A TransactWrite that remembers a label per item in the order DynamoDB will see them.

    pynamodb sends condition checks, deletes, puts and updates in that order, whatever the
    order of the calls; CancellationReasons follow the request order.
    """

    token: str | None = None
    puts: list[tuple[str, Model, Condition | None]] = field(default_factory=list)
    updates: list[tuple[str, Model, list[Any], Condition | None]] = field(default_factory=list)

    def put(self, label: str, model: Model, condition: Condition | None = None) -> None:
        self.puts.append((label, model, condition))

    def update(self, label: str, model: Model, actions: list[Any], condition: Condition | None) -> None:
        self.updates.append((label, model, actions, condition))

    def commit(self) -> None:
        """Run the transaction; on cancellation raise _Cancelled with the failed labels."""
        labels = [p[0] for p in self.puts] + [u[0] for u in self.updates]
        try:
            with TransactWrite(connection=_connection(), client_request_token=self.token) as tx:
                for _, model, condition in self.puts:
                    tx.save(model, condition=condition)
                for _, model, actions, condition in self.updates:
                    tx.update(model, actions=actions, condition=condition, add_version_condition=False)
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise ServiceUnavailableError("The database is unavailable. Try again shortly.") from exc
            failed = {
                labels[i]
                for i, reason in enumerate(exc.cancellation_reasons)
                if reason is not None and reason.code == "ConditionalCheckFailed"
            }
            if not failed:  # TransactionConflict: another transaction held an item
                raise TransactionConflictError() from exc
            raise _Cancelled(failed) from exc


class _Cancelled(Exception):
    def __init__(self, labels: set[str]) -> None:
        self.labels = labels
        super().__init__(", ".join(sorted(labels)))


# --- Repository ----------------------------------------------------------------------------


def _queued_actions(now: datetime, workspace_id: str) -> list[Any]:
    return [
        JobModel.status.set(JobStatus.QUEUED.value),
        JobModel.wsStatus.set(_ws_status(workspace_id, JobStatus.QUEUED.value)),
        JobModel.updatedAt.set(now),
        JobModel.dispatchedAt.set(now),
        JobModel.sweepAt.set(now),
        JobModel.resends.set(0),
        JobModel.leaseUntil.remove(),
        JobModel.progress.remove(),
    ]


class DynamoRepository:
    """The Repository port on DynamoDB."""

    def __init__(self, settings: Settings | None = None) -> None:
        # Build the client now: the first requests of a cold process would each build one.
        bind(settings).client  # noqa: B018

    # -- workspaces, members, credits ------------------------------------------------------
    def get_workspace(self, workspace_id: str) -> Workspace | None:
        try:
            m = WorkspaceModel.get(workspace_id, consistent_read=True)
        except DoesNotExist:
            return None
        return Workspace(id=m.id, name=m.name, credits=int(m.credits))

    def create_workspace(self, workspace: Workspace, entry: LedgerEntry | None) -> bool:
        """Create the workspace and its opening ledger entry; False if it already exists."""
        tx = _Tx()
        tx.put(
            "workspace",
            WorkspaceModel(
                id=workspace.id, name=workspace.name, credits=workspace.credits, createdAt=_now_of(entry)
            ),
            WorkspaceModel.id.does_not_exist(),
        )
        if entry is not None:
            tx.put("ledger", _ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        try:
            tx.commit()
        except _Cancelled:
            return False
        return True

    def memberships_of(self, user_id: str) -> list[Membership]:
        return [
            Membership(user_id=m.userId, workspace_id=m.workspaceId, role=Role(m.role), email=m.email)
            for m in MemberModel.query(user_id, consistent_read=True)
        ]

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        try:
            m = MemberModel.get(user_id, workspace_id, consistent_read=True)
        except DoesNotExist:
            return None
        return Membership(user_id=m.userId, workspace_id=m.workspaceId, role=Role(m.role), email=m.email)

    def put_membership(self, membership: Membership) -> None:
        MemberModel(
            userId=membership.user_id,
            workspaceId=membership.workspace_id,
            role=membership.role.value,
            email=membership.email,
        ).save()

    def change_credits(self, workspace_id: str, entry: LedgerEntry, expected: int | None = None) -> int:
        """Add entry.delta to the balance with its ledger entry, in one transaction.

        The balance never goes below 0; with `expected`, the balance must still be that value.
        Returns the new balance.
        """
        condition = WorkspaceModel.id.exists()
        if expected is not None:
            condition &= WorkspaceModel.credits == expected
        if entry.delta < 0:
            condition &= WorkspaceModel.credits >= -entry.delta
        tx = _Tx()
        tx.put("ledger", _ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        tx.update(
            "workspace",
            WorkspaceModel(id=workspace_id),
            [WorkspaceModel.credits.add(entry.delta)],
            condition,
        )
        try:
            tx.commit()
        except _Cancelled as exc:
            raise ConflictError("The balance changed or would go below 0; nothing was changed") from exc
        ws = self.get_workspace(workspace_id)
        return ws.credits if ws else 0

    def ledger(self, workspace_id: str, limit: int, cursor: str | None) -> LedgerPage:
        result = LedgerModel.query(
            workspace_id,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=_decode_cursor(cursor),
            consistent_read=True,
        )
        items, next_key = _page(result, limit)
        return LedgerPage(entries=[_ledger_from(m) for m in items], cursor=_encode_cursor(next_key))

    def ledger_sum(self, workspace_id: str) -> int:
        return sum(int(m.delta) for m in LedgerModel.query(workspace_id, consistent_read=True))

    # -- jobs -----------------------------------------------------------------------------
    def create_job(self, job: Job) -> None:
        _job_model(job).save(JobModel.id.does_not_exist())

    def get_job(self, job_id: str) -> Job | None:
        try:
            return _job_from(JobModel.get(job_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_jobs(self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None) -> Page:
        if status is None:
            result = JobModel.by_workspace.query(
                workspace_id, scan_index_forward=False, limit=limit, last_evaluated_key=_decode_cursor(cursor)
            )
        else:
            result = JobModel.by_workspace_status.query(
                _ws_status(workspace_id, status.value),
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=_decode_cursor(cursor),
            )
        items, next_key = _page(result, limit)
        return Page(jobs=[_job_from(m) for m in items], cursor=_encode_cursor(next_key))

    def attempts_of(self, job_id: str) -> list[Attempt]:
        return [_attempt_from(m) for m in AttemptModel.query(job_id, consistent_read=True)]

    def get_attempt(self, job_id: str, n: int) -> Attempt | None:
        try:
            return _attempt_from(AttemptModel.get(job_id, n, consistent_read=True))
        except DoesNotExist:
            return None

    # -- transitions ----------------------------------------------------------------------
    def start_job(self, job: Job, attempt: Attempt, entry: LedgerEntry, now: datetime) -> Job:
        """uploading → queued, credits −1, ledger entry and first attempt: one transaction."""
        tx = _Tx()
        tx.put("attempt", _attempt_model(attempt), AttemptModel.n.does_not_exist())
        tx.put("ledger", _ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        tx.update(
            "workspace",
            WorkspaceModel(id=job.workspace_id),
            [WorkspaceModel.credits.add(-1)],
            WorkspaceModel.credits >= 1,
        )
        tx.update(
            "job",
            JobModel(id=job.id),
            [*_queued_actions(now, job.workspace_id), JobModel.attempt.set(attempt.n)],
            (JobModel.status == JobStatus.UPLOADING.value) & (JobModel.attempt == job.attempt),
        )
        try:
            tx.commit()
        except _Cancelled as exc:
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
        tx = _Tx()
        for plan in plans:
            tx.put(
                f"attempt:{plan.job.id}", _attempt_model(plan.new_attempt), AttemptModel.n.does_not_exist()
            )
            tx.put(f"ledger:{plan.job.id}", _ledger_model(plan.entry), LedgerModel.entryKey.does_not_exist())
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
                    *_queued_actions(now, workspace_id),
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
        except _Cancelled as exc:
            lost = {label.split(":", 1)[1] for label in exc.labels if ":" in label}
            if lost:
                raise JobsChangedError(lost) from exc
            raise InsufficientCreditsForRetryError() from exc

    def undo_queueing(self, job: Job, entry: LedgerEntry, error: str, error_code: str, now: datetime) -> None:
        """The message could not be sent: refund (entry) and put the job back to failed."""
        tx = _Tx()
        tx.put("ledger", _ledger_model(entry), LedgerModel.entryKey.does_not_exist())
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
            [*_failed_actions(job.workspace_id, error, error_code, now)],
            (JobModel.status == JobStatus.QUEUED.value) & (JobModel.attempt == job.attempt),
        )
        try:
            tx.commit()
        except _Cancelled as exc:
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
            if _is_condition_failure(exc):
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
        tx = _Tx()
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
                JobModel.wsStatus.set(_ws_status(ref.workspace_id, JobStatus.PROCESSING.value)),
                JobModel.updatedAt.set(now),
                JobModel.leaseUntil.set(lease_until),
                JobModel.sweepAt.set(lease_until),
            ],
            fresh | stale,
        )
        try:
            tx.commit()
        except _Cancelled:
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
            if not _is_condition_failure(exc):
                raise ServiceUnavailableError() from exc

    def complete(self, ref: QueueMessage, output_key: str, now: datetime) -> bool:
        return self._finish(
            ref,
            now,
            job_actions=[
                JobModel.status.set(JobStatus.COMPLETED.value),
                JobModel.wsStatus.set(_ws_status(ref.workspace_id, JobStatus.COMPLETED.value)),
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
            job_actions=_failed_actions(ref.workspace_id, error, error_code, now),
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
        tx = _Tx()
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
        for attempt_no in range(_FINISH_TRIES):
            try:
                tx.commit()
                return True
            except _Cancelled:
                return False
            except TransactionConflictError:
                # Conditions are evaluated again on each try: re-running is safe.
                if attempt_no == _FINISH_TRIES - 1:
                    raise
                time.sleep(0.05 * (attempt_no + 1))
        return False

    # -- sweeper --------------------------------------------------------------------------
    def queued_not_dispatched_since(self, cutoff: datetime, limit: int) -> list[Job]:
        return [
            _job_from(m)
            for m in JobModel.to_sweep.query(JobStatus.QUEUED.value, JobModel.sweepAt < cutoff, limit=limit)
        ]

    def processing_lease_expired(self, now: datetime, limit: int) -> list[Job]:
        return [
            _job_from(m)
            for m in JobModel.to_sweep.query(JobStatus.PROCESSING.value, JobModel.sweepAt < now, limit=limit)
        ]


def _failed_actions(workspace_id: str, error: str, error_code: str, now: datetime) -> list[Any]:
    ws = workspace_id
    return [
        JobModel.status.set(JobStatus.FAILED.value),
        JobModel.wsStatus.set(_ws_status(ws, JobStatus.FAILED.value)),
        JobModel.error.set(error),
        JobModel.errorCode.set(error_code),
        JobModel.updatedAt.set(now),
        JobModel.leaseUntil.remove(),
        JobModel.sweepAt.remove(),
        JobModel.progress.remove(),
    ]


def _now_of(entry: LedgerEntry | None) -> datetime:
    return entry.created_at if entry else utcnow()


def _page(result: ResultIterator[Any], limit: int) -> tuple[list[Any], dict[str, Any] | None]:
    """Up to `limit` items and the key to go on from.

    A cursor is the client's: one that decodes but names no real key makes DynamoDB answer
    ValidationException, which is the client's mistake (400), not ours.
    """
    items: list[Any] = []
    try:
        for item in result:
            items.append(item)
            if len(items) >= limit:
                break
        return items, result.last_evaluated_key
    except QueryError as exc:
        if exc.cause_response_code == "ValidationException":
            raise ValidationError("The cursor is not valid") from exc
        raise ServiceUnavailableError("The database is unavailable. Try again shortly.") from exc


def _is_condition_failure(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"
