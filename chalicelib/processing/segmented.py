"""Long videos: plan segments, encode each (and the audio) as its own task, stitch once.

The attempt's message plans (ffprobe's frame list, chalicelib.processing.segment_plan) and sends
one message per segment and one for the audio, all to the same queue and worker. Each task
encodes its part as the attempt's preset says (an MP4 part, or every rendition of the HLS ladder
from one decode of its span), with its share of the thumbnails, to `segments_prefix(...)`, and
records itself done on the job item; with HLS the stream is published as far as the tasks done
from the first one go (playable before the job completes). The task that sees every task done
claims the stitch (one conditional write), joins or packages the parts without re-encoding
(chalicelib.processing.segment_outputs), uploads the output and completes the job.

Money: the attempt's one credit was charged when it was queued; tasks cost nothing, and a task
that fails for the platform's reasons is delivered again by SQS (free) until `segment_max_tries`,
without touching the others; after that, or at once for the input's fault, the attempt is
settled by chalicelib.processing.autoretry: a free automatic try (which plans again and reuses
the finished parts) or the end, refunded or not by the taxonomy.

Finished parts live under a per-job prefix whose name carries the plan's fingerprint: a manual
Retry of a failed job plans the same segments again, finds the parts already there and encodes
only the missing ones. The prefix is deleted when the job completes (an R2 lifecycle rule in
infra/ removes what a job that never completes leaves behind).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chalicelib.domain import AUDIO_TASK, DEFAULT_PRESET, FailureKind, JobStatus, Preset, QueueMessage
from chalicelib.errors import (
    InternalProcessingError,
    ProcessingError,
    ServiceUnavailableError,
    StoppedError,
    TaskRetryError,
    WorkerInterruptedError,
)
from chalicelib.lifecycle import transitions
from chalicelib.observability import count, logger
from chalicelib.outputs import presets
from chalicelib.outputs.presets import Rung, rendition_name
from chalicelib.processing import failures, segment_outputs
from chalicelib.processing.audio_plan import Chunk, encode_with_audio, plan_chunks
from chalicelib.processing.autoretry import Handled, settle_failure
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Rendered, Segmenter, SegmentWork, StoredObject
from chalicelib.processing.results import put_file
from chalicelib.processing.segment_plan import SegmentPlan, Span, plan_segments
from chalicelib.processing.storage import (
    Input,
    discard_if_cancelled,
    input_key,
    media_prefix,
    outputs_prefix,
    remove,
    segments_prefix,
    source_url,
    stored_input,
)
from chalicelib.processing.watch import Receipt, Watch, watching

STITCH_GRACE_SECONDS = 60


@dataclass(frozen=True)
class StoredPlan:
    """What every task reads back from the job item: the plan and where its parts go."""

    plan: SegmentPlan
    video_stream: int
    audio_stream: int | None
    prefix: str
    audio_copy: bool = False  # the source's audio is AAC-LC mono/stereo: copied, not encoded
    preset: Preset = DEFAULT_PRESET
    bounds: tuple[int, ...] = (720,)  # the renditions' short-side bounds (the preset's ladder)
    names: tuple[str, ...] = ("720p",)  # ... and their names
    hdr: bool = False  # tone-mapped to SDR
    # (sample rate, first sample's timestamp): the segment tasks encode the audio in chunks
    audio_chunks: tuple[int, int] | None = None

    @property
    def tasks(self) -> list[int]:
        # The audio first: it is the longest task (the whole soundtrack), so it must not start last.
        audio = [AUDIO_TASK] if self.audio_stream is not None and self.audio_chunks is None else []
        return audio + [span.index for span in self.plan.spans]

    @property
    def streaming(self) -> bool:
        return presets.spec(self.preset).streaming

    @property
    def rungs(self) -> tuple[Rung, ...]:
        catalog = {r.bound: r for r in presets.spec(self.preset).rungs}
        return tuple(catalog.get(bound, Rung(bound)) for bound in self.bounds)

    def part_key(self, task: int) -> str:
        """What marks a task done in storage: its part (MP4), or its segments' manifest (HLS)."""
        if self.streaming:
            return (
                f"{self.prefix}hls/audio.json"
                if task == AUDIO_TASK
                else f"{self.prefix}hls/task-{task:05d}.json"
            )
        return f"{self.prefix}audio.m4a" if task == AUDIO_TASK else f"{self.prefix}seg-{task:05d}.mp4"

    def segment_key(self, rendition: str, task: int, n: int) -> str:
        """An HLS segment a task wrote (the audio task: the soundtrack's n-th)."""
        if task == AUDIO_TASK:
            return f"{self.prefix}hls/audio/{n:05d}.ts"
        return f"{self.prefix}hls/{rendition}/t{task:05d}-{n:05d}.ts"

    def sheet_key(self, task: int) -> str:
        return f"{self.prefix}thumbs-{task:05d}.jpg"

    @property
    def poster_key(self) -> str:
        return f"{self.prefix}poster.jpg"

    def live_key(self, published: int) -> str:
        """The stream's index as far as the first `published` video tasks (never overwritten)."""
        return f"{self.prefix}hls/live-{published:05d}.json"

    def work(self, task: int) -> SegmentWork:
        return SegmentWork(
            preset=self.preset,
            rungs=self.rungs,
            duration=self.plan.duration,
            hdr=self.hdr,
            poster=task == 0,
            names=self.names,
        )

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
                "preset": self.preset.value,
                "bounds": list(self.bounds),
                "names": list(self.names),
                "hdr": self.hdr,
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
            # plans stored before presets: the seed's 720p MP4
            preset=Preset(data.get("preset", DEFAULT_PRESET.value)),
            bounds=tuple(int(b) for b in data.get("bounds", [720])),
            names=tuple(str(n) for n in data.get("names", ["720p"])),
            hdr=bool(data.get("hdr", False)),
            audio_chunks=(int(data["chunks"][0]), int(data["chunks"][1])) if data.get("chunks") else None,
        )

    def describe(self) -> str:
        """The plan's words for the attempt, with what happens to the audio."""
        words = self.plan.describe()
        if self.streaming:
            words += f"; renditions {', '.join(self.names)}"
        if self.hdr:
            words += "; HDR tone-mapped to SDR"
        if self.audio_stream is None:
            return f"{words}; no audio"
        audio = "audio copied (already AAC)" if self.audio_copy else "audio encoded to AAC"
        if self.audio_chunks is not None:
            audio = "audio encoded to AAC in chunks, beside the segments"
        return f"{words}; {audio}"


def wants_segments(svc: Services, duration_seconds: float | None) -> bool:
    return duration_seconds is not None and duration_seconds > svc.settings.segment_threshold_seconds


def segmenter(svc: Services) -> Segmenter:
    if svc.segmenter is None:
        raise InternalProcessingError(detail="no segmenter configured")
    return svc.segmenter


def plan_if_long(svc: Services, ref: QueueMessage, watch: Watch, upload: Input) -> bool:
    """A video longer than the threshold goes in segments: plan it and queue its tasks. The
    upload is probed and surveyed where the worker reads it (chalicelib.processing.storage)."""
    if svc.segmenter is None:
        return False
    if not wants_segments(svc, svc.segmenter.probe_duration(upload.url)):
        return False
    stored = upload.stored or stored_input(svc, upload.key)
    plan_attempt(svc, ref, stored, upload.url, watch)
    return True


def plan_attempt(
    svc: Services, ref: QueueMessage, upload: StoredObject, source: str, watch: Watch | None = None
) -> StoredPlan:
    """Survey the source, record the plan on the job and send one message per task.

    The parts' prefix is named by everything they depend on (the upload's bytes, the cuts, the
    preset and its ladder, the encoder's settings): a retry with the same ones reuses them, a
    replaced file or another preset does not."""
    survey = segmenter(svc).survey(source)
    if watch is not None:
        watch.check()
    settings = svc.settings
    plan = plan_segments(
        survey.frame_times, survey.keyframe_times, survey.duration_seconds, settings.segment_seconds
    )
    rungs = presets.ladder(ref.preset, survey.short_side)
    names = tuple(rendition_name(r, survey.short_side) for r in rungs)
    # The soundtrack in chunks beside the segments, for an MP4 (joined at the stitch); an HLS
    # stream's audio rendition is the audio task's, as the growing playlist needs it first.
    chunks = None if presets.spec(ref.preset).streaming else survey.audio_chunks
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                upload.key,
                upload.size,
                upload.etag,
                [[s.start, s.duration] for s in plan.spans],
                ref.preset.value,
                [r.bound for r in rungs],
                survey.hdr,
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
        audio_copy=survey.audio_copy and chunks is None,
        preset=ref.preset,
        bounds=tuple(r.bound for r in rungs),
        names=names,
        hdr=survey.hdr,
        audio_chunks=chunks,
    )
    now = svc.clock()
    lease = now + timedelta(seconds=settings.claim_lease_seconds)
    words = stored.describe()
    recorded = transitions.plan(ref, stored.to_json(), words, len(stored.tasks), plan.count, now, lease)
    if not committed(svc.repo, recorded):
        raise WorkerInterruptedError(detail="the attempt moved on while it was being planned")
    logger().info("segment plan", extra={"job_id": ref.job_id, "plan": words})
    for task in stored.tasks:
        svc.queue.send(QueueMessage(ref.job_id, ref.workspace_id, ref.attempt, task=task, preset=ref.preset))
    count("SegmentsPlanned", plan.count)
    return stored


@dataclass(frozen=True)
class SegmentState:
    """A segmented attempt as the job item holds it."""

    plan: str  # the plan as `plan_attempt` recorded it (JSON)
    tasks: int  # segments + the audio task
    done: frozenset[int]  # tasks recorded done (AUDIO_TASK for the audio)
    published: int = 0  # HLS: video tasks whose segments are in the published stream

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
    return SegmentState(
        plan=job.segment_plan, tasks=job.segment_tasks, done=job.tasks_done, published=job.hls_published
    )


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
            segment_outputs.publish(svc, ref, stored, state.done, state.published)
    if not state.complete:
        return Handled.ENCODED
    return stitch(svc, ref, stored, receipt)


def stopped(svc: Services, ref: QueueMessage, *keys: str) -> Handled:
    """The attempt stopped while a task ran: a cancelled job's parts (and `keys`) are deleted."""
    discard_if_cancelled(
        svc,
        ref,
        segments_prefix(ref.workspace_id, ref.job_id),
        outputs_prefix(ref.workspace_id, ref.job_id),
        *keys,
    )
    logger().info("task stopped: the job was cancelled or moved on", extra={"job_id": ref.job_id})
    return Handled.STOPPED


def _encode_task(svc: Services, ref: QueueMessage, stored: StoredPlan, task: int, watch: Watch) -> None:
    key, audio_key = stored.part_key(task), stored.chunk_key(task)
    if all(svc.store.head(k) is not None for k in (key, audio_key) if k is not None):
        return  # encoded by an earlier attempt of this job (a manual Retry) or a duplicate delivery
    source = source_url(svc, input_key(ref.workspace_id, ref.job_id))
    seg = segmenter(svc)
    with tempfile.TemporaryDirectory(prefix="task-", dir=svc.settings.work_dir) as tmp:
        if task == AUDIO_TASK:
            assert stored.audio_stream is not None
            target = Path(tmp) / ("audio" if stored.streaming else "audio.m4a")
            elapsed = seg.encode_audio(
                source,
                stored.audio_stream,
                target,
                copy=stored.audio_copy,
                stop=watch.stopped,
                streaming=stored.streaming,
            )
            count("SegmentSeconds", elapsed)
            watch.check()
            segment_outputs.store_audio(svc, stored, target)
            return
        rendered = _render_segment(seg, source, stored, task, Path(tmp), watch)
        count("SegmentSeconds", rendered.elapsed_seconds)
        watch.check()
        if audio_key is not None:
            put_file(svc, Path(tmp) / "audio-chunk.m4a", audio_key, "audio/mp4")
        segment_outputs.store_segment(svc, stored, task, rendered)  # its part last: "done" follows it


def _render_segment(
    seg: Segmenter, source: str, stored: StoredPlan, task: int, folder: Path, watch: Watch
) -> Rendered:
    """Segment `task`'s renditions and, when the plan says so, its audio chunk beside them, at
    once (as one pass encodes both)."""
    span = stored.plan.spans[task]
    out = folder / "out"
    out.mkdir()
    rendered: list[Rendered] = []

    def video() -> float:
        rendered.append(
            seg.render_segment(source, span, stored.video_stream, out, stored.work(task), stop=watch.stopped)
        )
        return rendered[0].elapsed_seconds

    if stored.chunk_key(task) is None or stored.audio_stream is None:
        video()
        return rendered[0]
    chunk, stream = stored.chunks()[task], stored.audio_stream

    def audio() -> float:
        return seg.encode_audio_chunk(source, stream, chunk, folder / "audio-chunk.m4a", watch.stopped)

    encode_with_audio(video, audio)
    return rendered[0]


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
            key, facts = segment_outputs.assemble(svc, ref, stored, segmenter(svc), watch)
    except StoppedError:
        return stopped(svc, ref)
    except (ProcessingError, ServiceUnavailableError) as error:
        return _stitch_failed(svc, ref, error, receipt.receive_count if receipt else 1)
    if not committed(svc.repo, transitions.complete(ref, key, svc.clock(), facts)):
        job = svc.repo.get_job(ref.job_id)
        cancelled = job is not None and job.status == JobStatus.CANCELLED
        media = media_prefix(ref.workspace_id, ref.job_id, ref.attempt)
        return stopped(svc, ref, key, media) if cancelled else Handled.SKIPPED
    count("JobsCompleted")
    remove(svc, segments_prefix(ref.workspace_id, ref.job_id))
    logger().info("job completed (segmented)", extra={"job_id": ref.job_id, "segments": stored.plan.count})
    return Handled.COMPLETED


def _stitch_failed(svc: Services, ref: QueueMessage, error: Exception, receive_count: int) -> Handled:
    failed = _as_processing_error(error)
    if _again(svc, failed, receive_count):
        with contextlib.suppress(ServiceUnavailableError):  # else the claim runs out by itself
            committed(svc.repo, transitions.release_stitch(ref, svc.clock()))  # the next delivery stitches
        raise TaskRetryError(f"Joining the segments failed ({failed.code}); it will be tried again")
    return _settle(svc, ref, type(failed)(f"Joining the segments: {failed.message}", detail=failed.detail))
