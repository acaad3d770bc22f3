"""Where a job's files live in R2, and the upload as a worker reads it.

Shared by both ways of processing an attempt (chalicelib.processing.single_pass and
chalicelib.processing.segmented): the keys follow from the job's ids alone, so a worker never
reads the job to find them.
"""

from __future__ import annotations

from chalicelib.domain import Job, JobStatus, QueueMessage
from chalicelib.errors import DownloadError, InputMissingError, StorageError
from chalicelib.observability import logger
from chalicelib.processing.context import Services
from chalicelib.processing.ports import StoredObject


def input_key(workspace_id: str, job_id: str) -> str:
    """Where the upload lives. Never contains the client's filename."""
    return f"uploads/{workspace_id}/{job_id}/source"


def output_key(workspace_id: str, job_id: str, attempt: int) -> str:
    """An MP4 preset's output."""
    return f"outputs/{workspace_id}/{job_id}/attempt-{attempt}.mp4"


def outputs_prefix(workspace_id: str, job_id: str) -> str:
    """Everything a job's attempts stored for the person (deleted when the job is cancelled)."""
    return f"outputs/{workspace_id}/{job_id}/"


def media_prefix(workspace_id: str, job_id: str, attempt: int) -> str:
    """Beside the output: the poster, the thumbnails and their index; for HLS, the package (the
    download, whose byte ranges are the segments) and the stream's index."""
    return f"{outputs_prefix(workspace_id, job_id)}attempt-{attempt}/"


def segments_prefix(workspace_id: str, job_id: str) -> str:
    """Where a long video's encoded parts wait to be stitched (kept across the job's attempts)."""
    return f"work/{workspace_id}/{job_id}/"


def stored_input(svc: Services, key: str) -> StoredObject:
    """The upload a worker is about to read, as worker failures name it: storage trouble is the
    platform's (DownloadError), a missing object the input's (InputMissingError)."""
    try:
        stored = svc.store.head(key)
    except StorageError as exc:
        raise DownloadError(detail=repr(exc)) from exc
    if stored is None:
        raise InputMissingError(detail=f"missing object {key}")
    return stored


def source_url(svc: Services, key: str) -> str:
    """A presigned URL ffmpeg reads the upload through (it must exist)."""
    stored_input(svc, key)
    return svc.store.presign_download(key, svc.settings.transcode_timeout_seconds + 300)


def remove(svc: Services, key_or_prefix: str) -> None:
    """Delete objects no attempt needs any more; best effort (R2's lifecycle rules remove what
    this misses)."""
    try:
        svc.store.delete_prefix(key_or_prefix)
    except StorageError:
        logger().warning("could not delete left-over objects", extra={"prefix": key_or_prefix})


def discard_upload(svc: Services, job: Job) -> None:
    """Whatever R2 holds of an upload no attempt will read (its job cancelled while uploading): a
    multipart upload's parts, or the object. Best effort: R2's lifecycle rules abort what this
    misses (infra/r2-lifecycle.json)."""
    try:
        if job.upload_id is not None:
            svc.store.abort_multipart(job.input_file_key, job.upload_id)
    except StorageError:
        logger().warning("could not abort a multipart upload", extra={"job_id": job.id})
    remove(svc, job.input_file_key)


def discard_if_cancelled(svc: Services, ref: QueueMessage, *keys: str) -> bool:
    """Delete what a worker wrote for a job that was cancelled meanwhile (its output, its
    segment parts); True when it was. A job whose attempt moved on for another reason keeps
    them: another worker may own the same output key, and the next attempt reuses the parts."""
    job = svc.repo.get_job(ref.job_id)
    if job is None or job.status != JobStatus.CANCELLED:
        return False
    for key in keys:
        remove(svc, key)
    return True
