"""One attempt of one job: claim it, transcode with FFmpeg, store the result, record the outcome.

Claiming is a conditional transaction keyed by the attempt (queued → processing). A duplicate
delivery of an attempt that is running or finished claims nothing and does nothing: never a
second transcode, never a second charge. A claim whose lease ran out (the worker died) can be
taken again by a redelivery.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from chalicelib.domain import Job, QueueMessage
from chalicelib.errors import (
    DownloadError,
    InternalProcessingError,
    ProcessingError,
    ServiceUnavailableError,
    StorageError,
    UploadOutputError,
)
from chalicelib.observability import count, logger, segment
from chalicelib.processing import segmented
from chalicelib.processing.context import Services
from chalicelib.processing.jobs import output_key

PROGRESS_EVERY_SECONDS = 2.0


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to run: a duplicate, or an attempt that moved on
    PLANNED = "planned"  # a long video: its segment tasks are queued
    ENCODED = "encoded"  # one task of a segmented attempt is done; others remain


def process(svc: Services, ref: QueueMessage, receive_count: int = 1) -> Outcome:
    """Run the attempt (or the segment task) the message names.

    Raises only when the outcome could not be recorded, or (TaskRetryError) when a segment task
    failed for a system reason and SQS should deliver it again.
    """
    if ref.task is not None:
        return Outcome(segmented.run_task(svc, ref, receive_count))
    log = logger()
    now = svc.clock()
    job = svc.repo.claim(ref, now, now + timedelta(seconds=svc.settings.claim_lease_seconds))
    if job is None:
        log.info("attempt not claimable; skipping", extra=_keys(ref))
        return Outcome.SKIPPED
    log.info("attempt claimed", extra=_keys(ref))
    try:
        if _plan_if_long(svc, ref, job):
            return Outcome.PLANNED
        key = _transcode_and_store(svc, ref, job.input_file_key)
    except ProcessingError as error:
        return _record_failure(svc, ref, error)
    except ServiceUnavailableError as exc:
        return _record_failure(svc, ref, InternalProcessingError(detail=repr(exc)))
    if not svc.repo.complete(ref, key, svc.clock()):
        log.warning("attempt finished but no longer ours", extra=_keys(ref))
        return Outcome.SKIPPED
    count("JobsCompleted")
    log.info("job completed", extra={**_keys(ref), "output_key": key})
    return Outcome.COMPLETED


def _plan_if_long(svc: Services, ref: QueueMessage, job: Job) -> bool:
    """A video longer than the threshold goes in segments: plan it and queue its tasks."""
    if svc.segmenter is None:
        return False
    source = segmented.source_url(svc, job.input_file_key)
    if not segmented.wants_segments(svc, svc.segmenter.probe_duration(source)):
        return False
    segmented.plan_attempt(svc, ref, job, source)
    return True


def _transcode_and_store(svc: Services, ref: QueueMessage, input_key: str) -> str:
    if svc.transcoder is None:
        raise InternalProcessingError(detail="no transcoder configured")
    settings = svc.settings
    try:
        stored = svc.store.head(input_key)
    except StorageError as exc:
        raise DownloadError(detail=repr(exc)) from exc
    if stored is None:
        raise DownloadError(detail=f"missing object {input_key}")
    source = svc.store.presign_download(input_key, settings.transcode_timeout_seconds + 300)
    with tempfile.TemporaryDirectory(prefix="job-", dir=settings.work_dir) as tmp:
        target = Path(tmp) / "output.mp4"
        with segment("transcode"):
            result = svc.transcoder.transcode(source, target, on_progress=_progress_reporter(svc, ref))
        count("TranscodeSeconds", result.elapsed_seconds)
        key = output_key(ref.workspace_id, ref.job_id, ref.attempt)
        try:
            with segment("upload"):
                svc.store.upload_file(target, key, "video/mp4")
        except StorageError as exc:
            raise UploadOutputError(detail=repr(exc)) from exc
    return key


def _record_failure(svc: Services, ref: QueueMessage, error: ProcessingError) -> Outcome:
    recorded = svc.repo.fail(ref, error.message, error.code, error.detail or None, svc.clock())
    if not recorded:
        return Outcome.SKIPPED
    count("JobsFailed", errorCode=error.code)
    logger().warning("job failed", extra={**_keys(ref), "error_code": error.code, "error": error.message})
    return Outcome.FAILED


def _progress_reporter(svc: Services, ref: QueueMessage) -> Callable[[float], None]:
    last = -PROGRESS_EVERY_SECONDS

    def report(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_EVERY_SECONDS:
            return
        last = now
        with contextlib.suppress(ServiceUnavailableError):  # progress is a nicety; the transcode goes on
            svc.repo.set_progress(ref, fraction)

    return report


def _keys(ref: QueueMessage) -> dict[str, object]:
    return {"job_id": ref.job_id, "workspace_id": ref.workspace_id, "attempt": ref.attempt}
