"""Jobs: create with a presigned upload (one PUT, or a multipart upload in parts for a large
file: chalicelib.uploads), start (charge 1 credit and queue), read, list, download."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from chalicelib.domain import (
    VIDEO_TYPE_PATTERN,
    Attempt,
    Job,
    JobStatus,
    LedgerReason,
    Principal,
    RetryPricing,
    Trigger,
    new_id,
)
from chalicelib.errors import (
    JobNotCompletedError,
    JobNotFoundError,
    JobNotStartableError,
    PayloadTooLargeError,
    UploadIncompleteError,
    ValidationError,
)
from chalicelib.lifecycle import Release, project, transitions
from chalicelib.observability import count, logger
from chalicelib.processing.access import require_member, resolve_workspace, visible_job
from chalicelib.processing.contention import with_contention
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import Queued, dispatch
from chalicelib.processing.idempotency import Key
from chalicelib.processing.limits import check_rate
from chalicelib.processing.ports import PresignedRequest
from chalicelib.processing.pricing import pricing_of
from chalicelib.processing.storage import input_key
from chalicelib.uploads import service as uploads
from chalicelib.uploads.parts import Multipart

START_REFUND_MESSAGE = "Could not queue the job. Your credit was refunded."


@dataclass(frozen=True)
class NewUpload:
    job: Job
    upload: PresignedRequest | Multipart  # one PUT, or the parts to send (chalicelib.uploads)


@dataclass(frozen=True)
class JobDetail:
    job: Job
    attempts: list[Attempt]
    pricing: RetryPricing  # the workspace's: what a manual retry of the job would cost


@dataclass(frozen=True)
class JobList:
    jobs: list[Job]
    cursor: str | None
    pricing: RetryPricing


def create_job(
    svc: Services,
    principal: Principal,
    filename: str,
    content_type: str,
    size: int,
    workspace_id: str | None,
) -> NewUpload:
    """A job in `uploading`, and how to send its file: a presigned PUT, or (above
    UPLOAD_MULTIPART_THRESHOLD_BYTES) a multipart upload begun at R2. Nothing is charged yet: the
    caller's rate limit (RATE_LIMIT_REQUESTS per window) bounds how many they create."""
    check_rate(svc, principal, "create-job")
    if not re.fullmatch(VIDEO_TYPE_PATTERN, content_type):
        raise ValidationError(f"Only video files can be processed (got content type '{content_type}')")
    content_type = content_type.lower()
    if size <= 0:
        raise ValidationError("The file is empty (size must be greater than 0)")
    limit = svc.settings.upload_max_bytes
    if size > limit:
        raise PayloadTooLargeError(f"The file is too large: the limit is {_human(limit)}")
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    now = svc.clock()
    job_id = new_id()
    job = Job(
        id=job_id,
        workspace_id=membership.workspace_id,
        status=JobStatus.UPLOADING,
        original_filename=filename,
        content_type=content_type,
        size=size,
        input_file_key=input_key(membership.workspace_id, job_id),
        created_at=now,
        updated_at=now,
        created_by=principal.user_id,
    )
    if uploads.wants_parts(svc, size):
        job = uploads.begin(svc, job)
        svc.repo.commit(transitions.create_job(job))
        return NewUpload(job=job, upload=uploads.described(job))
    svc.repo.commit(transitions.create_job(job))
    upload = svc.store.presign_upload(
        job.input_file_key, content_type, size, svc.settings.upload_url_expiry_seconds
    )
    return NewUpload(job=job, upload=upload)


def start_job(
    svc: Services,
    principal: Principal,
    job_id: str,
    workspace_id: str | None,
    key: Key[Queued] | None = None,
) -> Queued:
    """Check the upload, then charge 1 credit and queue the first attempt in one transaction
    (whose conditions check the membership too), under the one contention policy."""
    return with_contention(lambda: _start_once(svc, principal, job_id, workspace_id, key))


def _start_once(
    svc: Services, principal: Principal, job_id: str, workspace_id: str | None, key: Key[Queued] | None
) -> Queued:
    job = svc.repo.get_job(job_id)
    if job is None or (workspace_id and job.workspace_id != workspace_id):
        raise JobNotFoundError()
    if job.status != JobStatus.UPLOADING:
        require_member(svc.repo, principal, job)
        raise JobNotStartableError(f"This job has already been started (status: {job.status.value})")
    stored = svc.store.head(job.input_file_key)
    if stored is None or stored.size != job.size:
        require_member(svc.repo, principal, job)
        if stored is None:
            raise UploadIncompleteError()
        raise UploadIncompleteError(
            f"The upload has {stored.size} bytes but {job.size} were declared. Upload the whole file again."
        )
    now = svc.clock()
    started = transitions.start(job, principal.user_id, now, cap=svc.settings.max_active_jobs)
    queued = project(job, started)
    if key:
        started = dataclasses.replace(started, answer=key.answer(svc, Queued(queued)))
    svc.repo.commit(started)
    release = Release(key.record_id, whole=True) if key else None
    attempt = started.attempts[0].create
    assert attempt is not None
    sent = dispatch(
        svc, queued, attempt, LedgerReason.START_REFUND, START_REFUND_MESSAGE, principal.user_id, release
    )
    count("JobsStarted", trigger=Trigger.INITIAL.value)
    logger().info("job started", extra={"job_id": job.id, "workspace_id": job.workspace_id})
    return Queued(queued, sent)


def get_job(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> JobDetail:
    job = visible_job(svc.repo, principal, job_id, workspace_id)
    return JobDetail(
        job=job, attempts=svc.repo.attempts_of(job.id), pricing=_pricing(svc, job.workspace_id, [job])
    )


def list_jobs(
    svc: Services,
    principal: Principal,
    workspace_id: str | None,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
) -> JobList:
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    limit = max(1, min(limit, svc.settings.jobs_page_max))
    page = svc.repo.list_jobs(membership.workspace_id, status, limit, cursor)
    return JobList(
        jobs=page.jobs, cursor=page.cursor, pricing=_pricing(svc, membership.workspace_id, page.jobs)
    )


def _pricing(svc: Services, workspace_id: str, shown: list[Job]) -> RetryPricing:
    """The workspace's retry pricing; read only when a failed job is shown (a retry price to state)."""
    if not any(job.status == JobStatus.FAILED for job in shown):
        return svc.settings.retry_pricing
    return pricing_of(svc, svc.repo.get_workspace(workspace_id))


def download_url(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> str:
    job = visible_job(svc.repo, principal, job_id, workspace_id)
    if job.status != JobStatus.COMPLETED or not job.output_file_key:
        raise JobNotCompletedError()
    return svc.store.presign_download(
        job.output_file_key, svc.settings.download_url_expiry_seconds, filename=_output_name(job)
    )


def _output_name(job: Job) -> str:
    stem = job.original_filename.rsplit(".", 1)[0] or "video"
    return f"{stem}.mp4"


def _human(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
