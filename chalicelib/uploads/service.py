"""Multipart uploads: begin one for a new job, presign its parts, list what R2 holds, complete it,
abort it, and expire it when it is left unfinished.

What R2 holds is the truth: listing and completing read the parts from R2 (ListParts), never
from the client, and completing refuses parts that do not add up to the declared file. None of
this charges anything: `POST /jobs/{id}/start` does, after a HEAD of the completed object, as for
a single PUT. An upload left unfinished is aborted by the sweeper once it is due (`sweep_at`,
UPLOAD_MULTIPART_EXPIRY_SECONDS after it began) and its job fails with UPLOAD_EXPIRED: the user
did not stop it (that would be `cancelled`), it did not arrive, and the job says why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain import Job, JobStatus, Principal
from chalicelib.errors import (
    NotUploadingError,
    PartsIncompleteError,
    UploadExpiredError,
    UploadGoneError,
    ValidationError,
)
from chalicelib.lifecycle import RecordedError, project, transitions
from chalicelib.observability import count, logger
from chalicelib.processing.access import visible_job
from chalicelib.processing.cancel import cancel_job
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.ports import PresignedRequest, StoredPart
from chalicelib.uploads.parts import SIGN_BATCH_MAX, Multipart, Plan, check, part_size_for


@dataclass(frozen=True)
class SignedParts:
    parts: list[tuple[int, PresignedRequest]]  # (part number, its PUT)
    expires_at: datetime


@dataclass(frozen=True)
class Progress:
    """An upload as R2 holds it: the parts stored so far, or `completed` (joined into the object)."""

    job: Job
    plan: Plan
    parts: list[StoredPart]
    completed: bool = False


def wants_parts(svc: Services, size: int) -> bool:
    return size > svc.settings.upload_multipart_threshold_bytes


def begin(svc: Services, job: Job) -> Job:
    """`job` with a new multipart upload at R2: its part size chosen, and due to be swept (aborted
    if still unfinished) UPLOAD_MULTIPART_EXPIRY_SECONDS after it was created."""
    part_size = part_size_for(job.size, svc.settings.upload_part_bytes)
    upload_id = svc.store.start_multipart(job.input_file_key, job.content_type)
    due = job.created_at + timedelta(seconds=svc.settings.upload_multipart_expiry_seconds)
    return dataclasses.replace(job, upload_id=upload_id, part_size=part_size, sweep_at=due)


def described(job: Job) -> Multipart:
    """What a client needs to know to send the parts."""
    assert job.sweep_at is not None
    return Multipart(plan=plan_of(job), expires_at=job.sweep_at)


def plan_of(job: Job) -> Plan:
    assert job.part_size is not None
    return Plan(size=job.size, part_size=job.part_size)


def sign_parts(
    svc: Services, principal: Principal, job_id: str, workspace_id: str | None, numbers: Sequence[int]
) -> SignedParts:
    """A presigned PUT per part asked for (at most SIGN_BATCH_MAX), each with its exact size
    signed in. A number outside the upload's parts is refused: nothing is signed."""
    job = _uploading(svc, principal, job_id, workspace_id)
    plan = plan_of(job)
    if not numbers or len(numbers) > SIGN_BATCH_MAX:
        raise ValidationError(f"Ask for 1 to {SIGN_BATCH_MAX} parts at a time")
    forged = sorted({n for n in numbers if not 1 <= n <= plan.count})
    if forged:
        raise ValidationError(
            f"This upload has parts 1 to {plan.count}: there is no part {', '.join(map(str, forged[:5]))}"
        )
    now = svc.clock()
    if job.sweep_at is not None and job.sweep_at <= now:
        raise _gone(svc)
    assert job.upload_id is not None
    expires = svc.settings.upload_url_expiry_seconds
    signed = [
        (n, svc.store.presign_part(job.input_file_key, job.upload_id, n, plan.size_of(n), expires))
        for n in dict.fromkeys(numbers)
    ]
    return SignedParts(parts=signed, expires_at=now + timedelta(seconds=expires))


def list_parts(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> Progress:
    """The parts R2 holds (a client resuming sends only the others)."""
    job = _uploading(svc, principal, job_id, workspace_id)
    assert job.upload_id is not None
    parts = svc.store.list_parts(job.input_file_key, job.upload_id)
    if parts is None:
        if not _joined(svc, job):
            raise _gone(svc)
        return Progress(job=job, plan=plan_of(job), parts=[], completed=True)
    return Progress(job=job, plan=plan_of(job), parts=parts)


def complete(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> Job:
    """Join the parts into the object, if R2 holds every one of them at its planned size.

    Safe to repeat: an upload already joined (its answer lost) is recorded as complete again.
    """
    job = _uploading(svc, principal, job_id, workspace_id)
    assert job.upload_id is not None
    plan = plan_of(job)
    parts = svc.store.list_parts(job.input_file_key, job.upload_id)
    if parts is None:
        if not _joined(svc, job):
            raise _gone(svc)
    else:
        verdict = check(parts, plan)
        if not verdict.ok:
            raise PartsIncompleteError(verdict.message(plan))
        svc.store.complete_multipart(job.input_file_key, job.upload_id, parts)
        count("UploadsCompleted")
    done = transitions.uploaded(job, svc.clock())
    if job.sweep_at is not None and not committed(svc.repo, done):
        raise NotUploadingError("This job stopped waiting for its upload while it was completed")
    return project(job, done)


def abort(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> Job:
    """Stop the upload: the job is cancelled (chalicelib.processing.cancel: nothing was charged,
    so nothing is refunded) and whatever R2 holds of it (parts, or the joined object) discarded."""
    job = visible_job(svc.repo, principal, job_id, workspace_id)
    if job.status != JobStatus.UPLOADING:
        raise NotUploadingError(f"Only an upload in progress can be aborted (status: {job.status.value})")
    cancelled = cancel_job(svc, principal, job.id, workspace_id)
    logger().info("upload aborted", extra={"job_id": job.id, "workspace_id": job.workspace_id})
    return cancelled.job


def expire(svc: Services, job: Job, now: datetime) -> bool:
    """The sweeper's step for an upload still unfinished at its `sweep_at`: abort it at R2, then
    fail the job with UPLOAD_EXPIRED (conditional on it still being due and uploading). An upload
    that was joined after all (its completion's record lost) is recorded as complete instead."""
    if _joined(svc, job):
        committed(svc.repo, transitions.uploaded(job, now))
        return False
    if job.upload_id is not None:
        svc.store.abort_multipart(job.input_file_key, job.upload_id)
    error = RecordedError(_expired_message(svc), UploadExpiredError.code)
    if not committed(svc.repo, transitions.expire_upload(job, error, now)):
        return False
    count("UploadsExpired")
    logger().info("unfinished upload expired", extra={"job_id": job.id, "workspace_id": job.workspace_id})
    return True


def _uploading(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> Job:
    job = visible_job(svc.repo, principal, job_id, workspace_id)
    if job.status != JobStatus.UPLOADING:
        raise NotUploadingError(f"This job is no longer waiting for its upload (status: {job.status.value})")
    if not job.multipart:
        raise NotUploadingError(
            "This job's file is sent in one PUT to the URL its creation returned, not in parts"
        )
    return job


def _joined(svc: Services, job: Job) -> bool:
    """The upload's object exists with the declared size: its parts were joined."""
    stored = svc.store.head(job.input_file_key)
    return stored is not None and stored.size == job.size


def _gone(svc: Services) -> UploadGoneError:
    return UploadGoneError(_expired_message(svc))


def _expired_message(svc: Services) -> str:
    return (
        f"The upload was not finished within {_duration(svc.settings.upload_multipart_expiry_seconds)} "
        "and was discarded. Choose the video again to upload it."
    )


def _duration(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} seconds"  # (unreachable: every whole number of seconds ends above)
