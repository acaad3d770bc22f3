"""The worker against bare ffmpeg: 30 s 1080p30 noisy clips (~40 MB and ~760 MB) to 720p.

Interleaved in each round, so the machine's load weighs on all alike:
- bare ffmpeg: the adapter's own command line on the local file (the baseline);
- the worker, TRANSCODE_INPUT=download (the default): a worker PROCESS (devstack.worker, as a
  Lambda would run it) claims the attempt, copies the upload to WORK_DIR with ranged reads,
  transcodes the local file, uploads the result, records the outcome;
- the worker, TRANSCODE_INPUT=url: ffmpeg reads the presigned URL itself (what it did before).

The worker's time is the attempt's claim -> completed (startedAt -> finishedAt); its Python
process's peak RSS and ffmpeg's are read from getrusage in that process. Clips are made once with
ffmpeg's lavfi sources into .media/ (gitignored) and reused by later runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.core import BenchResult, Context, Table, median
from benchmarks.fixtures import quiesce, tenant
from chalicelib.adapters.ffmpeg import FFmpegTranscoder, build_ffmpeg_args
from chalicelib.config import Settings
from devstack import REPO_ROOT
from tests.support.api import Api

NAME = "worker"
TITLE = "Worker vs bare ffmpeg: 30 s 1080p30 clips to 720p"
MEDIA = REPO_ROOT / ".media"
SECONDS, FPS = 30, 30
# (name, video bitrate, noise strength): noise keeps x264 at the bitrate, as camera footage would.
CLIPS = (("small", "10M", 12), ("large", "200M", 40))
TARGET_RATIO = 1.05
TARGET_RSS_MB = 300
# The worker process reports its own peak RSS from /proc (VmHWM: ru_maxrss would carry over the
# benchmark process's RSS at fork, which holds the moto server's objects) and the CPU seconds it
# and its ffmpeg/ffprobe children used (a figure the machine's load does not inflate).
CHILD = """
import json, resource
from pathlib import Path
from devstack.worker import run_worker
received = run_worker(once=True)
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("WORKER-RESULT " + json.dumps({
    "received": received,
    "python_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
    "ffmpeg_rss_mb": kids.ru_maxrss / 1024,
    "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
}))
"""


def make_clip(name: str, bitrate: str, noise: int) -> Path:
    """A 30 s 1080p30 H.264 + AAC clip at `bitrate`, moov at the end (as cameras write it)."""
    path = MEDIA / f"{name}-1080p30-{SECONDS}s-{bitrate}-n{noise}.mp4"
    if path.exists():
        return path
    MEDIA.mkdir(exist_ok=True)
    video = f"testsrc2=size=1920x1080:rate={FPS}:duration={SECONDS},noise=alls={noise}:allf=t+u"
    audio = f"sine=frequency=440:sample_rate=44100:duration={SECONDS}"
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
        + ["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio]
        + ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-maxrate", bitrate]
        + ["-bufsize", bitrate, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest"]
        + [str(partial)],
        check=True,
        timeout=1800,
    )
    partial.rename(path)
    return path


@dataclass
class Output:
    codec: str
    width: int
    height: int
    duration: float
    kbps: float


def probe_output(settings: Settings, source: str) -> Output:
    done = subprocess.run(
        [
            settings.ffprobe_path,
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            source,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(done.stdout)
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    duration = float(data["format"]["duration"])
    return Output(
        video["codec_name"],
        int(video["width"]),
        int(video["height"]),
        duration,
        int(data["format"]["bit_rate"]) / 1000,
    )


@dataclass
class WorkerRun:
    seconds: float  # claim -> completed
    python_rss_mb: float
    ffmpeg_rss_mb: float
    cpu_s: float
    download_s: float | None
    transcode_s: float | None
    output: Output
    tmp_mb: float


def through_worker(ctx: Context, owner: Api, staged: str, size: int, mode: str) -> WorkerRun:
    """One job: created through the API, its upload copied in S3, started, run by a worker process."""
    s3 = ctx.stack.client("s3")
    bucket = ctx.stack.env["R2_BUCKET"]
    created = owner.post("/jobs", json={"filename": "clip.mp4", "contentType": "video/mp4", "size": size})
    assert created.status_code == 201, created.text
    job = created.json()["job"]
    s3.copy_object(Bucket=bucket, Key=job["inputFileKey"], CopySource={"Bucket": bucket, "Key": staged})
    started = owner.post(f"/jobs/{job['id']}/start")
    assert started.status_code == 202, started.text
    env = {**os.environ, **ctx.stack.env, "TRANSCODE_INPUT": mode, "WORK_DIR": str(ctx.tmp)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    if child.returncode != 0:
        raise RuntimeError(f"worker process failed: {child.stderr[-3000:]}")
    result = json.loads(child.stdout.split("WORKER-RESULT ", 1)[1].splitlines()[0])
    detail = owner.job(job["id"])
    if detail["status"] != "completed":
        raise RuntimeError(f"job {job['id']} is {detail['status']}: {detail.get('error')}")
    attempt = detail["attempts"][-1]
    seconds = (
        datetime.fromisoformat(attempt["finishedAt"]) - datetime.fromisoformat(attempt["startedAt"])
    ).total_seconds()
    metrics = _emf(child.stdout)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": detail["outputFileKey"]})
    output = probe_output(Settings(), url)
    out_mb = s3.head_object(Bucket=bucket, Key=detail["outputFileKey"])["ContentLength"] / 1e6
    return WorkerRun(
        seconds=seconds,
        python_rss_mb=result["python_rss_mb"],
        ffmpeg_rss_mb=result["ffmpeg_rss_mb"],
        cpu_s=result["cpu_s"],
        download_s=metrics.get("DownloadSeconds"),
        transcode_s=metrics.get("TranscodeSeconds"),
        output=output,
        tmp_mb=out_mb + (size / 1e6 if mode == "download" else 0),
    )


def _emf(stdout: str) -> dict[str, float]:
    """The EMF metrics the worker printed (one JSON object per line)."""
    found: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        doc = json.loads(line)
        for name in ("DownloadSeconds", "TranscodeSeconds"):
            if name in doc:
                value = doc[name]
                found[name] = float(value[0] if isinstance(value, list) else value)
    return found


def bare(settings: Settings, clip: Path, out: Path) -> tuple[float, Output]:
    transcoder = FFmpegTranscoder.from_settings(settings)
    probe = transcoder.probe(str(clip), timeout=60)
    args = build_ffmpeg_args(
        settings.ffmpeg_path,
        str(clip),
        out,
        video_stream=probe.video_stream,
        audio_stream=probe.audio_stream,
        max_height=720,  # mp4-720p, the default preset
        preset=settings.transcode_preset,
        crf=settings.transcode_crf,
    )
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - started, probe_output(settings, str(out))


def run(ctx: Context, res: BenchResult) -> None:
    settings = Settings()
    failed, drained = quiesce(ctx.stack)
    ctx.say(f"quiet queue first: {failed} queued jobs failed, {drained} messages deleted")
    rounds = {"small": ctx.n(3, 1), "large": ctx.n(2, 0)}  # --quick: the small clip once
    owner = tenant(ctx.stack, ctx.api_url, credits=2 * sum(rounds.values()) + 2)
    table = Table(
        f"{TITLE} (x264 preset {settings.transcode_preset}, crf {settings.transcode_crf}); medians",
        [
            "clip",
            "runner",
            "runs",
            "s",
            "x bare",
            "download s",
            "transcode s",
            "Python RSS MB",
            "ffmpeg RSS MB (at most)",
            "CPU s",
            "/tmp MB",
            "output",
        ],
    )
    res.tables.append(table)
    res.data["clips"] = {}
    for name, bitrate, noise in CLIPS:
        if not rounds[name]:
            continue
        t0 = time.perf_counter()
        clip = make_clip(name, bitrate, noise)
        size = clip.stat().st_size
        ctx.say(f"{name} clip: {size / 1e6:.0f} MB ({time.perf_counter() - t0:.0f} s to make or find)")
        staged = f"bench/{clip.name}"
        t0 = time.perf_counter()
        ctx.stack.client("s3").upload_file(str(clip), ctx.stack.env["R2_BUCKET"], staged)
        ctx.say(f"  staged in moto in {time.perf_counter() - t0:.0f} s (not timed)")
        bare_runs: list[tuple[float, Output]] = []
        worker_runs: dict[str, list[WorkerRun]] = {"download": [], "url": []}
        for i in range(rounds[name]):
            bare_runs.append(bare(settings, clip, ctx.tmp / "bare.mp4"))
            ctx.say(f"  round {i + 1}: bare ffmpeg {bare_runs[-1][0]:.1f} s")
            for mode in worker_runs:
                w = through_worker(ctx, owner.api, staged, size, mode)
                worker_runs[mode].append(w)
                ctx.say(f"  round {i + 1}: worker ({mode}) {w.seconds:.1f} s, download {w.download_s}")
        clip_data = _report(res, table, name, size, bare_runs, worker_runs)
        ctx.shared.setdefault("worker", {})[name] = {**clip_data, "clip_seconds": SECONDS}


def _report(
    res: BenchResult,
    table: Table,
    name: str,
    size: int,
    bare_runs: list[tuple[float, Output]],
    worker_runs: dict[str, list[WorkerRun]],
) -> dict[str, Any]:
    base = median([b for b, _ in bare_runs])
    out = bare_runs[-1][1]
    describe = f"{out.codec} {out.width}x{out.height} {out.duration:.2f} s {out.kbps:,.0f} kb/s"
    table.add(
        f"{name} ({size / 1e6:.0f} MB)",
        "bare ffmpeg, local file",
        len(bare_runs),
        base,
        1.0,
        "",
        "",
        "",
        "",
        "",
        "",
        describe,
    )
    clip_data: dict[str, Any] = {"mb": round(size / 1e6, 1), "bare_s": round(base, 2), "output": vars(out)}
    for mode, runs in worker_runs.items():
        secs = median([w.seconds for w in runs])
        ratio = secs / base
        last = runs[-1].output
        same = (last.codec, last.width, last.height) == (out.codec, out.width, out.height)
        res.check(f"worker {name} {mode}: same codec and size as bare ffmpeg", same, f"{last} vs {out}")
        res.check(
            f"worker {name} {mode}: same duration as bare ffmpeg", abs(last.duration - out.duration) < 0.1
        )
        python_rss = max(w.python_rss_mb for w in runs)
        table.add(
            "",
            f"worker, TRANSCODE_INPUT={mode}",
            len(runs),
            secs,
            ratio,
            _median_or_blank([w.download_s for w in runs]),
            _median_or_blank([w.transcode_s for w in runs]),
            python_rss,
            max(w.ffmpeg_rss_mb for w in runs),
            median([w.cpu_s for w in runs]),
            max(w.tmp_mb for w in runs),
            f"{last.codec} {last.width}x{last.height} {last.duration:.2f} s {last.kbps:,.0f} kb/s",
        )
        clip_data[mode] = {
            "s": round(secs, 2),
            "x_bare": round(ratio, 3),
            "python_rss_mb": round(python_rss),
            "tmp_mb": round(max(w.tmp_mb for w in runs)),
            "cpu_s": round(median([w.cpu_s for w in runs]), 2),
        }
        if mode == "download":
            download = _median_or_blank([w.download_s for w in runs])
            res.target(
                f"worker ({name} clip) claim -> completed",
                f"{secs:.1f} s vs bare ffmpeg {base:.1f} s = {ratio:.2f}x",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
                ""
                if ratio <= TARGET_RATIO
                else (
                    f"by {ratio - TARGET_RATIO:.2f}x; the copy to /tmp took {_seconds(download)} "
                    "before ffmpeg started (moto re-reads the whole object for every ranged GET; "
                    "R2 does not): overlapping the copy with the transcode would close it"
                ),
            )
            res.target(
                f"worker ({name} clip) Python RSS",
                f"{python_rss:.0f} MB",
                f"<= {TARGET_RSS_MB} MB",
                python_rss <= TARGET_RSS_MB,
            )
    res.data["clips"][name] = clip_data
    return clip_data


def _seconds(value: float | str) -> str:
    return f"{value:.2f} s" if isinstance(value, float) else "an unknown time"


def _median_or_blank(values: list[float | None]) -> float | str:
    real = [v for v in values if v is not None]
    return median(real) if real else ""
