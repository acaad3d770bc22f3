"""The segmented path's rules (chalicelib.processing.segmented) on in-memory fakes.

The media itself is proven on real ffmpeg in tests/integration/test_segmented_media.py and the
transactions on DynamoDB Local in tests/integration/test_segmented_pipeline.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from chalicelib.domain import AUDIO_TASK, DEFAULT_PRESET, JobStatus, Preset, QueueMessage
from chalicelib.errors import DownloadError, InvalidVideoError, TaskRetryError, UploadOutputError
from chalicelib.processing import retry, worker
from chalicelib.processing.audio_plan import Chunk
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Rendered, SegmentWork, SourceSurvey, TranscodeResult
from chalicelib.processing.segment_plan import Span, plan_segments
from chalicelib.processing.segmented import StoredPlan
from chalicelib.processing.worker import Handled, Receipt
from tests.support.fakes import ALICE, FakeQueue, fake_rendered, make_services
from tests.support.lifecycle import fail
from tests.unit.test_service_rules import repo_of, started_job, store_of


class FakeSegmenter:
    """Writes small files instead of encoding; fails the tasks it is told to."""

    def __init__(self, duration: float = 12.0, audio: bool = True) -> None:
        self.duration, self.audio = duration, audio
        self.keyframe_every = 1.0
        self.audio_copy = False  # what the survey says of the source's audio
        self.audio_chunks: tuple[int, int] | None = None  # ... and whether it goes in chunks
        self.chunks_encoded: list[int] = []
        self.joined: list[list[int]] = []
        self.audio_copied: list[bool] = []  # the copy flag of every audio task
        self.encoded: list[int] = []
        self.stitched = 0
        self.failures: dict[int, Exception] = {}  # fail once
        self.always_fail: dict[int, Exception] = {}
        self.stitch_failures: list[Exception] = []

    def probe_duration(self, input_url: str) -> float | None:
        return self.duration

    def survey(self, input_url: str) -> SourceSurvey:
        frames = tuple(i / 10 for i in range(int(self.duration * 10)))
        keys = frames[:: int(self.keyframe_every * 10)]
        return SourceSurvey(
            self.duration,
            0,
            1 if self.audio else None,
            frames,
            keys,
            self.audio_copy,
            audio_chunks=self.audio_chunks,
        )

    def render_segment(
        self,
        input_url: str,
        span: Span,
        video_stream: int,
        out_dir: Path,
        work: SegmentWork,
        stop: threading.Event | None = None,
    ) -> Rendered:
        self._encode(span.index)
        return fake_rendered(out_dir, work.preset)

    def encode_audio(
        self,
        input_url: str,
        audio_stream: int,
        output_path: Path,
        copy: bool = False,
        stop: threading.Event | None = None,
        streaming: bool = False,
    ) -> float:
        self.audio_copied.append(copy)
        self._encode(AUDIO_TASK)
        output_path.write_bytes(b"part")
        return 0.1

    def encode_audio_chunk(
        self,
        input_url: str,
        audio_stream: int,
        chunk: Chunk,
        output_path: Path,
        stop: threading.Event | None = None,
    ) -> float:
        self.chunks_encoded.append(chunk.index)
        output_path.write_bytes(b"chunk")
        return 0.05

    def join_audio(self, chunks: Sequence[Chunk], paths: Sequence[Path], output_path: Path) -> int:
        assert all(p.exists() for p in paths)
        self.joined.append([c.index for c in chunks])
        output_path.write_bytes(b"audio")
        return 48000 * 12

    def _encode(self, task: int) -> None:
        if task in self.failures:
            raise self.failures.pop(task)
        if task in self.always_fail:
            raise self.always_fail[task]
        self.encoded.append(task)

    def stitch(
        self,
        segments: Sequence[tuple[str, float]],
        audio_url: str | None,
        output_path: Path,
        stop: threading.Event | None = None,
    ) -> TranscodeResult:
        if self.stitch_failures:
            raise self.stitch_failures.pop(0)
        self.stitched += 1
        output_path.write_bytes(b"out")
        return TranscodeResult(640, 360, sum(d for _, d in segments), 0.1)


def segmented_services(duration: float = 12.0, audio: bool = True) -> tuple[Services, FakeSegmenter]:
    svc = make_services(queue=FakeQueue())
    svc.settings = svc.settings.model_copy(update={"segment_threshold_seconds": 5, "segment_seconds": 4})
    seg = FakeSegmenter(duration, audio)
    svc.segmenter = seg
    return svc, seg


def drain(svc: Services, receive_count: int = 1) -> list[Handled]:
    """Deliver every queued message once, in order, as SQS would (messages may queue more)."""
    queue = svc.queue
    assert isinstance(queue, FakeQueue)
    outcomes = []
    while queue.sent:
        outcomes.append(worker.process(svc, queue.sent.pop(0), Receipt("r", receive_count)))
    return outcomes


def test_a_long_video_is_planned_into_segment_and_audio_tasks_and_stitched_once() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    outcomes = drain(svc)
    assert outcomes[0] == Handled.PLANNED
    assert sorted(seg.encoded) == [AUDIO_TASK, 0, 1, 2]
    assert outcomes.count(Handled.COMPLETED) == 1 and seg.stitched == 1
    job = repo_of(svc).jobs[job_id]
    assert job.status == JobStatus.COMPLETED
    assert (job.segments_total, job.segments_done) == (3, 3)
    store = store_of(svc)
    assert job.output_file_key in store.objects
    assert not [key for key in store.objects if key.startswith("work/")]  # intermediates deleted
    assert svc.repo.get_workspace("ws-a").credits == 9  # type: ignore[union-attr]  # one credit per job
    assert repo_of(svc).attempts[(job_id, 1)].plan == "3 segments of about 4 s; audio encoded to AAC"
    assert seg.audio_copied == [False]


def test_aac_audio_is_copied_and_the_attempt_says_so() -> None:
    svc, seg = segmented_services()
    seg.audio_copy = True
    job_id = started_job(svc)
    drain(svc)
    assert seg.audio_copied == [True]
    assert repo_of(svc).attempts[(job_id, 1)].plan == "3 segments of about 4 s; audio copied (already AAC)"
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED


def test_a_video_without_audio_says_so_and_has_no_audio_task() -> None:
    svc, seg = segmented_services(audio=False)
    job_id = started_job(svc)
    drain(svc)
    assert seg.audio_copied == [] and AUDIO_TASK not in seg.encoded
    assert repo_of(svc).attempts[(job_id, 1)].plan == "3 segments of about 4 s; no audio"


def test_the_copy_decision_survives_the_stored_plan_and_old_plans_encode() -> None:
    plan = plan_segments([0.0, 1.0, 2.0], [0.0], 3.0, 4.0)
    stored = StoredPlan(plan=plan, video_stream=0, audio_stream=1, prefix="work/p/", audio_copy=True)
    assert StoredPlan.from_json(stored.to_json()) == stored
    old = json.loads(stored.to_json())
    del old["copy"]  # a plan recorded before the copy path existed
    assert StoredPlan.from_json(json.dumps(old)).audio_copy is False


def test_audio_in_chunks_is_encoded_by_the_segment_tasks_and_joined_at_the_stitch() -> None:
    svc, seg = segmented_services()
    seg.audio_chunks = (48000, 0)  # MP3 in MP4, say: not copied, timestamps count samples
    job_id = started_job(svc)
    outcomes = drain(svc)
    assert outcomes.count(Handled.COMPLETED) == 1
    assert sorted(seg.encoded) == [0, 1, 2] and sorted(seg.chunks_encoded) == [0, 1, 2]  # no audio task
    assert seg.joined == [[0, 1, 2]] and seg.audio_copied == []
    attempt = repo_of(svc).attempts[(job_id, 1)]
    assert attempt.plan == "3 segments of about 4 s; audio encoded to AAC in chunks, beside the segments"
    assert not [key for key in store_of(svc).objects if key.startswith("work/")]


def test_a_retry_encodes_again_a_segment_whose_audio_chunk_is_missing() -> None:
    svc, seg = segmented_services()
    seg.audio_chunks = (48000, 0)
    seg.always_fail[2] = InvalidVideoError()
    job_id = started_job(svc)
    drain(svc)
    assert repo_of(svc).jobs[job_id].status == JobStatus.FAILED
    store = store_of(svc)
    [chunk_1] = [key for key in store.objects if key.endswith("audio-00001.m4a")]
    del store.objects[chunk_1]  # segment 1's video part is there, its audio chunk is not
    del seg.always_fail[2]
    encoded_before = list(seg.encoded)
    retry.retry_job(svc, ALICE, job_id, None)
    drain(svc)
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED
    assert sorted(seg.encoded[len(encoded_before) :]) == [1, 2]  # segment 0 had both parts


def test_a_chunked_plan_survives_the_stored_plan() -> None:
    plan = plan_segments([float(i) for i in range(12)], [0.0, 4.0, 8.0], 12.0, 4.0)
    stored = StoredPlan(plan=plan, video_stream=0, audio_stream=1, prefix="work/p/", audio_chunks=(44100, 0))
    again = StoredPlan.from_json(stored.to_json())
    assert again == stored and again.tasks == [0, 1, 2]
    assert [c.first_frame for c in again.chunks()] == [0, round(4 * 44100 / 1024), round(8 * 44100 / 1024)]
    assert again.chunk_key(1) == "work/p/audio-00001.m4a" and again.chunk_key(AUDIO_TASK) is None


def test_too_few_keyframes_are_said_in_the_attempt() -> None:
    svc, seg = segmented_services()
    seg.keyframe_every = 10.0
    job_id = started_job(svc)
    drain(svc)
    plan = repo_of(svc).attempts[(job_id, 1)].plan
    assert plan is not None and "between keyframes" in plan
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED


class FakeTranscoder:
    def __init__(self) -> None:
        self.calls = 0

    def render(
        self,
        input_url: str,
        out_dir: Path,
        preset: Preset = DEFAULT_PRESET,
        on_progress: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Rendered:
        self.calls += 1
        return fake_rendered(out_dir, preset)


def test_a_short_video_keeps_the_single_pass() -> None:
    svc, seg = segmented_services(duration=4.0)
    single = FakeTranscoder()
    svc.transcoder = single
    job_id = started_job(svc)
    assert drain(svc) == [Handled.COMPLETED]
    assert single.calls == 1 and seg.encoded == [] and seg.stitched == 0
    assert repo_of(svc).jobs[job_id].segments_total is None


def test_a_silent_video_has_no_audio_task() -> None:
    svc, seg = segmented_services(audio=False)
    started_job(svc)
    drain(svc)
    assert sorted(seg.encoded) == [0, 1, 2]
    assert seg.stitched == 1


def test_progress_is_the_share_of_segment_seconds_done() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    queue = svc.queue
    assert isinstance(queue, FakeQueue)
    worker.process(svc, queue.sent.pop(0))  # the plan
    first = next(m for m in queue.sent if m.task == 0)
    worker.process(svc, first)
    job = repo_of(svc).jobs[job_id]
    assert job.progress == pytest.approx(4 / 12, abs=1e-3)
    assert (job.segments_done, job.segments_total) == (1, 3)


def test_a_redelivered_task_is_counted_once_and_the_job_completes_once() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    queue = svc.queue
    assert isinstance(queue, FakeQueue)
    worker.process(svc, queue.sent.pop(0))
    tasks = list(queue.sent)
    queue.sent.clear()
    outcomes = [worker.process(svc, m) for m in tasks + tasks]  # every task delivered twice
    assert outcomes.count(Handled.COMPLETED) == 1 and seg.stitched == 1
    assert sorted(seg.encoded) == [AUDIO_TASK, 0, 1, 2]
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED


def test_a_segment_failing_for_a_system_reason_is_delivered_again_then_succeeds_for_free() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.failures[1] = DownloadError(detail="connection reset")
    queue = svc.queue
    assert isinstance(queue, FakeQueue)
    worker.process(svc, queue.sent.pop(0))
    failing = next(m for m in queue.sent if m.task == 1)
    queue.sent.remove(failing)
    with pytest.raises(TaskRetryError):
        worker.process(svc, failing, Receipt("r", 1))
    drain(svc)
    assert repo_of(svc).jobs[job_id].status == JobStatus.PROCESSING  # segment 1 not done yet
    assert worker.process(svc, failing, Receipt("r", 2)) == Handled.COMPLETED  # SQS's redelivery
    assert sorted(seg.encoded) == [AUDIO_TASK, 0, 1, 2]  # the others were not redone
    assert svc.repo.get_workspace("ws-a").credits == 9  # type: ignore[union-attr]


def test_a_platform_failure_on_the_last_delivery_gets_a_free_automatic_try_reusing_the_parts() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.failures[2] = DownloadError("Failed to download from R2")
    drain(svc, receive_count=svc.settings.segment_max_tries)
    job = repo_of(svc).jobs[job_id]
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)  # the automatic try finished it
    first = repo_of(svc).attempts[(job_id, 1)]
    assert first.error == "Segment 3 of 3: Failed to download from R2"
    assert first.error_code == "R2_DOWNLOAD_FAILED"
    assert sorted(seg.encoded) == [AUDIO_TASK, 0, 1, 2]  # each part encoded once, over two attempts
    assert svc.repo.get_workspace("ws-a").credits == 9  # type: ignore[union-attr]  # the try was free


def test_a_segment_failing_on_every_try_fails_the_job_with_its_error_and_refunds() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.always_fail[2] = DownloadError("Failed to download from R2")
    drain(svc, receive_count=svc.settings.segment_max_tries)
    job = repo_of(svc).jobs[job_id]
    assert job.status == JobStatus.FAILED
    assert job.attempt == svc.settings.max_auto_attempts
    assert job.error == "Segment 3 of 3: Failed to download from R2"
    assert job.error_code == "R2_DOWNLOAD_FAILED"
    assert seg.stitched == 0
    assert svc.repo.get_workspace("ws-a").credits == 10  # type: ignore[union-attr]  # the platform's fault
    assert svc.repo.ledger_sum("ws-a") == 10


def test_a_permanent_segment_failure_fails_the_job_at_once() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.failures[0] = InvalidVideoError()
    drain(svc)
    job = repo_of(svc).jobs[job_id]
    assert (job.status, job.error_code) == (JobStatus.FAILED, "INVALID_VIDEO")
    assert job.error == "Segment 1 of 3: The file is not a readable video"


def test_a_manual_retry_re_encodes_only_the_segments_without_output_for_one_credit() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.failures[1] = InvalidVideoError()
    drain(svc)
    assert repo_of(svc).jobs[job_id].status == JobStatus.FAILED
    done_before = sorted(seg.encoded)
    seg.encoded.clear()
    retry.retry_job(svc, ALICE, job_id, None)
    drain(svc)
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED
    assert done_before == [AUDIO_TASK, 0]  # segment 1 failed; the tasks after it found the job failed
    assert sorted(seg.encoded) == [1, 2]  # the audio and segment 0 were kept and reused
    assert svc.repo.get_workspace("ws-a").credits == 8  # type: ignore[union-attr]  # start + retry


def test_tasks_of_a_failed_attempt_do_nothing() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    queue = svc.queue
    assert isinstance(queue, FakeQueue)
    worker.process(svc, queue.sent.pop(0))
    assert fail(repo_of(svc), QueueMessage(job_id, "ws-a", 1), "stopped", "X")
    assert set(drain(svc)) == {Handled.SKIPPED}
    assert seg.encoded == [] and seg.stitched == 0


def test_a_stitch_failing_for_a_system_reason_is_released_and_done_by_the_redelivery() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.stitch_failures.append(UploadOutputError())
    queue = svc.queue
    assert isinstance(queue, FakeQueue)
    worker.process(svc, queue.sent.pop(0))
    tasks = list(queue.sent)
    queue.sent.clear()
    for message in tasks[:-1]:
        assert worker.process(svc, message) == Handled.ENCODED
    with pytest.raises(TaskRetryError):
        worker.process(svc, tasks[-1])  # the last task stitches, and the stitch fails
    assert repo_of(svc).jobs[job_id].status == JobStatus.PROCESSING
    assert worker.process(svc, tasks[-1], Receipt("r", 2)) == Handled.COMPLETED  # SQS's redelivery
    assert seg.stitched == 1 and len(seg.encoded) == 4  # nothing encoded twice


def test_a_stitch_failing_on_its_last_delivery_is_settled_with_the_joins_error() -> None:
    svc, seg = segmented_services()
    job_id = started_job(svc)
    seg.stitch_failures.append(UploadOutputError())
    drain(svc, receive_count=svc.settings.segment_max_tries)
    first = repo_of(svc).attempts[(job_id, 1)]
    assert first.error_code == "R2_UPLOAD_FAILED"
    assert first.error == "Joining the segments: Failed to upload the result to R2"
    job = repo_of(svc).jobs[job_id]
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)
    assert seg.stitched == 1 and len(seg.encoded) == 4  # the automatic try only stitched
