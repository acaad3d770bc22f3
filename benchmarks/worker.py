"""4. The worker: a 10 s 1080p30 clip (testsrc2 + sine) transcoded to 720p, end to end and alone.

- end to end: POST /jobs/{id}/start until GET /jobs/{id} says completed (polled every 100 ms),
  with ONE worker thread (tests.support.stack.Workers) polling the queue and running the real
  handler, which reads the upload from its presigned URL and uploads the result;
- the transcoder as the worker calls it (from the presigned URL), timed inside that run;
- FFmpegTranscoder.transcode on the local file (ffprobe + ffmpeg + ffprobe of the output);
- the ffmpeg command alone on the local file (the same arguments the adapter builds).
"""

from __future__ import annotations

import math
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import backend
from benchmarks.backend import signature
from benchmarks.core import BenchResult, Context, Table, median
from benchmarks.fixtures import quiesce, tenant
from chalicelib import bootstrap
from chalicelib.adapters.ffmpeg import FFmpegTranscoder, build_ffmpeg_args
from chalicelib.processing.context import Services
from chalicelib.processing.ports import TranscodeResult
from tests.support.api import Api
from tests.support.media import make_clip
from tests.support.stack import Workers

NAME = "worker"
TITLE = "Worker: 10 s 1080p30 clip to 720p"
SECONDS, WIDTH, HEIGHT, FPS = 10, 1920, 1080, 30
POLL = 0.1
TIMEOUT = 300.0


class TimedTranscoder:
    """The real transcoder, timed: what the worker spends in ffprobe + ffmpeg."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runs: list[tuple[float, float, TranscodeResult]] = []  # (started, ended, result)

    def transcode(self, input_url: str, output_path: Path, on_progress: Any = None) -> TranscodeResult:
        started = time.perf_counter()
        result: TranscodeResult = self.inner.transcode(input_url, output_path, on_progress=on_progress)
        self.runs.append((started, time.perf_counter(), result))
        return result


@dataclass
class Trip:
    """One job through the API and the worker."""

    status: str
    error: str | None
    seconds: float  # POST /start -> completed seen
    pickup: float  # POST /start -> processing seen (100 ms polling)
    worker: float  # the attempt's startedAt -> finishedAt (claim -> completed)
    transcode: float
    result: TranscodeResult | None
    round_trips: str  # the worker's backend calls, long polls and deletes aside
    outside_ms: float  # the worker's backend time outside the transcoder


def through_worker(owner: Api, data: bytes, timed: TimedTranscoder) -> Trip:
    job = owner.create(data, "holiday.mp4")
    before = len(timed.runs)
    with backend.record(all_threads=True) as rec:
        t0 = time.perf_counter()
        r = owner.post(f"/jobs/{job['id']}/start")
        assert r.status_code == 202, r.text
        pickup = math.nan
        while True:
            detail = owner.job(job["id"])
            now = time.perf_counter()
            if detail["status"] != "queued" and math.isnan(pickup):
                pickup = now - t0
            if detail["status"] in ("completed", "failed"):
                break
            if now - t0 > TIMEOUT:
                raise TimeoutError(f"job {job['id']} still {detail['status']} after {TIMEOUT:.0f} s")
            time.sleep(POLL)
        seconds = time.perf_counter() - t0
    attempt = detail["attempts"][-1]
    worker = (
        datetime.fromisoformat(attempt["finishedAt"]) - datetime.fromisoformat(attempt["startedAt"])
    ).total_seconds()
    mine = [c for c in rec.calls if c.op not in ("sqs:ReceiveMessage", "sqs:DeleteMessageBatch")]
    transcode, result, outside = math.nan, None, math.nan
    if len(timed.runs) > before:
        started, ended, result = timed.runs[-1]
        transcode = ended - started
        outside = sum(c.seconds for c in mine if not started <= c.started <= ended) * 1000
    counts = Counter(c.op for c in mine)
    return Trip(
        detail["status"],
        detail["error"],
        seconds,
        pickup,
        worker,
        transcode,
        result,
        signature(counts),
        outside,
    )


def run(ctx: Context, res: BenchResult) -> None:
    e2e_runs, alone_runs = ctx.n(3, 1), ctx.n(3, 1)
    clip = ctx.tmp / "clip-1080p30-10s.mp4"
    started = time.perf_counter()
    make_clip(clip, seconds=SECONDS, width=WIDTH, height=HEIGHT, fps=FPS)
    made_in = time.perf_counter() - started
    size_mb = clip.stat().st_size / 1e6
    ctx.say(f"clip: {size_mb:.1f} MB, made in {made_in:.1f} s")
    real = bootstrap.services()
    settings = real.settings
    transcoder = FFmpegTranscoder.from_settings(settings)
    frames = SECONDS * FPS
    table = Table(
        f"{TITLE} (x264 preset {settings.transcode_preset}, crf {settings.transcode_crf}; "
        f"source {size_mb:.1f} MB H.264 ultrafast + AAC)",
        ["stage", "runs", "median s", "x realtime", "fps", "notes"],
    )
    res.tables.append(table)
    rows: dict[str, Any] = {}
    res.data["rows"] = rows
    res.data["clip"] = {"seconds": SECONDS, "size": f"{WIDTH}x{HEIGHT}@{FPS}", "mb": round(size_mb, 1)}

    def row(label: str, samples: list[float], notes: str = "") -> None:
        m = median(samples)
        table.add(label, len(samples), m, SECONDS / m, frames / m, notes)
        rows[label] = {
            "runs": len(samples),
            "median_s": round(m, 2),
            "x_realtime": round(SECONDS / m, 2),
            "notes": notes,
        }
        ctx.say(f"{label}: {m:.2f} s ({SECONDS / m:.2f}x realtime) {notes}")

    # -- end to end through the API and one worker thread ---------------------------------------
    failed, drained = quiesce(ctx.stack)
    ctx.say(f"quiet queue first: {failed} queued jobs failed, {drained} messages deleted")
    backend.install(ctx.stack.ddb_url)
    timed = TimedTranscoder(real.transcoder)
    bootstrap.override(Services(settings, real.repo, real.store, real.queue, timed))
    owner = tenant(ctx.stack, ctx.api_url, credits=e2e_runs + 1)
    warm_clip = make_clip(ctx.tmp / "warm.mp4", seconds=1, width=320, height=240)
    workers = Workers(ctx.stack)
    trips: list[Trip] = []
    try:
        workers.start()
        warm = through_worker(owner.api, warm_clip.read_bytes(), timed)  # first-use costs, not counted
        res.check("worker warm-up job completed", warm.status == "completed", str(warm.error))
        data = clip.read_bytes()
        for i in range(e2e_runs):
            trip = through_worker(owner.api, data, timed)
            if res.check(f"worker run {i + 1}: completed", trip.status == "completed", str(trip.error)):
                size = (trip.result.width, trip.result.height) if trip.result else None
                res.check(f"worker run {i + 1}: output is 1280x720", size == (1280, 720), str(size))
                trips.append(trip)
    finally:
        bootstrap.override(None)
        workers.stop()

    # -- the transcoder and ffmpeg alone on the local file (interleaved) ---------------------------
    out = ctx.tmp / "out.mp4"
    probe = transcoder.probe(str(clip), timeout=60)
    args = build_ffmpeg_args(
        settings.ffmpeg_path,
        str(clip),
        out,
        video_stream=probe.video_stream,
        audio_stream=probe.audio_stream,
        max_height=settings.transcode_max_height,
        preset=settings.transcode_preset,
        crf=settings.transcode_crf,
    )
    local, bare = [], []
    for _ in range(alone_runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, timeout=TIMEOUT)
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        transcoder.transcode(str(clip), out)
        local.append(time.perf_counter() - started)

    if trips:
        pick = median([t.pickup for t in trips]) * 1000
        in_worker = median([t.worker for t in trips])
        row(
            "end to end: POST /start -> completed",
            [t.seconds for t in trips],
            f"pickup seen after {pick:.0f} ms (polled every {POLL * 1000:.0f} ms); "
            f"claim -> completed {in_worker:.2f} s",
        )
        outside = median([t.worker - t.transcode for t in trips]) * 1000
        row(
            "  the transcoder inside the worker (presigned URL)",
            [t.transcode for t in trips],
            f"the worker's other work: {outside:.0f} ms, of which backend "
            f"{median([t.outside_ms for t in trips]):.0f} ms",
        )
        res.data["worker_round_trips"] = trips[-1].round_trips
    row("FFmpegTranscoder.transcode, local file", local, "ffprobe + ffmpeg + ffprobe of the output")
    row("ffmpeg alone, local file", bare, "the adapter's own arguments")
    res.notes += [
        f"The source: {SECONDS} s of testsrc2 {WIDTH}x{HEIGHT} at {FPS} fps + a 440 Hz sine "
        "(tests.support.media.make_clip, moov at the end). fps = source frames / seconds.",
        "One worker thread in the benchmark process (the moto server, S3 and SQS, runs there too); "
        "a 1 s 320x240 job goes through first and is not counted.",
    ]
    if trips:
        res.notes.append(f"The worker's backend calls per job: {trips[-1].round_trips}.")
