"""Long videos through the real stack: API → SQS → worker(s) → DynamoDB Local → moto S3.

Thresholds are set small (segments of 4 s, threshold 5 s) so short 360p clips take the
segmented path and the suite's time stays sane.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib import bootstrap
from chalicelib.domain import AUDIO_TASK, Preset, QueueMessage
from chalicelib.errors import InvalidVideoError
from chalicelib.processing import worker as worker_rules
from chalicelib.processing.context import Services
from chalicelib.processing.worker import Handled
from tests.support.api import Tenant, new_tenant
from tests.support.invariants import ledger_mismatches
from tests.support.media import decodes, first_packets, make_long_form_clip, stream_facts
from tests.support.stack import AwsStack, Workers
from tests.support.streams import read_stream

pytestmark = pytest.mark.integration

SMALL = {"segment_threshold_seconds": 5.0, "segment_seconds": 4.0}
SMALL_ENV = {"SEGMENT_THRESHOLD_SECONDS": "5", "SEGMENT_SECONDS": "4"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "lecture.mp4"
    return make_long_form_clip(path, 12, width=640, height=360, fps=25).read_bytes()


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server)


class FlakySegmenter:
    """The real segmenter; fails the segment tasks it is told to, once each."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_once: dict[int, Exception] = {}
        self.encoded: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def render_segment(self, input_url: str, span: Any, *args: Any, **kwargs: Any) -> Any:
        if span.index in self.fail_once:
            raise self.fail_once.pop(span.index)
        self.encoded.append(span.index)
        return self.inner.render_segment(input_url, span, *args, **kwargs)

    def encode_audio(self, *args: Any, **kwargs: Any) -> float:
        self.encoded.append(AUDIO_TASK)
        return float(self.inner.encode_audio(*args, **kwargs))


@pytest.fixture
def segmenting(aws_stack: AwsStack) -> Iterator[FlakySegmenter]:
    """The test process's workers take the segmented path for anything over 5 s."""
    real = bootstrap.services()
    assert real.segmenter is not None
    flaky = FlakySegmenter(real.segmenter)
    settings = real.settings.model_copy(update=SMALL)
    bootstrap.override(Services(settings, real.repo, real.store, real.queue, real.transcoder, flaky))
    yield flaky
    bootstrap.override(None)


def download(tenant: Tenant, job_id: str, path: Path) -> Path:
    url = tenant.api.get(f"/jobs/{job_id}/download").json()["url"]
    response = requests.get(url, timeout=60)
    assert response.status_code == 200
    path.write_bytes(response.content)
    return path


def work_objects(aws_stack: AwsStack, workspace_id: str, job_id: str) -> list[str]:
    listed = aws_stack.client("s3").list_objects_v2(
        Bucket=aws_stack.env["R2_BUCKET"], Prefix=f"work/{workspace_id}/{job_id}/"
    )
    return [item["Key"] for item in listed.get("Contents", [])]


def assert_output_matches_source(out: Path) -> None:
    facts = stream_facts(out)
    assert facts["video"]["frames"] == 12 * 25
    assert abs(facts["video"]["duration"] - 12.0) <= 1 / 25 + 1e-6
    assert facts["audio"]["start"] == pytest.approx(facts["video"]["start"], abs=1 / 25)
    assert facts["audio"]["duration"] == pytest.approx(12.0, abs=0.05)


def test_a_long_video_is_encoded_in_segments_by_several_workers_and_completes_once(
    tenant: Tenant,
    clip: bytes,
    worker: Workers,
    segmenting: FlakySegmenter,
    aws_stack: AwsStack,
    tmp_path: Path,
) -> None:
    worker.start()  # a second poller: segments run in parallel
    job = tenant.api.submit(clip, "lecture.mp4")
    done = tenant.api.wait_for(job["id"], "completed", "failed", timeout=180)
    assert done["status"] == "completed", done
    assert (done["segmentsTotal"], done["segmentsDone"]) == (3, 3)
    plan = "3 segments of about 4 s; audio encoded to AAC in chunks, beside the segments"
    assert done["attempts"][0]["plan"] == plan
    assert sorted(segmenting.encoded) == [0, 1, 2]
    assert len(done["attempts"]) == 1 and done["attempts"][0]["outcome"] == "succeeded"
    assert_output_matches_source(download(tenant, job["id"], tmp_path / "out.mp4"))
    assert tenant.api.credits() == 9  # one credit, whatever the number of segments
    assert work_objects(aws_stack, tenant.workspace_id, job["id"]) == []  # intermediates deleted
    assert ledger_mismatches() == []


def test_a_matroska_source_keeps_the_whole_file_audio_task(
    tenant: Tenant,
    worker: Workers,
    segmenting: FlakySegmenter,
    aws_stack: AwsStack,
    tmp_path: Path,
) -> None:
    # Matroska counts milliseconds: no chunk can start on its sample, so one task copies the AAC
    source = make_long_form_clip(tmp_path / "lecture.mkv", 12, width=640, height=360)
    job = tenant.api.submit(source.read_bytes(), "lecture.mkv")
    done = tenant.api.wait_for(job["id"], "completed", "failed", timeout=180)
    assert done["status"] == "completed", done
    assert done["attempts"][0]["plan"] == "3 segments of about 4 s; audio copied (already AAC)"
    assert sorted(segmenting.encoded) == [AUDIO_TASK, 0, 1, 2]
    assert_output_matches_source(download(tenant, job["id"], tmp_path / "out.mp4"))
    assert work_objects(aws_stack, tenant.workspace_id, job["id"]) == []


def test_a_permanent_segment_failure_fails_the_job_and_a_retry_encodes_only_what_is_missing(
    tenant: Tenant,
    clip: bytes,
    worker: Workers,
    segmenting: FlakySegmenter,
    aws_stack: AwsStack,
    tmp_path: Path,
) -> None:
    worker.stop()
    segmenting.fail_once[1] = InvalidVideoError()
    job = tenant.api.submit(clip, "lecture.mp4")
    worker.run_once()
    failed = tenant.api.job(job["id"])
    assert (failed["status"], failed["errorCode"]) == ("failed", "INVALID_VIDEO")
    assert failed["error"] == "Segment 2 of 3: The file is not a readable video"
    kept = work_objects(aws_stack, tenant.workspace_id, job["id"])
    assert len(kept) >= 1  # segment 1's part survives the failure
    before = list(segmenting.encoded)
    assert 0 in before

    assert tenant.api.post(f"/jobs/{job['id']}/retry").status_code == 200
    worker.run_once()
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed", done
    again = segmenting.encoded[len(before) :]
    assert not set(again) & set(before)  # nothing encoded twice
    assert sorted(set(before) | set(again)) == [0, 1, 2]
    assert_output_matches_source(download(tenant, job["id"], tmp_path / "out.mp4"))
    assert tenant.api.credits() == 8  # the start and the manual retry, 1 credit each
    assert ledger_mismatches() == []


def _kill_ffmpeg_under(work_dir: Path) -> None:
    """SIGKILL the ffmpeg processes writing under work_dir (their own session outlives the worker's)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "ffmpeg" in cmdline and str(work_dir) in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def test_a_segment_whose_worker_is_killed_mid_encode_is_retried_and_the_job_completes_once(
    tenant: Tenant,
    clip: bytes,
    worker: Workers,
    aws_stack: AwsStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker.stop()
    sqs, queue_url = aws_stack.client("sqs"), aws_stack.env["JOBS_QUEUE_URL"]
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    for name, value in {**SMALL_ENV, "WORK_DIR": str(work_dir), "TRANSCODE_PRESET": "slow"}.items():
        monkeypatch.setenv(name, value)
    # A crashed task comes back after the visibility timeout: short here, 16 minutes deployed.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "8"})
    try:
        job = tenant.api.submit(clip, "lecture.mp4")
        worker.start_process()
        deadline = time.monotonic() + 120
        while not any(p.name.startswith("task-") for p in work_dir.iterdir()):
            assert time.monotonic() < deadline, "no segment task started"
            time.sleep(0.05)
        time.sleep(0.3)  # ffmpeg is encoding now
        worker.kill()
        _kill_ffmpeg_under(work_dir)
        interrupted = tenant.api.job(job["id"])
        assert interrupted["status"] == "processing" and interrupted["segmentsDone"] < 3
        worker.start_process()
        done = tenant.api.wait_for(job["id"], "completed", "failed", timeout=240)
    finally:
        worker.kill()
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "960"})
    assert done["status"] == "completed", done
    assert len(done["attempts"]) == 1 and done["attempts"][0]["outcome"] == "succeeded"
    assert (done["segmentsTotal"], done["segmentsDone"]) == (3, 3)
    assert_output_matches_source(download(tenant, job["id"], tmp_path / "out.mp4"))
    assert tenant.api.credits() == 9
    assert ledger_mismatches() == []


# --- a long video as HLS: a ladder per segment, published as segments finish in order ----------


@pytest.fixture(scope="module")
def hd_lecture(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "hd-lecture.mp4"
    return make_long_form_clip(path, 12, width=1280, height=720, fps=10).read_bytes()


def test_a_long_hls_video_plays_from_its_first_segments_and_completes_as_an_event_stream_with_endlist(
    tenant: Tenant,
    hd_lecture: bytes,
    worker: Workers,
    segmenting: FlakySegmenter,
    aws_stack: AwsStack,
    tmp_path: Path,
) -> None:
    worker.stop()
    r = tenant.api.post(
        "/jobs",
        {"filename": "lecture.mp4", "contentType": "video/mp4", "size": len(hd_lecture), "preset": "hls"},
    )
    created = r.json()
    requests.put(created["upload"]["url"], data=hd_lecture, headers=created["upload"]["headers"], timeout=60)
    job_id = created["job"]["id"]
    assert tenant.api.post(f"/jobs/{job_id}/start").status_code == 202
    svc = bootstrap.services()
    attempt = QueueMessage(job_id, tenant.workspace_id, 1, preset=Preset.HLS)
    assert worker_rules.process(svc, attempt) == Handled.PLANNED
    planned = tenant.api.job(job_id)
    assert (
        planned["attempts"][0]["plan"]
        == "3 segments of about 4 s; renditions 720p, 480p; audio copied (already AAC)"
    )
    assert planned["playable"] is False

    # The audio and the first segment: the stream plays from the start while the rest is encoded.
    for task in (AUDIO_TASK, 0):
        assert worker_rules.process(svc, dataclasses.replace(attempt, task=task)) == Handled.ENCODED
    early = tenant.api.job(job_id)
    assert (early["status"], early["playable"]) == ("processing", True)
    playback = tenant.api.get(f"/jobs/{job_id}/playback").json()
    assert (playback["kind"], playback["live"]) == ("hls", True)
    live = read_stream(playback["url"], tmp_path / "live")
    for r in live["renditions"].values():
        media = r["media"]
        assert media.playlist_type == "event" and not media.is_endlist
        assert abs(sum(d for _, d, _ in r["segments"]) - 4.0) <= 0.1 + 1e-6  # the first segment's 4 s
        assert all(decodes(path) == "" for path, _, _ in r["segments"])

    worker.start()  # the rest
    done = tenant.api.wait_for(job_id, "completed", "failed", timeout=240)
    assert done["status"] == "completed", done
    assert (done["outputWidth"], done["outputHeight"]) == (1280, 720) and done["hasThumbnails"]
    final = read_stream(tenant.api.get(f"/jobs/{job_id}/playback").json()["url"], tmp_path / "final")
    starts = {}
    for name, r in final["renditions"].items():
        media, segments = r["media"], r["segments"]
        assert media.playlist_type == "event" and media.is_endlist
        assert all(round(d) <= media.target_duration for _, d, _ in segments)
        assert abs(sum(d for _, d, _ in segments) - 12.0) <= 0.1 + 1e-6, name  # within a frame
        joined = tmp_path / f"{name}.ts"
        joined.write_bytes(b"".join(path.read_bytes() for path, _, _ in segments))
        assert decodes(joined) == "", name
        facts = stream_facts(joined)
        assert facts["video"]["frames"] == 120, (
            name
        )  # every source frame once: no gap, no overlap at the joins
        starts[name] = [float(first_packets(path)[0]["pts_time"]) for path, _, _ in segments]
        assert all("K" in first_packets(path)[0]["flags"] for path, _, _ in segments)
    assert sorted(final["renditions"]) == ["480p", "720p"] and starts["720p"] == starts["480p"]
    audio = final["audio"]
    assert audio is not None and abs(sum(d for _, d, _ in audio["segments"]) - 12.0) <= 0.1
    assert tenant.api.credits() == 9
    assert work_objects(aws_stack, tenant.workspace_id, job_id) == []  # intermediates deleted
    assert ledger_mismatches() == []
