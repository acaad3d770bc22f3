"""One attempt of one job: claim it, transcode with FFmpeg, store the result, record the outcome.

Claiming is a conditional transaction keyed by the attempt (queued → processing). A duplicate
delivery of an attempt that is running or finished claims nothing and does nothing: never a
second transcode, never a second charge. A claim whose lease ran out (the worker died) can be
taken again by a redelivery. While ffmpeg runs, a heartbeat renews the lease and the message's
visibility. A failure is settled by autoretry: a free automatic try, or the end.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chalicelib.domain import QueueMessage, new_id
from chalicelib.errors import (
    DownloadError,
    InternalProcessingError,
    ProcessingError,
    QueueSendError,
    ServiceUnavailableError,
    StorageError,
    UploadOutputError,
)
from chalicelib.lifecycle import transitions
from chalicelib.observability import count, logger, segment
from chalicelib.processing import segmented
from chalicelib.processing.autoretry import Handled, give_up, settle_failure
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.jobs import input_key, output_key, stored_input

PROGRESS_EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class Receipt:
    """The SQS message that carried the attempt: what the heartbeat needs to keep it hidden."""

    receipt_handle: str
    receive_count: int = 1


def has_time_for_a_transcode(svc: Services, remaining_millis: int) -> bool:
    """Whether an invocation with this much time left can finish a transcode (plus margin).

    A record claimed too late would be killed with the invocation: it is handed back instead.
    """
    settings = svc.settings
    needed = settings.transcode_timeout_seconds + settings.invocation_margin_seconds
    return remaining_millis >= needed * 1000


class HandedBack(Exception):
    """Not claimed: the invocation could not finish it. SQS redelivers it to another invocation."""


def deliver(svc: Services, ref: QueueMessage, receipt: Receipt, remaining_millis: int | None) -> Handled:
    """One delivery of a job message, as the SQS-triggered worker gets it.

    Raises HandedBack when the invocation has no time for it, and re-raises when the outcome
    could not be recorded; on the last delivery before the DLQ (MAX_RECEIVE_COUNT) the job is
    given up first (failed, its credit refunded) unless another worker's live claim holds it.
    """
    if remaining_millis is not None and not has_time_for_a_transcode(svc, remaining_millis):
        hand_back(svc, ref, receipt, remaining_millis)
    owner = new_id()  # this delivery's claim
    try:
        return process(svc, ref, receipt, owner)
    except Exception:
        if receipt.receive_count >= svc.settings.max_receive_count:
            logger().exception("last delivery failed; giving the job up", extra=_keys(ref))
            give_up(svc, ref, owner)
        raise  # the message stays (or goes to the DLQ) for an operator to see


def hand_back(svc: Services, ref: QueueMessage, receipt: Receipt, remaining_millis: int) -> None:
    logger().warning(
        "too little invocation time left; handing the record back",
        extra={**_keys(ref), "remaining_ms": remaining_millis},
    )
    count("RecordsHandedBack")
    with contextlib.suppress(QueueSendError):  # come back now, not after the visibility timeout
        svc.queue.extend_visibility(receipt.receipt_handle, 0)
    raise HandedBack(ref.job_id)


def reject_malformed(svc: Services, body: str, reason: str) -> None:
    """A body that is not one of ours can never succeed: to the DLQ at once, nothing charged.
    Raises QueueSendError if even that fails (SQS then redelivers it, and in the end moves it)."""
    svc.queue.dead_letter(body, reason)
    count("MessagesDeadLettered")
    logger().warning("malformed message moved to the DLQ", extra={"reason": reason})


def process(
    svc: Services, ref: QueueMessage, receipt: Receipt | None = None, owner: str | None = None
) -> Handled:
    """Run the attempt (or the segment task) the message names; `owner` names this delivery's claim.

    Raises only when the outcome could not be recorded, or (TaskRetryError) when a segment task
    failed for a platform reason and SQS should deliver it again.
    """
    if ref.task is not None:
        return segmented.run_task(svc, ref, receipt.receive_count if receipt else 1)
    log = logger()
    now = svc.clock()
    lease = now + timedelta(seconds=svc.settings.claim_lease_seconds)
    if not committed(svc.repo, transitions.claim(ref, now, lease, owner or new_id())):
        log.info("attempt not claimable; skipping", extra=_keys(ref))
        return Handled.SKIPPED
    log.info("attempt claimed", extra=_keys(ref))
    try:
        with _heartbeat(svc, ref, receipt):
            # The input's key follows from the message: no read of the job after the claim.
            source_key = input_key(ref.workspace_id, ref.job_id)
            if _plan_if_long(svc, ref, source_key):
                return Handled.PLANNED
            key = _transcode_and_store(svc, ref, source_key)
    except ProcessingError as error:
        return _record_failure(svc, ref, error)
    except ServiceUnavailableError as exc:
        return _record_failure(svc, ref, InternalProcessingError(detail=repr(exc)))
    except Exception as exc:  # anything else (a full disk, a bug): unknown, so tried once more
        log.exception("unexpected error in the attempt", extra=_keys(ref))
        return _record_failure(svc, ref, ProcessingError(detail=repr(exc)))
    if not committed(svc.repo, transitions.complete(ref, key, svc.clock())):
        log.warning("attempt finished but no longer ours", extra=_keys(ref))
        return Handled.SKIPPED
    count("JobsCompleted")
    log.info("job completed", extra={**_keys(ref), "output_key": key})
    return Handled.COMPLETED


def _plan_if_long(svc: Services, ref: QueueMessage, source_key: str) -> bool:
    """A video longer than the threshold goes in segments: plan it and queue its tasks."""
    if svc.segmenter is None:
        return False
    source = segmented.source_url(svc, source_key)
    if not segmented.wants_segments(svc, svc.segmenter.probe_duration(source)):
        return False
    segmented.plan_attempt(svc, ref, source_key, source)
    return True


def _transcode_and_store(svc: Services, ref: QueueMessage, input_key: str) -> str:
    if svc.transcoder is None:
        raise InternalProcessingError(detail="no transcoder configured")
    settings = svc.settings
    stored = stored_input(svc, input_key)
    with tempfile.TemporaryDirectory(prefix="job-", dir=settings.work_dir) as tmp:
        source = _input_for(svc, input_key, stored.size, Path(tmp) / "input")
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


def _input_for(svc: Services, input_key: str, size: int, local: Path) -> str:
    """What ffmpeg reads: a local copy of the upload (default), or its presigned URL."""
    settings = svc.settings
    if settings.transcode_input == "url":
        return svc.store.presign_download(input_key, settings.transcode_timeout_seconds + 300)
    started = time.monotonic()
    try:
        with segment("download"):
            svc.store.download_file(input_key, local, size)
    except StorageError as exc:
        raise DownloadError(detail=repr(exc)) from exc
    count("DownloadSeconds", time.monotonic() - started)
    return str(local)


def _record_failure(svc: Services, ref: QueueMessage, error: ProcessingError) -> Handled:
    job = svc.repo.get_job(ref.job_id)  # only a failure reads the job: its retry history decides
    if job is None or job.attempt != ref.attempt:
        return Handled.SKIPPED
    return settle_failure(svc, job, error)


@contextlib.contextmanager
def _heartbeat(svc: Services, ref: QueueMessage, receipt: Receipt | None) -> Iterator[None]:
    """Every `heartbeat_seconds` while the block runs: renew the attempt's lease and keep the
    message hidden, so no second worker starts this attempt and the sweeper never takes a long
    transcode for a dead one."""
    stop = threading.Event()

    def beat() -> None:
        lease = svc.settings.claim_lease_seconds
        while not stop.wait(svc.settings.heartbeat_seconds):
            try:
                now = svc.clock()
                if not committed(svc.repo, transitions.heartbeat(ref, now, now + timedelta(seconds=lease))):
                    logger().warning("heartbeat: the attempt is no longer ours", extra=_keys(ref))
                    return
                if receipt is not None:
                    svc.queue.extend_visibility(receipt.receipt_handle, lease)
            except (ServiceUnavailableError, QueueSendError):  # the next beat tries again
                logger().warning("heartbeat failed", extra=_keys(ref))

    thread = threading.Thread(target=beat, name=f"heartbeat-{ref.job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _progress_reporter(svc: Services, ref: QueueMessage) -> Callable[[float], None]:
    last = -PROGRESS_EVERY_SECONDS

    def report(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < PROGRESS_EVERY_SECONDS:
            return
        last = now
        with contextlib.suppress(ServiceUnavailableError):  # progress is a nicety; the transcode goes on
            committed(svc.repo, transitions.progress(ref, fraction, svc.clock()))

    return report


def _keys(ref: QueueMessage) -> dict[str, object]:
    return {"job_id": ref.job_id, "workspace_id": ref.workspace_id, "attempt": ref.attempt}
