"""Multipart uploads on the real local stack (moto's S3 standing in for R2, DynamoDB Local): a
300 MB file in parallel parts through the HTTP API to a completed job; and every refusal (parts
missing, a forged part number, a part of the wrong size, a size lie at start, an abort, an upload
left unfinished) is a clear error that charges nothing.

Apart from the 300 MB run, the tests run the same app in-process with parts of 5 MiB above a
1 MiB threshold, so a multipart upload is a few megabytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
from chalicelib.config import MIB, Settings
from chalicelib.domain import utcnow
from chalicelib.processing.segment_plan import Span
from devstack.lambda_events import scheduled_event
from tests.support.api import Tenant, new_tenant
from tests.support.media import ffmpeg_binary, ffprobe_binary, make_clip, make_raw_clip, stream_facts
from tests.support.multipart import InProcessApi, create_in_parts
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration

PART = 5 * MIB
SCHEDULED = scheduled_event("vidproc-sweep")


@pytest.fixture(scope="session")
def raw_300mb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300 MB video (7 s of uncompressed 720p), made once per session and never committed."""
    return make_raw_clip(tmp_path_factory.mktemp("uploads") / "long-take.mkv", megabytes=300)


@dataclass
class Small:
    """A tenant, and the app in-process with small parts (a 1 MiB threshold, parts of 5 MiB)."""

    tenant: Tenant
    api: InProcessApi
    settings: Settings
    stack: AwsStack

    def credits(self) -> int:
        return self.tenant.api.credits()

    def object_size(self, key: str) -> int:
        return int(self.s3().head_object(Bucket=self.stack.env["R2_BUCKET"], Key=key)["ContentLength"])

    def uploads_of(self, key: str) -> list[Any]:
        listed = self.s3().list_multipart_uploads(Bucket=self.stack.env["R2_BUCKET"], Prefix=key)
        return list(listed.get("Uploads", []))

    def s3(self) -> Any:
        return self.stack.client("s3")


def small_settings() -> Settings:
    return bootstrap.services().settings.model_copy(
        update={"upload_multipart_threshold_bytes": MIB, "upload_part_bytes": PART}
    )


@pytest.fixture
def small(aws_stack: AwsStack, api_server: str, in_process: Any) -> Iterator[Small]:
    tenant = new_tenant(aws_stack, api_server, credits=5)
    settings = small_settings()
    yield Small(
        tenant, InProcessApi(in_process(settings=settings), str(tenant.api.token)), settings, aws_stack
    )


@pytest.fixture
def twelve_mb(tmp_path: Path) -> Path:
    """Three parts of 5, 5 and 2 MiB (+7 bytes): the bytes are never processed."""
    path = tmp_path / "take.mp4"
    path.write_bytes(os.urandom(12 * MIB + 7))
    return path


# --- the whole way, through the HTTP API ----------------------------------------------------------


def test_a_300_mb_file_goes_up_in_parallel_parts_and_its_job_completes(
    aws_stack: AwsStack, api_server: str, worker: Workers, raw_300mb: Path
) -> None:
    tenant = new_tenant(aws_stack, api_server)
    size = raw_300mb.stat().st_size
    up = create_in_parts(tenant.api, raw_300mb)
    assert up.part_size == 16 * MIB and up.part_count == -(-size // (16 * MIB))
    assert up.job["uploadExpiresAt"] == up.upload["expiresAt"] and up.job["partSize"] == 16 * MIB

    up.send(threads=4)
    listed = up.parts().json()
    assert [p["partNumber"] for p in listed["parts"]] == list(range(1, up.part_count + 1))
    assert listed["uploadedBytes"] == size and not listed["completed"]
    done = up.complete()
    assert done.status_code == 200, done.text
    assert done.json()["job"]["status"] == "uploading" and done.json()["job"]["uploadExpiresAt"] is None
    head = aws_stack.client("s3").head_object(Bucket=aws_stack.env["R2_BUCKET"], Key=up.job["inputFileKey"])
    assert head["ContentLength"] == size
    assert head["ETag"].endswith(f'-{up.part_count}"')  # one object made of the parts
    received = aws_stack.received_parts.of(up.job["inputFileKey"])
    assert sorted(received) == list(range(1, up.part_count + 1)) and sum(map(sum, received.values())) == size

    started = up.start()
    assert started.status_code == 202, started.text
    job = tenant.api.wait_for(up.job_id, "completed", "failed", timeout=300)
    assert job["status"] == "completed", job
    assert tenant.api.credits() == 9


# --- resuming, and every refusal: nothing charged -------------------------------------------------


def test_a_file_up_to_the_threshold_keeps_the_single_put(small: Small) -> None:
    for size, method in ((MIB, "PUT"), (MIB + 1, "MULTIPART")):
        r = small.api.call("POST", "/jobs", {"filename": "a.mp4", "contentType": "video/mp4", "size": size})
        assert r.status_code == 201 and r.json()["upload"]["method"] == method


def test_an_upload_resumes_from_the_parts_storage_lists_and_completes_only_when_they_add_up(
    small: Small, twelve_mb: Path
) -> None:
    import requests

    up = create_in_parts(small.api, twelve_mb)
    assert (up.part_size, up.part_count) == (PART, 3)
    up.send([1, 3])
    # moto's listing of its state (where the tests read sent mail) survives stored parts
    assert requests.get(f"{small.stack.moto_url}/moto-api/data.json", timeout=30).status_code == 200
    listed = up.parts().json()
    assert [(p["partNumber"], p["size"]) for p in listed["parts"]] == [(1, PART), (3, 2 * MIB + 7)]
    assert listed["uploadedBytes"] == PART + 2 * MIB + 7

    refused = up.complete()
    assert refused.status_code == 400 and refused.json()["code"] == "BAD_REQUEST"
    assert "1 part missing (2)" in refused.json()["message"]
    early = up.start()
    assert early.status_code == 400 and "missing or incomplete" in early.json()["message"]
    assert small.credits() == 5

    up.send([2])  # a resuming client sends only what storage does not list
    assert up.complete().status_code == 200
    assert small.object_size(up.job["inputFileKey"]) == twelve_mb.stat().st_size
    assert up.complete().status_code == 200  # repeating it (a lost answer) changes nothing
    assert up.start().status_code == 202 and small.credits() == 4


@pytest.mark.parametrize(
    ("numbers", "says"),
    [([0], "there is no part 0"), ([4], "there is no part 4"), ([1, 10_001], "there is no part 10001")],
)
def test_a_forged_part_number_is_refused(
    small: Small, twelve_mb: Path, numbers: list[int], says: str
) -> None:
    up = create_in_parts(small.api, twelve_mb)
    r = up.sign(numbers)
    assert r.status_code == 400 and r.json()["message"] == f"This upload has parts 1 to 3: {says}"
    assert "parts" not in r.json() and small.credits() == 5


def test_a_part_of_the_wrong_size_is_refused_at_complete(small: Small, twelve_mb: Path) -> None:
    import requests

    up = create_in_parts(small.api, twelve_mb)
    up.send([1, 3])
    part = up.sign([2]).json()["parts"][0]
    # R2 itself refuses this PUT (its Content-Length is signed in); moto does not check signatures,
    # so the short part gets stored and completing must catch it.
    assert requests.put(part["url"], data=b"x" * 1000, timeout=30).status_code == 200
    refused = up.complete()
    assert (
        refused.status_code == 400
        and f"part 2 has 1000 bytes where {PART} belong" in refused.json()["message"]
    )
    up.send([2])
    assert up.complete().status_code == 200 and small.credits() == 5


def test_a_size_lie_at_start_is_refused_and_charges_nothing(small: Small, twelve_mb: Path) -> None:
    up = create_in_parts(small.api, twelve_mb)
    up.send()
    assert up.complete().status_code == 200
    # Storage holds another object than the parts made (say, a PUT to the key from elsewhere).
    small.s3().put_object(Bucket=small.stack.env["R2_BUCKET"], Key=up.job["inputFileKey"], Body=b"x" * 1000)
    refused = up.start()
    assert refused.status_code == 400
    declared = twelve_mb.stat().st_size
    assert refused.json()["message"] == (
        f"The upload has 1000 bytes but {declared} were declared. Upload the whole file again."
    )
    assert small.credits() == 5


def test_abort_discards_what_storage_holds_and_cancels_the_job_without_a_charge(
    small: Small, twelve_mb: Path
) -> None:
    up = create_in_parts(small.api, twelve_mb)
    up.send([1])
    assert len(small.uploads_of(up.job["inputFileKey"])) == 1
    aborted = up.abort()
    assert aborted.status_code == 200 and aborted.json()["job"]["status"] == "cancelled"
    assert small.uploads_of(up.job["inputFileKey"]) == []
    for again in (up.parts(), up.sign([2]), up.complete(), up.abort()):
        assert again.status_code == 400 and "status: cancelled" in again.json()["message"]
    assert up.start().status_code == 400 and small.credits() == 5
    # The job's own cancel does the same to an upload in progress.
    other = create_in_parts(small.api, twelve_mb)
    other.send([1])
    cancelled = small.api.call("POST", f"/jobs/{other.job_id}/cancel", {})
    assert cancelled.status_code == 200 and small.uploads_of(other.job["inputFileKey"]) == []
    assert small.credits() == 5


def test_an_upload_left_unfinished_is_swept_after_its_expiry_and_the_job_says_why(
    aws_stack: AwsStack, api_server: str, in_process: Any, twelve_mb: Path
) -> None:
    import app

    tenant = new_tenant(aws_stack, api_server, credits=5)
    expiry = timedelta(seconds=small_settings().upload_multipart_expiry_seconds)
    began = utcnow() - expiry - timedelta(minutes=1)  # the upload began just over its expiry ago
    api = InProcessApi(in_process(settings=small_settings(), clock=lambda: began), str(tenant.api.token))
    up = create_in_parts(api, twelve_mb)
    up.send([1, 2])
    bootstrap.override(None)

    swept = app.sweep_stuck_jobs(SCHEDULED, None)  # the scheduled handler, on the real clock

    assert swept["uploadsExpired"] >= 1
    job = tenant.api.job(up.job_id)
    assert (job["status"], job["errorCode"], job["retryable"]) == ("failed", "UPLOAD_EXPIRED", False)
    assert job["error"] == (
        "The upload was not finished within 48 hours and was discarded. Choose the video again to upload it."
    )
    bucket = aws_stack.env["R2_BUCKET"]
    listed = aws_stack.client("s3").list_multipart_uploads(Bucket=bucket, Prefix=up.job["inputFileKey"])
    assert listed.get("Uploads", []) == []
    retried = tenant.api.post(f"/jobs/{up.job_id}/retry")
    assert retried.status_code == 409 and tenant.api.credits() == 5


def test_a_client_built_from_the_openapi_document_drives_a_multipart_upload(
    small: Small, twelve_mb: Path
) -> None:
    import requests

    doc = small.api.call("GET", "/openapi.json").json()
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }

    def call(operation: str, job_id: str = "", body: Any = None) -> Any:
        method, path = operations[operation]
        return small.api.call(method, path.replace("{jobId}", job_id), body)

    upload = doc["components"]["schemas"]["CreatedJobOut"]["properties"]["upload"]
    assert upload["discriminator"]["mapping"]["MULTIPART"] == "#/components/schemas/MultipartUploadOut"
    steps = ["postJobsJobIdUploadParts", "getJobsJobIdUploadParts", "postJobsJobIdUploadComplete"]
    links = doc["paths"]["/jobs"]["post"]["responses"]["201"]["links"]
    assert {*steps, "deleteJobsJobIdUpload", "postJobsJobIdStart"} <= set(links)

    size = twelve_mb.stat().st_size
    created = call("postJobs", body={"filename": "take.mp4", "contentType": "video/mp4", "size": size}).json()
    job_id, plan = created["job"]["id"], created["upload"]
    numbers = list(range(1, plan["partCount"] + 1))
    signed = call("postJobsJobIdUploadParts", job_id, {"partNumbers": numbers}).json()["parts"]
    data = twelve_mb.read_bytes()
    for part in signed:
        start = (part["partNumber"] - 1) * plan["partSize"]
        body = data[start : start + plan["partSize"]]
        assert requests.put(part["url"], data=body, headers=part["headers"], timeout=60).status_code == 200
    assert call("getJobsJobIdUploadParts", job_id).json()["uploadedBytes"] == size
    assert call("postJobsJobIdUploadComplete", job_id, {}).status_code == 200
    assert call("postJobsJobIdStart", job_id, {}).status_code == 202 and small.credits() == 4


# --- the segmented path reads a multipart object as any other --------------------------------------


def test_the_segmented_path_reads_a_multipart_object_by_ranges_as_any_other(
    small: Small, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=12, width=1280, height=720)  # ~10 MB, index at the end
    up = create_in_parts(small.api, clip, content_type="video/mp4")
    assert up.part_count >= 2
    up.send()
    assert up.complete().status_code == 200
    store, bucket = bootstrap.services().store, small.stack.env["R2_BUCKET"]
    single = f"tests/{up.job_id}/single"
    small.s3().put_object(Bucket=bucket, Key=single, Body=clip.read_bytes())
    segmenter = FFmpegSegmenter(
        FFmpegTranscoder(
            ffmpeg_path=ffmpeg_binary(), ffprobe_path=ffprobe_binary(), timeout_seconds=120, max_height=360
        )
    )

    parts_url = store.presign_download(up.job["inputFileKey"], 600)
    survey = segmenter.survey(parts_url)
    assert survey == segmenter.survey(store.presign_download(single, 600))
    span = Span(index=1, start=6.0, duration=2.0)  # across the parts' boundary in the middle of the file
    out = tmp_path / "segment.mp4"
    segmenter.encode_segment(parts_url, span, survey.video_stream, out)
    assert stream_facts(out)["video"]["frames"] == 50  # 2 s of 25 fps: every frame of the span
    assert small.credits() == 5
