"""Long videos: plan segments, encode each (and the audio) as its own task, stitch once.

The attempt's message plans (ffprobe's frame list, chalicelib.processing.segment_plan) and sends
one message per segment and one for the audio, all to the same queue and worker. Each task
encodes its part to `segments_prefix(...)` and records itself done on the job item; the task that
sees every task done claims the stitch (one conditional write), joins the parts, uploads the
output and completes the job. Money: the attempt's one credit was charged when it was queued;
tasks cost nothing, and a task that fails for the platform's reasons is delivered again by SQS
(free) until `segment_max_tries`, without touching the others; after that, or at once for the
input's fault, the attempt is settled by chalicelib.processing.autoretry: a free automatic try
(which plans again and reuses the finished parts) or the end, refunded or not by the taxonomy.

Finished parts live under a per-job prefix whose name carries the plan's fingerprint: a manual
Retry of a failed job plans the same segments again, finds the parts already there and encodes
only the missing ones. The prefix is deleted when the job completes (an R2 lifecycle rule in
infra/ removes what a job that never completes leaves behind).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chalicelib.domain import AUDIO_TASK, FailureKind, JobStatus, QueueMessage
from chalicelib.errors import (
    DownloadError,
    InternalProcessingError,
    ProcessingError,
    ServiceUnavailableError,
    StoppedError,
    StorageError,
    TaskRetryError,
    UploadOutputError,
    WorkerInterruptedError,
)
from chalicelib.lifecycle import transitions
from chalicelib.observability import count, logger
from chalicelib.processing import failures
from chalicelib.processing.audio_plan import Chunk, encode_with_audio, plan_chunks
from chalicelib.processing.autoretry import Handled, settle_failure
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Segmenter
from chalicelib.processing.segment_plan import SegmentPlan, Span, plan_segments
from chalicelib.processing.storage import (
    discard_if_cancelled,
    input_key,
    output_key,
    remove,
    segments_prefix,
    source_url,
)
from chalicelib.processing.watch import Receipt, Watch, watching

STITCH_GRACE_SECONDS = 60
PARTS_AT_ONCE = 8  # the stitch copies the parts down this many at a time


@dataclass(frozen=True)
class StoredPlan:
    """What every task reads back from the job item: the plan and where its parts go."""

    plan: SegmentPlan
    video_stream: int
    audio_stream: int | None
    prefix: str
    audio_copy: bool = False  # the source's audio is AAC-LC mono/stereo: copied, not encoded
    # (sample rate, first sample's timestamp): the segment tasks encode the audio in chunks
    audio_chunks: tuple[int, int] | None = None

    @property
    def tasks(self) -> list[int]:
        # The audio first: it is the longest task (the whole soundtrack), so it must not start last.
        audio = [AUDIO_TASK] if self.audio_stream is not None and self.audio_chunks is None else []
        return audio + [span.index for span in self.plan.spans]

    def part_key(self, task: int) -> str:
        return f"{self.prefix}audio.m4a" if task == AUDIO_TASK else f"{self.prefix}seg-{task:05d}.mp4"

    def chunks(self) -> list[Chunk]:
        """The soundtrack's chunks, one per segment (the segment task encodes it)."""
        assert self.audio_chunks is not None
        rate, origin = self.audio_chunks
        return plan_chunks([span.start for span in self.plan.spans], rate, origin)

    def chunk_key(self, task: int) -> str | None:
        """Where segment task `task` puts its audio chunk (None: its task has none)."""
        return f"{self.prefix}audio-{task:05d}.m4a" if self.audio_chunks is not None and task >= 0 else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "video": self.video_stream,
                "audio": self.audio_stream,
                "prefix": self.prefix,
                "copy": self.audio_copy,
                **({"chunks": list(self.audio_chunks)} if self.audio_chunks else {}),
                "duration": self.plan.duration,
                "accurate": self.plan.accurate_cuts,
                "spans": [[s.start, s.duration] for s in self.plan.spans],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> StoredPlan:
        data = json.loads(text)
        spans = tuple(Span(i, float(start), float(length)) for i, (start, length) in enumerate(data["spans"]))
        plan = SegmentPlan(spans=spans, duration=float(data["duration"]), accurate_cuts=int(data["accurate"]))
        return cls(
            plan=plan,
            video_stream=int(data["video"]),
            audio_stream=data["audio"],
            prefix=data["prefix"],
            audio_copy=bool(data.get("copy", False)),  # plans stored before the copy path encode
            audio_chunks=(int(data["chunks"][0]), int(data["chunks"][1])) if data.get("chunks") else None,
        )

    def describe(self) -> str:
        """The plan's words for the attempt, with what happens to the audio."""
        if self.audio_stream is None:
            return f"{self.plan.describe()}; no audio"
        audio = "audio copied (already AAC)" if self.audio_copy else "audio encoded to AAC"
        if self.audio_chunks is not None:
            audio = "audio encoded to AAC in chunks, beside the segments"
        return f"{self.plan.describe()}; {audio}"


def wants_segments(svc: Services, duration_seconds: float | None) -> bool:
    return duration_seconds is not None and duration_seconds > svc.settings.segment_threshold_seconds


def segmenter(svc: Services) -> Segmenter:
    if svc.segmenter is None:
        raise InternalProcessingError(detail="no segmenter configured")
    return svc.segmenter


def plan_if_long(svc: Services, ref: QueueMessage, watch: Watch, source: str) -> bool:
    """A video longer than the threshold goes in segments: plan it and queue its tasks.
    `source` is where the attempt's upload is read (chalicelib.processing.storage.Input.url)."""
    if svc.segmenter is None:
        return False
    if not wants_segments(svc, svc.segmenter.probe_duration(source)):
        return False
    plan_attempt(svc, ref, input_key(ref.workspace_id, ref.job_id), source, watch)
    return True


def plan_attempt(
    svc: Services, ref: QueueMessage, source_key: str, source: str, watch: Watch | None = None
) -> StoredPlan:
    """Survey the source, record the plan on the job and send one message per task."""
    survey = segmenter(svc).survey(source)
    if watch is not None:
        watch.check()
    settings = svc.settings
    plan = plan_segments(
        survey.frame_times, survey.keyframe_times, survey.duration_seconds, settings.segment_seconds
    )
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                source_key,
                [[s.start, s.duration] for s in plan.spans],
                settings.transcode_max_height,
                settings.transcode_preset,
                settings.transcode_crf,
            ]
        ).encode()
    ).hexdigest()[:16]
    stored = StoredPlan(
        plan=plan,
        video_stream=survey.video_stream,
        audio_stream=survey.audio_stream,
        prefix=f"{segments_prefix(ref.workspace_id, ref.job_id)}{fingerprint}/",
        audio_copy=survey.audio_copy and survey.audio_chunks is None,
        audio_chunks=survey.audio_chunks,
    )
    now = svc.clock()
    lease = now + timedelta(seconds=settings.claim_lease_seconds)
    words = stored.describe()
    recorded = transitions.plan(ref, stored.to_json(), words, len(stored.tasks), plan.count, now, lease)
    if not committed(svc.repo, recorded):
        raise WorkerInterruptedError(detail="the attempt moved on while it was being planned")
    logger().info("segment plan", extra={"job_id": ref.job_id, "plan": words})
    for task in stored.tasks:
        svc.queue.send(QueueMessage(ref.job_id, ref.workspace_id, ref.attempt, task=task))
    count("SegmentsPlanned", plan.count)
    return stored


@dataclass(frozen=True)
class SegmentState:
    """A segmented attempt as the job item holds it."""

    plan: str  # the plan as `plan_attempt` recorded it (JSON)
    tasks: int  # segments + the audio task
    done: frozenset[int]  # tasks recorded done (AUDIO_TASK for the audio)

    @property
    def complete(self) -> bool:
        return len(self.done) >= self.tasks


def segment_state(svc: Services, ref: QueueMessage) -> SegmentState | None:
    """The plan and the tasks done, while the attempt is the job's current one and processing."""
    job = svc.repo.get_job(ref.job_id)
    if job is None or job.status != JobStatus.PROCESSING or job.attempt != ref.attempt:
        return None
    if job.segment_plan is None or job.segment_tasks is None:
        return None
    return SegmentState(plan=job.segment_plan, tasks=job.segment_tasks, done=job.tasks_done)


def run_task(svc: Services, ref: QueueMessage, receipt: Receipt | None = None) -> Handled:
    """Encode one task of a segmented attempt; stitch when it was the last. Returns what happened.

    Raises TaskRetryError for a system failure SQS should deliver again.
    """
    assert ref.task is not None
    receive_count = receipt.receive_count if receipt else 1
    state = segment_state(svc, ref)
    if state is None:
        return Handled.SKIPPED  # the attempt failed, completed, was cancelled or replaced
    stored = StoredPlan.from_json(state.plan)
    if ref.task not in state.done:
        try:
            with watching(svc, ref, receipt) as watch:
                _encode_task(svc, ref, stored, ref.task, watch)
        except StoppedError:
            return stopped(svc, ref)
        except (ProcessingError, ServiceUnavailableError) as error:
            return _task_failed(svc, ref, stored, error, receive_count)
        now = svc.clock()
        lease = now + timedelta(seconds=svc.settings.claim_lease_seconds)
        committed(svc.repo, transitions.finish_task(ref, ref.task, now, lease))  # False: done before
        state = segment_state(svc, ref)
        if state is None:
            return Handled.SKIPPED
        _report_progress(svc, ref, stored, state)
    if not state.complete:
        return Handled.ENCODED
    return stitch(svc, ref, stored, receipt)


def stopped(svc: Services, ref: QueueMessage, *keys: str) -> Handled:
    """The attempt stopped while a task ran: a cancelled job's parts (and `keys`) are deleted."""
    discard_if_cancelled(svc, ref, segments_prefix(ref.workspace_id, ref.job_id), *keys)
    logger().info("task stopped: the job was cancelled or moved on", extra={"job_id": ref.job_id})
    return Handled.STOPPED


def _encode_task(svc: Services, ref: QueueMessage, stored: StoredPlan, task: int, watch: Watch) -> None:
    key, audio_key = stored.part_key(task), stored.chunk_key(task)
    if all(svc.store.head(k) is not None for k in (key, audio_key) if k is not None):
        return  # encoded by an earlier attempt of this job (a manual Retry) or a duplicate delivery
    source = source_url(svc, input_key(ref.workspace_id, ref.job_id))
    seg = segmenter(svc)
    with tempfile.TemporaryDirectory(prefix="task-", dir=svc.settings.work_dir) as tmp:
        target = Path(tmp) / ("audio.m4a" if task == AUDIO_TASK else "segment.mp4")
        if task == AUDIO_TASK:
            assert stored.audio_stream is not None
            elapsed = seg.encode_audio(
                source, stored.audio_stream, target, copy=stored.audio_copy, stop=watch.stopped
            )
        else:
            elapsed = _encode_segment(seg, source, stored, task, Path(tmp), target, watch)
        count("SegmentSeconds", elapsed)
        watch.check()
        _upload(svc, target, key, "audio/mp4" if task == AUDIO_TASK else "video/mp4")
        if audio_key is not None:
            _upload(svc, Path(tmp) / "audio-chunk.m4a", audio_key, "audio/mp4")


def _encode_segment(
    seg: Segmenter, source: str, stored: StoredPlan, task: int, folder: Path, target: Path, watch: Watch
) -> float:
    """Segment `task`'s video and, when the plan says so, its audio chunk beside it, at once (as
    one pass encodes both)."""
    span = stored.plan.spans[task]

    def video() -> float:
        return seg.encode_segment(source, span, stored.video_stream, target, stop=watch.stopped)

    if stored.chunk_key(task) is None or stored.audio_stream is None:
        return video()
    chunk, stream = stored.chunks()[task], stored.audio_stream

    def audio() -> float:
        return seg.encode_audio_chunk(source, stream, chunk, folder / "audio-chunk.m4a", watch.stopped)

    return encode_with_audio(video, audio)


def _upload(svc: Services, path: Path, key: str, content_type: str) -> None:
    try:
        svc.store.upload_file(path, key, content_type)
    except StorageError as exc:
        raise UploadOutputError(detail=repr(exc)) from exc


def _task_failed(
    svc: Services, ref: QueueMessage, stored: StoredPlan, error: Exception, receive_count: int
) -> Handled:
    """A platform failure is delivered again by SQS (free, the other tasks untouched) while
    tries remain; then, or at once for the input's fault, the attempt is settled by the
    automatic-reprocessing rules with the task's name in the error."""
    failed = _as_processing_error(error)
    name = _task_name(stored, ref.task)
    if _again(svc, failed, receive_count):
        logger().warning(
            "task failed; SQS delivers it again",
            extra={
                "job_id": ref.job_id,
                "task": ref.task,
                "error_code": failed.code,
                "receive_count": receive_count,
            },
        )
        raise TaskRetryError(f"{name} failed ({failed.code}); it will be tried again")
    settled = _settle(svc, ref, type(failed)(f"{name}: {failed.message}", detail=failed.detail))
    logger().warning("attempt settled after a task failed", extra={"job_id": ref.job_id, "settled": settled})
    return settled


def _as_processing_error(error: Exception) -> ProcessingError:
    if isinstance(error, ProcessingError):
        return error
    return InternalProcessingError(detail=repr(error))


def _again(svc: Services, error: ProcessingError, receive_count: int) -> bool:
    """Whether SQS should deliver the task again: the platform's fault (unknown: once)."""
    kind = failures.classify(error).kind
    platform = kind is FailureKind.TRANSIENT or (kind is FailureKind.UNKNOWN and receive_count == 1)
    return platform and receive_count < svc.settings.segment_max_tries


def _settle(svc: Services, ref: QueueMessage, error: ProcessingError) -> Handled:
    job = svc.repo.get_job(ref.job_id)
    if job is None or job.attempt != ref.attempt or job.status != JobStatus.PROCESSING:
        return Handled.SKIPPED
    return settle_failure(svc, job, error)


def _task_name(stored: StoredPlan, task: int | None) -> str:
    if task == AUDIO_TASK:
        return "Audio"
    return f"Segment {(task or 0) + 1} of {stored.plan.count}"


def _report_progress(svc: Services, ref: QueueMessage, stored: StoredPlan, state: SegmentState) -> None:
    done = stored.plan.seconds_done([t for t in state.done if t >= 0])
    fraction = min(done / stored.plan.duration, 1.0) if stored.plan.duration else 0.0
    with contextlib.suppress(ServiceUnavailableError):  # progress is a nicety
        committed(svc.repo, transitions.progress(ref, fraction, svc.clock()))


def stitch(svc: Services, ref: QueueMessage, stored: StoredPlan, receipt: Receipt | None = None) -> Handled:
    """Join the parts into the output and complete the job, if this caller wins the stitch
    (a cancelled job's stitch is never claimed)."""
    now = svc.clock()
    claim = now + timedelta(seconds=svc.settings.transcode_timeout_seconds + STITCH_GRACE_SECONDS)
    if not committed(svc.repo, transitions.claim_stitch(ref, now, claim)):
        return Handled.ENCODED  # another task stitches (or a crashed stitcher's claim has not run out)
    try:
        with watching(svc, ref, receipt) as watch:
            key = _join_and_upload(svc, ref, stored, watch)
    except StoppedError:
        return stopped(svc, ref)
    except (ProcessingError, ServiceUnavailableError) as error:
        return _stitch_failed(svc, ref, error, receipt.receive_count if receipt else 1)
    if not committed(svc.repo, transitions.complete(ref, key, svc.clock())):
        job = svc.repo.get_job(ref.job_id)
        cancelled = job is not None and job.status == JobStatus.CANCELLED
        return stopped(svc, ref, key) if cancelled else Handled.SKIPPED
    count("JobsCompleted")
    remove(svc, segments_prefix(ref.workspace_id, ref.job_id))
    logger().info("job completed (segmented)", extra={"job_id": ref.job_id, "segments": stored.plan.count})
    return Handled.COMPLETED


def _join_and_upload(svc: Services, ref: QueueMessage, stored: StoredPlan, watch: Watch) -> str:
    key = output_key(ref.workspace_id, ref.job_id, ref.attempt)
    with tempfile.TemporaryDirectory(prefix="stitch-", dir=svc.settings.work_dir) as tmp:
        folder = Path(tmp)
        # The parts come down in parallel first: the concat demuxer would read them one by one,
        # each through one HTTP stream (an hour's parts are about as big as the output).
        spans = stored.plan.spans
        local = _fetched(svc, [(stored.part_key(s.index), folder / f"seg-{s.index:05d}.mp4") for s in spans])
        parts = [(str(path), span.duration) for path, span in zip(local, spans, strict=True)]
        audio = None
        if stored.audio_chunks is not None:
            audio = _joined_audio(svc, stored, folder)
        elif stored.audio_stream is not None:
            [audio_path] = _fetched(svc, [(stored.part_key(AUDIO_TASK), folder / "audio.m4a")])
            audio = str(audio_path)
        watch.check()
        target = folder / "output.mp4"
        segmenter(svc).stitch(parts, audio, target, stop=watch.stopped)
        watch.check()
        _upload(svc, target, key, "video/mp4")
    return key


def _joined_audio(svc: Services, stored: StoredPlan, folder: Path) -> str:
    """The segment tasks' audio chunks, fetched and joined into one soundtrack; its path."""
    keys = [stored.chunk_key(span.index) for span in stored.plan.spans]
    paths = _fetched(svc, [(k, folder / f"audio-{i:05d}.m4a") for i, k in enumerate(keys) if k is not None])
    joined = folder / "joined-audio.m4a"
    segmenter(svc).join_audio(stored.chunks(), paths, joined)
    return str(joined)


def _fetched(svc: Services, wanted: list[tuple[str, Path]]) -> list[Path]:
    """Copy each (key, path) down, PARTS_AT_ONCE at a time; the paths, in order. A part that
    cannot be read is a DownloadError (the platform's: the stitch is delivered again)."""

    def one(item: tuple[str, Path]) -> Path:
        key, path = item
        try:
            svc.store.download_file(key, path)
        except StorageError as exc:
            raise DownloadError(detail=f"{key}: {exc!r}") from exc
        return path

    with cf.ThreadPoolExecutor(PARTS_AT_ONCE, thread_name_prefix="stitch-fetch") as pool:
        return list(pool.map(one, wanted))


def _stitch_failed(svc: Services, ref: QueueMessage, error: Exception, receive_count: int) -> Handled:
    failed = _as_processing_error(error)
    if _again(svc, failed, receive_count):
        with contextlib.suppress(ServiceUnavailableError):  # else the claim runs out by itself
            committed(svc.repo, transitions.release_stitch(ref, svc.clock()))  # the next delivery stitches
        raise TaskRetryError(f"Joining the segments failed ({failed.code}); it will be tried again")
    return _settle(svc, ref, type(failed)(f"Joining the segments: {failed.message}", detail=failed.detail))
