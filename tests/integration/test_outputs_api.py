"""Presets, playback and a new file for a failed job, through the real API and worker.

The HLS stream is read as a player reads it, with an independent parser (the `m3u8` package):
the master playlist's renditions and BANDWIDTH (within 10 % of the peak segment bit rate
measured here, RFC 8216 4.3.4.2), each media playlist's segments (no longer than the target
duration, rounded as RFC 8216 4.3.3.1 says), every segment fetched through its presigned URL and
byte range and decoded, and the renditions cut at the same times on keyframes.
"""

from __future__ import annotations

import io
import math
import uuid
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.api import Tenant, new_tenant
from tests.support.invariants import ledger_mismatches
from tests.support.media import decodes, first_packets, make_clip, make_corrupt_file, probe_streams
from tests.support.stack import AwsStack, Workers
from tests.support.streams import measured_peak, read_stream

pytestmark = pytest.mark.integration

FPS = 10
PRESETS = ["mp4-720p", "mp4-1080p", "mp4-480p", "hls"]


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server)


@pytest.fixture(scope="module")
def full_hd(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    # 13 s: two full 6 s segments and a short one, in each of the three renditions.
    path = tmp_path_factory.mktemp("media") / "1080p.mp4"
    return make_clip(path, seconds=13, width=1920, height=1080, fps=FPS).read_bytes()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "720p.mp4"
    return make_clip(path, seconds=1, width=1280, height=720, fps=FPS).read_bytes()


def submit(tenant: Tenant, data: bytes, preset: str | None, name: str = "clip.mp4") -> dict[str, Any]:
    body: dict[str, Any] = {"filename": name, "contentType": "video/mp4", "size": len(data)}
    if preset:
        body["preset"] = preset
    r = tenant.api.post("/jobs", body)
    assert r.status_code == 201, r.text
    created = r.json()
    put = requests.put(created["upload"]["url"], data=data, headers=created["upload"]["headers"], timeout=60)
    assert put.status_code == 200
    started = tenant.api.post(f"/jobs/{created['job']['id']}/start")
    assert started.status_code == 202, started.text
    return dict(started.json()["job"])


# --- the presets as the API states them ---------------------------------------------------------


def test_the_api_lists_the_presets_and_refuses_an_unknown_one_naming_the_valid_ones(tenant: Tenant) -> None:
    listed = tenant.api.get("/presets").json()
    assert [p["id"] for p in listed["presets"]] == PRESETS and listed["default"] == "mp4-720p"
    named = "Unknown preset 'mp4-4k'. Valid presets: mp4-720p, mp4-1080p, mp4-480p, hls"
    for method, path, body in (
        ("POST", "/jobs", {"filename": "a.mp4", "contentType": "video/mp4", "size": 5, "preset": "mp4-4k"}),
        ("PUT", "/presets/default", {"preset": "mp4-4k"}),
        ("POST", f"/jobs/{uuid.uuid4()}/retry", {"preset": "mp4-4k"}),
    ):
        r = tenant.api.call(method, path, json=body)
        assert (r.status_code, r.json()) == (400, {"code": "BAD_REQUEST", "message": named}), path
    assert tenant.api.get("/jobs").json()["jobs"] == []  # nothing created


def test_an_upload_remembers_its_preset_for_the_workspace(tenant: Tenant) -> None:
    r = tenant.api.post(
        "/jobs", {"filename": "a.mp4", "contentType": "video/mp4", "size": 5, "preset": "mp4-480p"}
    )
    assert r.json()["job"]["preset"] == "mp4-480p"
    assert tenant.api.get("/presets").json()["default"] == "mp4-480p"
    r = tenant.api.post("/jobs", {"filename": "b.mp4", "contentType": "video/mp4", "size": 5})
    assert r.json()["job"]["preset"] == "mp4-480p"
    put = tenant.api.call("PUT", "/presets/default", json={"preset": "hls"})
    assert put.status_code == 200 and put.json()["default"] == "hls"


# --- HLS: what a player reads ---------------------------------------------------------------------


def test_an_hls_job_is_an_adaptive_ladder_a_player_can_read_segment_by_segment(
    tenant: Tenant, full_hd: bytes, worker: Workers, tmp_path: Path
) -> None:
    job = submit(tenant, full_hd, "hls", "talk.mov")
    done = tenant.api.wait_for(job["id"], "completed", "failed", timeout=240)
    assert done["status"] == "completed", done
    assert (done["preset"], done["outputWidth"], done["outputHeight"], done["playable"]) == (
        "hls",
        1920,
        1080,
        True,
    )
    assert abs(done["durationSeconds"] - 13.0) <= 1 / FPS + 1e-6
    assert done["posterUrl"] and done["hasThumbnails"]
    assert done["attempts"][0]["preset"] == "hls"

    playback = tenant.api.get(f"/jobs/{job['id']}/playback").json()
    assert (playback["kind"], playback["live"]) == ("hls", False)
    stream = read_stream(playback["url"], tmp_path)
    renditions = stream["renditions"]
    assert sorted(renditions, key=lambda n: -int(n[:-1])) == ["1080p", "720p", "480p"]
    sizes = {n: r["variant"].stream_info.resolution for n, r in renditions.items()}
    assert sizes == {"1080p": (1920, 1080), "720p": (1280, 720), "480p": (854, 480)}
    audio = stream["audio"]
    assert audio is not None and all(not decodes(path) for path, _, _ in audio["segments"])

    starts: dict[str, list[float]] = {}
    for name, r in renditions.items():
        media, segments = r["media"], r["segments"]
        assert media.playlist_type == "vod" and media.is_endlist
        target = media.target_duration
        assert all(round(d) <= target for _, d, _ in segments), [d for _, d, _ in segments]
        assert len(segments) == 3 and abs(sum(d for _, d, _ in segments) - 13.0) <= 1 / FPS + 1e-6
        measured = measured_peak([(d, n) for _, d, n in segments], target) + measured_peak(
            [(d, n) for _, d, n in audio["segments"]], target
        )
        declared = r["variant"].stream_info.bandwidth
        assert abs(declared - measured) <= 0.10 * measured, (name, declared, measured)
        assert "avc1.64" in r["variant"].stream_info.codecs and "mp4a.40.2" in r["variant"].stream_info.codecs
        for path, _, _ in segments:
            assert decodes(path) == "", path
            first = first_packets(path)[0]
            assert "K" in first["flags"], (path, first)  # every segment starts on a keyframe
        starts[name] = [float(first_packets(path)[0]["pts_time"]) for path, _, _ in segments]
    assert starts["1080p"] == starts["720p"] == starts["480p"], starts  # cut at the same times

    vtt = requests.get(playback["thumbnailsUrl"], timeout=30)
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert vtt.text.count("#xywh=") == 13  # one a second
    sheet = vtt.text.split("\n")[3].split("#xywh=")[0]
    assert requests.get(sheet, timeout=30).headers["Content-Type"] == "image/jpeg"

    download = requests.get(tenant.api.get(f"/jobs/{job['id']}/download").json()["url"], timeout=60)
    assert download.status_code == 200 and len(download.content) == done["outputSize"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as package:
        names = package.namelist()
    assert "master.m3u8" in names and "1080p/index.m3u8" in names and "poster.jpg" in names
    assert ledger_mismatches() == []


def test_a_playback_link_is_refused_when_forged_for_another_job_or_expired(
    tenant: Tenant, small: bytes, worker: Workers, api_server: str
) -> None:
    first = submit(tenant, small, "hls")
    other = submit(tenant, small, "hls")
    for job in (first, other):
        assert tenant.api.wait_for(job["id"], "completed", "failed", timeout=120)["status"] == "completed"
    url = tenant.api.get(f"/jobs/{first['id']}/playback").json()["url"]
    assert requests.get(url, timeout=30).status_code == 200
    token = parse_qs(urlsplit(url).query)["token"][0]
    until, mac = token.split(".")
    for bad in (
        f"{api_server}/jobs/{other['id']}/hls/master.m3u8?token={token}",  # another job's link
        f"{api_server}/jobs/{first['id']}/hls/master.m3u8?token={int(until) + 60}.{mac}",  # extended
        f"{api_server}/jobs/{first['id']}/hls/master.m3u8?token=1.{mac}",  # long expired
        f"{api_server}/jobs/{first['id']}/hls/master.m3u8",  # none
    ):
        r = requests.get(bad, timeout=30)
        assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (bad, r.text)


def test_an_mp4_job_plays_from_its_presigned_url_with_its_poster(
    tenant: Tenant, small: bytes, worker: Workers
) -> None:
    job = submit(tenant, small, "mp4-480p")
    done = tenant.api.wait_for(job["id"], "completed", "failed", timeout=120)
    assert (done["outputWidth"], done["outputHeight"], done["preset"]) == (854, 480, "mp4-480p")
    playback = tenant.api.get(f"/jobs/{job['id']}/playback").json()
    assert playback["kind"] == "mp4"
    video = requests.get(playback["url"], timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    poster = requests.get(playback["posterUrl"], timeout=30)
    assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"  # a JPEG
    listed = next(j for j in tenant.api.get("/jobs").json()["jobs"] if j["id"] == job["id"])
    assert listed["posterUrl"] and listed["outputSize"] == len(video.content)
    assert tenant.api.get(f"/jobs/{uuid.uuid4()}/playback").status_code == 404


# --- retry with another preset, and a new file for a failed job -----------------------------------


def test_a_retry_with_another_preset_produces_that_output_at_the_same_price(
    tenant: Tenant, small: bytes, worker: Workers, aws_stack: AwsStack, tmp_path: Path
) -> None:
    bad = make_corrupt_file(tmp_path / "bad.mp4", size=len(small)).read_bytes()
    job = submit(tenant, bad[: len(small)], "mp4-720p")
    assert tenant.api.wait_for(job["id"], "completed", "failed")["status"] == "failed"
    aws_stack.client("s3").put_object(Bucket=aws_stack.env["R2_BUCKET"], Key=job["inputFileKey"], Body=small)
    key = str(uuid.uuid4())
    r = tenant.api.post(f"/jobs/{job['id']}/retry", {"preset": "mp4-480p"}, headers={"Idempotency-Key": key})
    assert r.status_code == 200 and r.json() == {
        "success": True,
        "jobId": job["id"],
        "creditsCharged": 1,
        "preset": "mp4-480p",
    }
    again = tenant.api.post(
        f"/jobs/{job['id']}/retry", {"preset": "mp4-1080p"}, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 400  # one key, one intent: another preset is another request
    done = tenant.api.wait_for(job["id"], "completed", "failed")
    assert (done["status"], done["outputHeight"], done["preset"]) == ("completed", 480, "mp4-480p")
    assert [a["preset"] for a in done["attempts"]] == ["mp4-720p", "mp4-480p"]
    assert tenant.api.credits() == 8 and ledger_mismatches() == []


def test_a_new_file_for_a_failed_job_completes_it_keeping_its_history(
    tenant: Tenant, small: bytes, worker: Workers, aws_stack: AwsStack, tmp_path: Path
) -> None:
    job = submit(tenant, b"not a video at all" * 10, "mp4-720p", "broken.mp4")
    failed = tenant.api.wait_for(job["id"], "completed", "failed")
    assert (failed["errorCode"], failed["inputFailure"]) == ("INVALID_VIDEO", True)
    running = submit(tenant, small, None, "busy.mp4")
    r = tenant.api.post(
        f"/jobs/{running['id']}/replace",
        {"filename": "x.mp4", "contentType": "video/mp4", "size": len(small)},
    )
    assert r.status_code == 400 and r.json()["message"] == "Only failed jobs can get a new file"

    r = tenant.api.post(
        f"/jobs/{job['id']}/replace",
        {"filename": "fixed.mp4", "contentType": "video/mp4", "size": len(small)},
    )
    assert r.status_code == 200, r.text
    replaced = r.json()
    assert replaced["job"]["pendingUpload"] is True and replaced["job"]["status"] == "failed"
    early = tenant.api.post(f"/jobs/{job['id']}/retry")  # the new bytes have not arrived
    assert early.status_code == 400 and "new file" in early.json()["message"]
    put = requests.put(
        replaced["upload"]["url"], data=small, headers=replaced["upload"]["headers"], timeout=60
    )
    assert put.status_code == 200
    assert tenant.api.post(f"/jobs/{job['id']}/retry").status_code == 200
    done = tenant.api.wait_for(job["id"], "completed", "failed")
    assert (done["status"], done["originalFilename"], done["size"], done["pendingUpload"]) == (
        "completed",
        "fixed.mp4",
        len(small),
        False,
    )
    assert [a["outcome"] for a in done["attempts"]] == ["failed", "succeeded"]
    assert done["attempts"][0]["errorCode"] == "INVALID_VIDEO"  # the history stays
    stored = aws_stack.client("s3").get_object(Bucket=aws_stack.env["R2_BUCKET"], Key=done["inputFileKey"])
    assert stored["Body"].read() == small  # the old bytes are gone, replaced
    assert tenant.api.credits() == 7 and ledger_mismatches() == []
    assert math.isclose(done["durationSeconds"], 1.0, abs_tol=1 / FPS + 1e-6)
    output = tmp_path / "out.mp4"
    output.write_bytes(
        requests.get(tenant.api.get(f"/jobs/{job['id']}/download").json()["url"], timeout=60).content
    )
    assert sorted(s["codec_type"] for s in probe_streams(output)) == ["audio", "video"]
