"""Between domain dataclasses and pynamodb models; pagination cursors."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.exceptions import QueryError
from pynamodb.pagination import ResultIterator

from chalicelib.adapters.dynamodb.models import (
    AttemptModel,
    JobModel,
    LedgerModel,
    MemberModel,
    PaymentModel,
    WorkspaceModel,
)
from chalicelib.domain import (
    CURSOR_PATTERN,
    DEFAULT_PRESET,
    Attempt,
    FreeRetry,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    Outcome,
    PaymentEvent,
    Preset,
    Purchase,
    RetryPricing,
    Role,
    Trigger,
    Workspace,
    utcnow,
)
from chalicelib.errors import ServiceUnavailableError, ValidationError


def created_key(created_at: datetime, job_id: str) -> str:
    return f"{created_at.isoformat()}#{job_id}"


def ws_status(workspace_id: str, status: str) -> str:
    return f"{workspace_id}#{status}"


def job_from(m: JobModel) -> Job:
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
        lease_owner=m.leaseOwner,
        sweep_at=m.sweepAt,
        segment_plan=m.segPlan,
        segment_tasks=int(m.segTasks) if m.segTasks is not None else None,
        segments_total=int(m.segTotal) if m.segTotal is not None else None,
        tasks_done=frozenset(int(t) for t in m.segDone or ()),
        stitch_until=m.stitchUntil,
        auto_attempts=int(m.autoAttempts or 0),
        next_attempt_at=m.nextAttemptAt,
        charged_attempt=int(m.chargedAttempt or 0),
        # A job written before creditsPaid was kept: a started one paid its start.
        credits_paid=int(m.creditsPaid) if m.creditsPaid is not None else min(int(m.attempt), 1),
        free_retry=FreeRetry(m.freeRetry) if m.freeRetry else FreeRetry.AVAILABLE,
        preset=_preset(m.preset) or DEFAULT_PRESET,
        output_width=_int(m.outWidth),
        output_height=_int(m.outHeight),
        output_duration=float(m.outDuration) if m.outDuration is not None else None,
        output_size=_int(m.outSize),
        poster_key=m.posterKey,
        thumbnails_key=m.thumbsKey,
        stream_key=m.streamKey,
        hls_published=int(m.hlsPublished or 0),
        pending_filename=m.pendingFilename,
        pending_content_type=m.pendingContentType,
        pending_size=_int(m.pendingSize),
        original_deleted_at=m.originalDeletedAt,
        upload_id=m.uploadId,
        part_size=int(m.partSize) if m.partSize is not None else None,
    )


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _preset(value: str | None) -> Preset | None:
    """A stored preset; one this version does not know (a newer writer's) reads as none."""
    return Preset(value) if value in tuple(Preset) else None


def job_model(job: Job) -> JobModel:
    return JobModel(
        id=job.id,
        workspaceId=job.workspace_id,
        status=job.status.value,
        wsStatus=ws_status(job.workspace_id, job.status.value),
        createdKey=created_key(job.created_at, job.id),
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
        creditsPaid=job.credits_paid,
        preset=job.preset.value,
        hlsPublished=job.hls_published,
        sweepAt=job.sweep_at,
        uploadId=job.upload_id,
        partSize=job.part_size,
    )


def workspace_from(m: WorkspaceModel) -> Workspace:
    pricing = m.retryPricing if m.retryPricing in tuple(RetryPricing) else None
    return Workspace(
        id=m.id,
        name=m.name,
        credits=int(m.credits),
        retry_pricing=RetryPricing(pricing) if pricing else None,
        preset=_preset(m.preset),
        keep_originals_days=int(m.keepOriginalsDays) if m.keepOriginalsDays is not None else None,
        active_jobs=int(m.activeJobs or 0),
    )


def workspace_model(workspace: Workspace, created_at: datetime) -> WorkspaceModel:
    return WorkspaceModel(
        id=workspace.id,
        name=workspace.name,
        credits=workspace.credits,
        createdAt=created_at,
        retryPricing=workspace.retry_pricing.value if workspace.retry_pricing else None,
        preset=workspace.preset.value if workspace.preset else None,
        activeJobs=workspace.active_jobs or None,
    )


def membership_from(m: MemberModel) -> Membership:
    return Membership(user_id=m.userId, workspace_id=m.workspaceId, role=Role(m.role), email=m.email)


def member_model(membership: Membership) -> MemberModel:
    return MemberModel(
        userId=membership.user_id,
        workspaceId=membership.workspace_id,
        role=membership.role.value,
        email=membership.email,
    )


def attempt_from(m: AttemptModel) -> Attempt:
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
        plan=m.plan,
        refunded=bool(m.refunded),
        preset=_preset(m.preset) or DEFAULT_PRESET,
    )


def attempt_model(a: Attempt) -> AttemptModel:
    return AttemptModel(
        jobId=a.job_id,
        n=a.n,
        trigger=a.trigger.value,
        creditsCharged=a.credits_charged,
        requestedBy=a.requested_by,
        queuedAt=a.queued_at,
        outcome=a.outcome.value,
        preset=a.preset.value,
    )


# The attribute each domain field a transition may change is stored in (chalicelib.lifecycle
# names the domain's fields; tests/unit/test_lifecycle.py checks every one has its attribute).
JOB_ATTRIBUTES: dict[str, Attribute[Any]] = {
    "status": JobModel.status,
    "output_file_key": JobModel.outputFileKey,
    "error": JobModel.error,
    "error_code": JobModel.errorCode,
    "updated_at": JobModel.updatedAt,
    "completed_at": JobModel.completedAt,
    "attempt": JobModel.attempt,
    "retry_count": JobModel.retryCount,
    "progress": JobModel.progress,
    "dispatched_at": JobModel.dispatchedAt,
    "resends": JobModel.resends,
    "lease_until": JobModel.leaseUntil,
    "lease_owner": JobModel.leaseOwner,
    "sweep_at": JobModel.sweepAt,
    "segment_plan": JobModel.segPlan,
    "segment_tasks": JobModel.segTasks,
    "segments_total": JobModel.segTotal,
    "tasks_done": JobModel.segDone,
    "stitch_until": JobModel.stitchUntil,
    "auto_attempts": JobModel.autoAttempts,
    "next_attempt_at": JobModel.nextAttemptAt,
    "charged_attempt": JobModel.chargedAttempt,
    "credits_paid": JobModel.creditsPaid,
    "free_retry": JobModel.freeRetry,
    "preset": JobModel.preset,
    "output_width": JobModel.outWidth,
    "output_height": JobModel.outHeight,
    "output_duration": JobModel.outDuration,
    "output_size": JobModel.outSize,
    "poster_key": JobModel.posterKey,
    "thumbnails_key": JobModel.thumbsKey,
    "stream_key": JobModel.streamKey,
    "hls_published": JobModel.hlsPublished,
    "pending_filename": JobModel.pendingFilename,
    "pending_content_type": JobModel.pendingContentType,
    "pending_size": JobModel.pendingSize,
    # a replacement file taken by a retry
    "original_filename": JobModel.originalFilename,
    "content_type": JobModel.contentType,
    "size": JobModel.size,
    "original_deleted_at": JobModel.originalDeletedAt,
}
ATTEMPT_ATTRIBUTES: dict[str, Attribute[Any]] = {
    "outcome": AttemptModel.outcome,
    "started_at": AttemptModel.startedAt,
    "finished_at": AttemptModel.finishedAt,
    "error": AttemptModel.error,
    "error_code": AttemptModel.errorCode,
    "stderr_tail": AttemptModel.stderrTail,
    "plan": AttemptModel.plan,
    "refunded": AttemptModel.refunded,
}
WORKSPACE_ATTRIBUTES: dict[str, Attribute[Any]] = {
    "retry_pricing": WorkspaceModel.retryPricing,
    "preset": WorkspaceModel.preset,
    "keep_originals_days": WorkspaceModel.keepOriginalsDays,
}


def stored(value: Any) -> Any:
    """A domain value as its attribute stores it (None and an empty set: no attribute)."""
    if isinstance(value, frozenset | set):
        return set(value) or None
    if isinstance(value, enum.Enum):
        return value.value
    return value


def ledger_model(e: LedgerEntry) -> LedgerModel:
    return LedgerModel(
        workspaceId=e.workspace_id,
        entryKey=f"{e.created_at.isoformat()}#{e.id}",
        id=e.id,
        delta=e.delta,
        reason=e.reason.value,
        jobId=e.job_id,
        actor=e.actor,
        createdAt=e.created_at,
        sessionId=e.session_id,
        paymentId=e.payment_id,
    )


def ledger_from(m: LedgerModel) -> LedgerEntry:
    return LedgerEntry(
        workspace_id=m.workspaceId,
        delta=int(m.delta),
        reason=LedgerReason(m.reason),
        job_id=m.jobId,
        actor=m.actor,
        created_at=m.createdAt,
        id=m.id,
        session_id=m.sessionId,
        payment_id=m.paymentId,
    )


# The payments table's keys: one item per event, per purchase (its Checkout session), per payment.
def event_key(event_id: str) -> str:
    return f"event#{event_id}"


def session_key(session_id: str) -> str:
    return f"session#{session_id}"


def payment_key(payment_id: str) -> str:
    return f"payment#{payment_id}"


def event_model(event: PaymentEvent) -> PaymentModel:
    return PaymentModel(id=event_key(event.id), eventType=event.type, createdAt=event.created_at)


def purchase_model(p: Purchase) -> PaymentModel:
    return PaymentModel(
        id=session_key(p.session_id),
        workspaceId=p.workspace_id,
        pack=p.pack,
        credits=p.credits,
        amount=p.amount,
        currency=p.currency,
        paymentId=p.payment_id,
        buyer=p.buyer,
        eventId=p.event_id,
        createdAt=p.created_at,
        reversedCredits=p.reversed_credits,
    )


def payment_model(p: Purchase) -> PaymentModel:
    """The pointer from a payment to the purchase it paid for (refunds and disputes name payments)."""
    assert p.payment_id is not None
    return PaymentModel(id=payment_key(p.payment_id), sessionId=p.session_id, createdAt=p.created_at)


def purchase_from(m: PaymentModel) -> Purchase:
    return Purchase(
        session_id=m.id.removeprefix("session#"),
        workspace_id=m.workspaceId or "",
        pack=m.pack or "",
        credits=int(m.credits or 0),
        amount=int(m.amount or 0),
        currency=m.currency or "",
        payment_id=m.paymentId,
        buyer=m.buyer or "",
        event_id=m.eventId or "",
        created_at=m.createdAt,
        reversed_credits=int(m.reversedCredits or 0),
    )


_UTC_SEP, _URL_SEP = "+00:00#", "Z_"  # a sort key's `+00:00#` is `Z_` in a cursor (URL-safe)


def encode_cursor(key: dict[str, Any] | None, sort_key: str) -> str | None:
    """A page's cursor: the sort key of its last item (`<ISO time>#<uuid>`, CURSOR_PATTERN).

    The rest of DynamoDB's LastEvaluatedKey follows from the request (workspace, status) and
    from the sort key itself (a job's id is its suffix), so every string of that shape is a
    cursor the API accepts, and nothing else is.
    """
    if not key:
        return None
    return str(key[sort_key]["S"]).replace(_UTC_SEP, _URL_SEP, 1)


def decode_cursor(cursor: str | None, sort_key: str, **partition: str) -> dict[str, Any] | None:
    """The ExclusiveStartKey a cursor stands for (the query's partition values in `partition`);
    no cursor is the first page, an empty one is not a cursor."""
    if cursor is None:
        return None
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ValidationError("The cursor is not valid")
    key = {name: {"S": value} for name, value in partition.items()}
    key[sort_key] = {"S": cursor.replace(_URL_SEP, _UTC_SEP, 1)}
    return key


def now_of(entry: LedgerEntry | None) -> datetime:
    return entry.created_at if entry else utcnow()


def page_of(result: ResultIterator[Any], limit: int) -> tuple[list[Any], dict[str, Any] | None]:
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
