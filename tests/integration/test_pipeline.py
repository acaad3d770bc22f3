"""Upload → SQS → FFmpeg worker → download, with real ffmpeg on generated clips (issue 2, section 7)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib import bootstrap
from chalicelib.processing.context import Services
from tests.support import sqs_events
from tests.support.api import Tenant, new_tenant, repository
from tests.support.media import make_clip, make_corrupt_file, probe_streams, top_level_boxes
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return make_clip(path, seconds=2, width=1920, height=1080, fps=15).read_bytes()


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server)


class CountingTranscoder:
    """The real transcoder, counted: proves how many transcodes a delivery caused."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self._lock = inner, 0, threading.Lock()

    def render(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        return self.inner.render(*args, **kwargs)


@pytest.fixture
def counted(aws_stack: AwsStack) -> Any:
    real = bootstrap.services()
    counter = CountingTranscoder(real.transcoder)
    bootstrap.override(Services(real.settings, real.repo, real.store, real.queue, counter))
    yield counter
    bootstrap.override(None)


def test_full_pipeline_gives_a_playable_720p_h264_mp4(
    tenant: Tenant, clip: bytes, worker: Workers, tmp_path: Path
) -> None:
    job = tenant.api.submit(clip, "holiday.mov")
    done = tenant.api.wait_for(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["outputFileKey"].startswith(f"outputs/{tenant.workspace_id}/{job['id']}/")
    assert done["completedAt"] and done["error"] is None
    assert done["attempts"][0]["outcome"] == "succeeded"

    url = tenant.api.get(f"/jobs/{job['id']}/download").json()["url"]
    response = requests.get(url, timeout=60)
    assert response.status_code == 200
    assert 'filename="holiday.mp4"' in response.headers.get("Content-Disposition", "")
    out = tmp_path / "out.mp4"
    out.write_bytes(response.content)
    video = [s for s in probe_streams(out) if s["codec_type"] == "video"][0]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
    assert [s["codec_name"] for s in probe_streams(out) if s["codec_type"] == "audio"] == ["aac"]
    boxes = top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: plays before it has fully downloaded
    assert tenant.api.credits() == 9


def test_a_corrupt_upload_fails_with_a_clear_message(tenant: Tenant, worker: Workers, tmp_path: Path) -> None:
    data = make_corrupt_file(tmp_path / "bad.mp4").read_bytes()
    job = tenant.api.submit(data, "bad.mp4")
    failed = tenant.api.wait_for(job["id"], "failed", "completed")
    assert failed["status"] == "failed"
    assert failed["error"] == "The file is not a readable video"
    assert failed["errorCode"] == "INVALID_VIDEO"
    assert failed["attempts"][-1]["error"] == "The file is not a readable video"
    # ffmpeg's own words are kept for operators on the attempt, never shown in the API
    assert "stderr" not in json.dumps(failed).lower()
    attempt = repository().get_attempt(job["id"], 1)
    assert attempt is not None and attempt.stderr_tail


def test_a_missing_ffmpeg_is_tried_automatically_then_fails_with_ffmpeg_not_found_and_refunds(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.ffmpeg import FFmpegTranscoder

    worker.stop()
    real = bootstrap.services()
    broken = FFmpegTranscoder("/nonexistent/ffmpeg", "/nonexistent/ffprobe", timeout_seconds=30)
    bootstrap.override(Services(real.settings, real.repo, real.store, real.queue, broken))
    try:
        job = tenant.api.submit(clip)
        worker.run_once()
    finally:
        bootstrap.override(None)
    failed = tenant.api.job(job["id"])
    assert (failed["status"], failed["error"], failed["errorCode"]) == (
        "failed",
        "FFmpeg not found",
        "FFMPEG_NOT_FOUND",
    )
    assert [(a["trigger"], a["creditsCharged"]) for a in failed["attempts"]] == [
        ("initial", 1),
        ("auto", 0),
        ("auto", 0),
    ]
    assert failed["attempts"][0]["refunded"] is True
    assert failed["retryable"] is True and tenant.api.credits() == 10


def test_an_upload_gone_from_r2_fails_at_once_as_input_missing(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack
) -> None:
    worker.stop()
    job = tenant.api.submit(clip)
    aws_stack.client("s3").delete_object(Bucket=aws_stack.env["R2_BUCKET"], Key=job["inputFileKey"])
    worker.run_once()
    failed = tenant.api.job(job["id"])
    assert (failed["status"], failed["error"], failed["errorCode"]) == (
        "failed",
        "Failed to download from R2: the original upload no longer exists",
        "INPUT_MISSING",
    )
    assert failed["retryable"] is False and len(failed["attempts"]) == 1
    assert tenant.api.credits() == 9  # the input's fault: paid


def test_the_same_sqs_message_delivered_twice_runs_one_transcode(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack, counted: CountingTranscoder
) -> None:
    worker.stop()
    job = tenant.api.submit(clip)
    body = json.dumps({"jobId": job["id"], "workspaceId": tenant.workspace_id, "attempt": 1})
    aws_stack.client("sqs").send_message(QueueUrl=aws_stack.env["JOBS_QUEUE_URL"], MessageBody=body)
    worker.run_once()
    worker.run_once()  # and once more, after it finished: still a no-op
    aws_stack.client("sqs").send_message(QueueUrl=aws_stack.env["JOBS_QUEUE_URL"], MessageBody=body)
    worker.run_once()
    assert counted.calls == 1
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed" and len(done["attempts"]) == 1
    assert tenant.api.credits() == 9


def test_a_message_that_is_not_a_job_goes_to_the_dead_letter_queue_not_dropped(aws_stack: AwsStack) -> None:
    import app

    sqs, dlq = aws_stack.client("sqs"), aws_stack.env["JOBS_DLQ_URL"]
    event = sqs_events.event(
        sqs_events.record("not json", message_id="m-1"),
        sqs_events.record(json.dumps({"hello": 1}), message_id="m-2"),
    )
    result = app.handle_job_messages(event, None)
    assert result["batchItemFailures"] == []  # nothing to retry: they can never succeed
    bodies = []
    while messages := sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
    assert "not json" in bodies and json.dumps({"hello": 1}) in bodies
