"""Long videos through the real stack: API → SQS → worker(s) → DynamoDB Local → moto S3.

Thresholds are set small (segments of 4 s, threshold 5 s) so short 360p clips take the
segmented path and the suite's time stays sane.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib import bootstrap
from chalicelib.domain import AUDIO_TASK
from chalicelib.errors import InvalidVideoError
from chalicelib.processing.context import Services
from tests.support.api import Tenant, new_tenant
from tests.support.invariants import ledger_mismatches
from tests.support.media import make_long_form_clip, stream_facts
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration

SMALL = {"segment_threshold_seconds": 5.0, "segment_seconds": 4.0, "transcode_max_height": 360}
SMALL_ENV = {"SEGMENT_THRESHOLD_SECONDS": "5", "SEGMENT_SECONDS": "4", "TRANSCODE_MAX_HEIGHT": "360"}


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

    def encode_segment(self, input_url: str, span: Any, *args: Any, **kwargs: Any) -> float:
        if span.index in self.fail_once:
            raise self.fail_once.pop(span.index)
        self.encoded.append(span.index)
        return float(self.inner.encode_segment(input_url, span, *args, **kwargs))

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
