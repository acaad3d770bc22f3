"""Where a job's files live in R2, and the upload as a worker reads it.

Shared by both ways of processing an attempt (chalicelib.processing.single_pass and
chalicelib.processing.segmented): the keys follow from the job's ids alone, so a worker never
reads the job to find them. The attempt's upload is opened once (`opened_input`) for whatever
reads it: the probe that chooses the way, then, for one pass, ffmpeg.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from chalicelib.domain import Job, JobStatus, QueueMessage
from chalicelib.errors import DownloadError, InputMissingError, StorageError
from chalicelib.observability import count, logger, segment
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


@dataclass(frozen=True)
class Input:
    """An attempt's upload as this worker reads it: `url` is what a probe reads (the local
    stream, or the presigned URL); `read_all()` says the whole file will be read (one pass) and
    returns where ffmpeg reads it from; `arrived()` raises DownloadError when it did not all
    arrive (ffmpeg may end a cut-off input without an error)."""

    key: str
    size: int
    url: str
    read_all: Callable[[], str]
    arrived: Callable[[], None] = lambda: None
    stored: StoredObject | None = None  # what the HEAD said (size, ETag: a plan's fingerprint)


@contextlib.contextmanager
def opened_input(svc: Services, ref: QueueMessage) -> Iterator[Input]:
    """The attempt's upload, by TRANSCODE_INPUT: `stream` (ffmpeg reads a local range server
    while parallel ranged GETs fill it, chalicelib.processing.streaming_input), `download` (a
    copy in WORK_DIR first) or `url` (the presigned URL itself). Raises InputMissingError when the
    upload is not there, DownloadError when storage fails."""
    key = input_key(ref.workspace_id, ref.job_id)
    stored = stored_input(svc, key)
    settings = svc.settings
    with tempfile.TemporaryDirectory(prefix="input-", dir=settings.work_dir) as tmp:
        local = Path(tmp) / "input"
        if settings.transcode_input == "stream":
            from chalicelib.processing import streaming_input  # an HTTP server: the worker's alone

            fetch = functools.partial(svc.store.read_range, key)
            with streaming_input.opened(fetch, stored.size, local) as stream:

                def read_all() -> str:
                    stream.read_ahead()
                    return stream.url

                try:
                    yield Input(key, stored.size, stream.url, read_all, stream.arrived, stored)
                finally:
                    count("InputWaitSeconds", stream.waited_seconds)
            return
        url = svc.store.presign_download(key, settings.transcode_timeout_seconds + 300)
        if settings.transcode_input == "url":
            yield Input(key, stored.size, url, lambda: url, stored=stored)
        else:
            yield Input(key, stored.size, url, lambda: _download(svc, key, stored.size, local), stored=stored)


def _download(svc: Services, key: str, size: int, local: Path) -> str:
    started = time.monotonic()
    try:
        with segment("download"):
            svc.store.download_file(key, local, size)
    except StorageError as exc:
        raise DownloadError(detail=repr(exc)) from exc
    count("DownloadSeconds", time.monotonic() - started)
    return str(local)


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
