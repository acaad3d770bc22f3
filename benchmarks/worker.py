"""The worker against bare ffmpeg: 30 s 1080p30 clips (~40 MB and ~760 MB) to 720p.

Interleaved in each round, so the machine's load weighs on all alike:
- bare ffmpeg: the adapter's own command line on the local file (the baseline);
- the worker, TRANSCODE_INPUT=stream (the default), reading the moto server directly and through
  the throttling endpoint (benchmarks/throttle.py: R2-like bandwidth per stream, a first-byte
  delay, no re-read of the whole object per ranged GET): a worker PROCESS (devstack.worker, as
  a Lambda would run it) claims the attempt, opens the upload as a local stream that parallel
  ranged GETs fill, probes it, transcodes it while it arrives, uploads the result, completes;
- the worker, TRANSCODE_INPUT=download (the copy to /tmp first, the previous default), through
  the throttling endpoint: what the stream replaced, on the network it will meet.

The worker's time is the attempt's claim -> completed (startedAt -> finishedAt); the child
process times its phases (the probes, ffmpeg, the upload, the commits, the HEAD) by wrapping
those calls, so what is left is listed by phase. Its Python process's peak RSS and ffmpeg's are
read from /proc and getrusage in that process. Then benchmarks/feeds.py measures the three ways
to feed ffmpeg early (a range server, a pipe, a growing file) against bare ffmpeg. Clips are
made once with ffmpeg's lavfi sources into .media/ (gitignored) and reused by later runs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import feeds
from benchmarks.core import BenchResult, Context, Table, children_cpu, machine_busy_seconds, median
from benchmarks.fixtures import quiesce, tenant
from chalicelib.adapters.ffmpeg import render as rendering
from chalicelib.adapters.r2 import R2Store, make_r2_client
from chalicelib.config import Settings
from devstack import REPO_ROOT
from tests.support.api import Api

NAME = "worker"
TITLE = "Worker vs bare ffmpeg: 30 s 1080p30 clips to 720p"
MEDIA = REPO_ROOT / ".media"
SECONDS, FPS = 30, 30
# (name, video bitrate, noise strength): noise keeps x264 at the bitrate, as camera footage would.
CLIPS = (("small", "10M", 12), ("large", "200M", 40))
TARGET_RATIO = 1.03
TARGET_RSS_MB = 300
# The R2-like network of the throttling endpoint (benchmarks/throttle.py says why these).
STREAM_MB_S, FIRST_BYTE_MS = 25.0, 60.0
# (TRANSCODE_INPUT, endpoint) per worker run; the first is the default the targets are about.
RUNS = (("stream", "moto"), ("stream", "throttled"), ("download", "throttled"))
# The worker process reports its own peak RSS from /proc (VmHWM: ru_maxrss would carry over the
# benchmark process's RSS at fork, which holds the moto server's objects), the CPU seconds it
# and its ffmpeg/ffprobe children used (a figure the machine's load does not inflate), and the
# seconds of each phase of the attempt (the calls below, wrapped in this process only).
CHILD = """
import collections, json, resource, time
from pathlib import Path
from chalicelib.adapters.ffmpeg.process import FFmpegTranscoder
from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
from chalicelib.adapters.ffmpeg import render as rendering
from chalicelib.adapters.r2 import R2Store
from chalicelib.processing import storage, worker
phases = collections.defaultdict(float)
def timed(owner, name, label):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[label] += time.perf_counter() - started
    setattr(owner, name, wrapper)
commits = []
committed = worker.committed
def counted(*args, **kwargs):
    started = time.perf_counter()
    try:
        return committed(*args, **kwargs)
    finally:
        commits.append(time.perf_counter() - started)
worker.committed = counted
timed(storage, "stored_input", "HEAD of the upload")
timed(FFmpegSegmenter, "probe_duration", "duration probe (one pass or segments?)")
timed(FFmpegTranscoder, "probe", "ffprobe (all)")
timed(FFmpegTranscoder, "run", "ffmpeg")
timed(R2Store, "upload_file", "upload of the output")
from devstack.worker import run_worker
received = run_worker(once=True)
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("WORKER-RESULT " + json.dumps({
    "received": received,
    "python_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
    "ffmpeg_rss_mb": kids.ru_maxrss / 1024,
    "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    "python_cpu_s": me.ru_utime + me.ru_stime,
    "phases": {**phases, "claim commit": commits[0] if commits else 0.0},
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
    python_cpu_s: float
    other_cpu_s: float  # what the rest of the machine used meanwhile (the local stack, the endpoint)
    download_s: float | None
    input_wait_s: float | None
    transcode_s: float | None
    output: Output
    tmp_mb: float
    phases: dict[str, float] = field(default_factory=dict)


def through_worker(
    ctx: Context, owner: Api, staged: str, size: int, mode: str, endpoint: str | None
) -> WorkerRun:
    """One job: created through the API, its upload copied in S3, started, run by a worker process
    (reading R2 at `endpoint`: the throttling endpoint, or None for the moto server itself)."""
    s3 = ctx.stack.client("s3")
    bucket = ctx.stack.env["R2_BUCKET"]
    created = owner.post("/jobs", json={"filename": "clip.mp4", "contentType": "video/mp4", "size": size})
    assert created.status_code == 201, created.text
    job = created.json()["job"]
    s3.copy_object(Bucket=bucket, Key=job["inputFileKey"], CopySource={"Bucket": bucket, "Key": staged})
    if endpoint:  # the throttling endpoint reads the new object from moto once: not timed
        warm = R2Store(make_r2_client(Settings(r2_endpoint_url=endpoint)), bucket)
        b"".join(warm.read_range(job["inputFileKey"], 0, 1))
    started = owner.post(f"/jobs/{job['id']}/start")
    assert started.status_code == 202, started.text
    env = {**os.environ, **ctx.stack.env, "TRANSCODE_INPUT": mode, "WORK_DIR": str(ctx.tmp)}
    if endpoint:
        env["R2_ENDPOINT_URL"] = endpoint
    busy = machine_busy_seconds()
    child = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3600
    )
    busy = machine_busy_seconds() - busy
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
        python_cpu_s=result["python_cpu_s"],
        other_cpu_s=max(busy - result["cpu_s"], 0.0),
        download_s=metrics.get("DownloadSeconds"),
        input_wait_s=metrics.get("InputWaitSeconds"),
        transcode_s=metrics.get("TranscodeSeconds"),
        output=output,
        tmp_mb=out_mb + size / 1e6,
        phases=result["phases"],
    )


def _emf(stdout: str) -> dict[str, float]:
    """The EMF metrics the worker printed (one JSON object per line)."""
    found: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        doc = json.loads(line)
        for name in ("DownloadSeconds", "TranscodeSeconds", "InputWaitSeconds"):
            if name in doc:
                value = doc[name]
                found[name] = float(value[0] if isinstance(value, list) else value)
    return found


def bare(settings: Settings, clip: Path, out: Path) -> BareRun:
    """The worker's command line on the local file: wall and CPU seconds, what it wrote."""
    args = feeds.command(settings, str(clip), str(clip), out)
    started, cpu, busy = time.perf_counter(), children_cpu(), machine_busy_seconds()
    subprocess.run(args, check=True, capture_output=True, timeout=3600)
    seconds, cpu_s = time.perf_counter() - started, children_cpu() - cpu
    other = max(machine_busy_seconds() - busy - cpu_s, 0.0)
    return BareRun(seconds, cpu_s, other, probe_output(settings, str(out / rendering.VIDEO_FILE)))


@contextmanager
def throttled(ctx: Context) -> Iterator[str]:
    """The throttling endpoint in front of the moto server, in a process of its own."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.throttle",
            ctx.stack.moto_url,
            "--stream-mb-s",
            str(STREAM_MB_S),
            "--first-byte-ms",
            str(FIRST_BYTE_MS),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("THROTTLE-URL "):
            raise RuntimeError(f"the throttling endpoint did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class BareRun:
    seconds: float
    cpu_s: float
    other_cpu_s: float
    output: Output


@dataclass
class ClipRuns:
    bare: list[BareRun] = field(default_factory=list)
    workers: dict[tuple[str, str], list[WorkerRun]] = field(default_factory=dict)
    feeds: dict[str, list[float]] = field(default_factory=dict)


def run(ctx: Context, res: BenchResult) -> None:
    settings = Settings()
    failed, drained = quiesce(ctx.stack)
    ctx.say(f"quiet queue first: {failed} queued jobs failed, {drained} messages deleted")
    rounds = {"small": ctx.n(3, 1), "large": ctx.n(2, 0)}  # --quick: the small clip once
    owner = tenant(ctx.stack, ctx.api_url, credits=len(RUNS) * sum(rounds.values()) + 2)
    res.data["clips"] = {}
    res.data["network"] = {"stream_mb_s": STREAM_MB_S, "first_byte_ms": FIRST_BYTE_MS}
    with throttled(ctx) as endpoint:
        ctx.say(f"throttling endpoint {endpoint}: {STREAM_MB_S:.0f} MB/s per stream, {FIRST_BYTE_MS:.0f} ms")
        tables = _tables(settings)
        res.tables += tables
        for name, bitrate, noise in CLIPS:
            if not rounds[name]:
                continue
            runs = _clip(ctx, settings, owner.api, endpoint, name, bitrate, noise, rounds[name])
            clip_data = _report(res, tables, name, runs, endpoint)
            ctx.shared.setdefault("worker", {})[name] = {**clip_data, "clip_seconds": SECONDS}
    res.notes += [
        f"throttled = through benchmarks/throttle.py: at most {STREAM_MB_S:.0f} MB/s per stream after "
        f"{FIRST_BYTE_MS:.0f} ms to the first byte, each object read once from moto (R2 does not re-read "
        "an object per ranged GET, moto does). These are assumptions about R2, not measurements.",
        "Phases: seconds inside claim -> completed, timed by wrapping each call in the worker process; "
        "ffmpeg runs while the upload still arrives (stream), so the input's wait is inside ffmpeg's time "
        "(`input wait` is what ffmpeg waited for bytes in all). `other` is the rest: Python, temp "
        "directories, the thread that keeps the claim alive, the completion's clock read.",
    ]


def _clip(
    ctx: Context,
    settings: Settings,
    api: Api,
    endpoint: str,
    name: str,
    bitrate: str,
    noise: int,
    rounds: int,
) -> ClipRuns:
    t0 = time.perf_counter()
    clip = make_clip(name, bitrate, noise)
    faststart = moov_first(clip)
    size = clip.stat().st_size
    ctx.say(f"{name} clip: {size / 1e6:.0f} MB ({time.perf_counter() - t0:.0f} s to make or find)")
    staged = f"bench/{clip.name}"
    s3 = ctx.stack.client("s3")
    for path in (clip, faststart):
        s3.upload_file(str(path), ctx.stack.env["R2_BUCKET"], f"bench/{path.name}")
    runs = ClipRuns(workers={r: [] for r in RUNS})
    store = R2Store(
        make_r2_client(settings.model_copy(update={"r2_endpoint_url": endpoint})), settings.r2_bucket
    )
    for i in range(rounds):
        runs.bare.append(bare(settings, clip, ctx.tmp / "bare"))
        ctx.say(f"  round {i + 1}: bare ffmpeg {runs.bare[-1].seconds:.1f} s (load {os.getloadavg()[0]:.1f})")
        for mode, where in RUNS:
            w = through_worker(ctx, api, staged, size, mode, endpoint if where == "throttled" else None)
            runs.workers[(mode, where)].append(w)
            ctx.say(f"  round {i + 1}: worker ({mode}, {where}) {w.seconds:.1f} s")
        if i < max(rounds - 1, 1):  # the feeds: every round of the small clip, one of the large
            _feeds(ctx, settings, runs, clip, faststart, store)
    return runs


def moov_first(clip: Path) -> Path:
    """The clip with its index first (+faststart, stream copy): what a pipe or a growing file needs."""
    path = clip.with_name(clip.stem + "-faststart.mp4")
    if not path.exists():
        partial_path = path.with_suffix(".partial.mp4")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clip), "-c", "copy"]
            + ["-movflags", "+faststart", str(partial_path)],
            check=True,
            timeout=600,
        )
        partial_path.rename(path)
    return path


def _feeds(
    ctx: Context, settings: Settings, runs: ClipRuns, clip: Path, faststart: Path, store: R2Store
) -> None:
    out, work = ctx.tmp / "feed", ctx.tmp
    line = []
    for label, source, mechanism in (
        ("bare ffmpeg, local file (moov first)", faststart, None),
        ("range server, moov at the end", clip, feeds.range_server),
        ("range server, moov first", faststart, feeds.range_server),
        ("pipe, moov first", faststart, feeds.pipe),
        ("growing file, moov first", faststart, feeds.growing_file),
    ):
        if mechanism is None:
            seconds = feeds.bare(settings, source, out)
        else:
            fetch = partial(store.read_range, f"bench/{source.name}")
            seconds = mechanism(settings, source, fetch, source.stat().st_size, work, out)
        runs.feeds.setdefault(label, []).append(seconds)
        line.append(f"{label.split(',')[0]} {seconds:.1f}")
    ctx.say("  feeds: " + ", ".join(line) + " s")


def _tables(settings: Settings) -> list[Table]:
    main = Table(
        f"{TITLE} (x264 preset {settings.transcode_preset}, crf {settings.transcode_crf}); medians",
        [
            "clip",
            "runner",
            "runs",
            "s",
            "x bare",
            "input wait s",
            "copy s",
            "Python RSS MB",
            "ffmpeg RSS MB (at most)",
            "CPU s",
            "others' CPU s",
            "/tmp MB",
            "output",
        ],
    )
    phases = Table(
        "Worker (TRANSCODE_INPUT=stream): claim -> completed by phase, seconds (medians)",
        ["clip", "endpoint", "claim -> completed", "bare ffmpeg", "phase", "s", "share of the gap"],
    )
    mechanisms = Table(
        "Feeding ffmpeg before the upload is on disk: the same ranged reads (throttled) through a "
        "range server, a pipe or a growing file, vs bare ffmpeg (medians)",
        ["clip", "how", "runs", "s", "x bare"],
    )
    return [main, phases, mechanisms]


def _report(
    res: BenchResult, tables: list[Table], name: str, runs: ClipRuns, endpoint: str
) -> dict[str, Any]:
    table, phases_table, mechanisms = tables
    base = median([b.seconds for b in runs.bare])
    bare_cpu = median([b.cpu_s for b in runs.bare])
    out = runs.bare[-1].output
    size_mb = make_clip_size(name)
    describe = f"{out.codec} {out.width}x{out.height} {out.duration:.2f} s {out.kbps:,.0f} kb/s"
    table.add(
        f"{name} ({size_mb:.0f} MB)",
        "bare ffmpeg, local file",
        len(runs.bare),
        base,
        1.0,
        "",
        "",
        "",
        "",
        bare_cpu,
        median([b.other_cpu_s for b in runs.bare]),
        "",
        describe,
    )
    clip_data: dict[str, Any] = {
        "mb": round(size_mb, 1),
        "bare_s": round(base, 2),
        "bare_cpu_s": round(bare_cpu, 2),
        "bare_other_cpu_s": round(median([b.other_cpu_s for b in runs.bare]), 2),
        "output": vars(out),
    }
    for (mode, where), worker_runs in runs.workers.items():
        secs = median([w.seconds for w in worker_runs])
        ratio = secs / base
        last = worker_runs[-1].output
        same = (last.codec, last.width, last.height) == (out.codec, out.width, out.height)
        label = f"{mode}, {where}"
        res.check(f"worker {name} {label}: same codec and size as bare ffmpeg", same, f"{last} vs {out}")
        res.check(
            f"worker {name} {label}: same duration as bare ffmpeg", abs(last.duration - out.duration) < 0.1
        )
        python_rss = max(w.python_rss_mb for w in worker_runs)
        table.add(
            "",
            f"worker, TRANSCODE_INPUT={mode}, {where}",
            len(worker_runs),
            secs,
            ratio,
            _median_or_blank([w.input_wait_s for w in worker_runs]),
            _median_or_blank([w.download_s for w in worker_runs]),
            python_rss,
            max(w.ffmpeg_rss_mb for w in worker_runs),
            median([w.cpu_s for w in worker_runs]),
            median([w.other_cpu_s for w in worker_runs]),
            max(w.tmp_mb for w in worker_runs),
            f"{last.codec} {last.width}x{last.height} {last.duration:.2f} s {last.kbps:,.0f} kb/s",
        )
        key = mode if where == "moto" else f"{mode}_{where}"
        clip_data[key] = {
            "s": round(secs, 2),
            "x_bare": round(ratio, 3),
            "python_rss_mb": round(python_rss),
            "tmp_mb": round(max(w.tmp_mb for w in worker_runs)),
            "cpu_s": round(median([w.cpu_s for w in worker_runs]), 2),
            "python_cpu_s": round(median([w.python_cpu_s for w in worker_runs]), 2),
            "other_cpu_s": round(median([w.other_cpu_s for w in worker_runs]), 2),
        }
        if mode == "stream":
            gap = _phases(phases_table, name, where, worker_runs, secs, base)
            clip_data[key]["phases"] = gap
            res.target(
                f"worker ({name} clip, {where}) claim -> completed",
                f"{secs:.1f} s vs bare ffmpeg {base:.1f} s = {ratio:.3f}x",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
                "" if ratio <= TARGET_RATIO else _why(ratio, secs - base, gap, clip_data, key),
                value=ratio,
                bound=TARGET_RATIO,
            )
            res.target(
                f"worker ({name} clip, {where}) Python RSS",
                f"{python_rss:.0f} MB",
                f"<= {TARGET_RSS_MB} MB",
                python_rss <= TARGET_RSS_MB,
                value=python_rss,
                bound=TARGET_RSS_MB,
            )
    bare_feed = median(runs.feeds.get("bare ffmpeg, local file (moov first)", [math.nan]))
    clip_data["feeds"] = {}
    for label, values in runs.feeds.items():
        secs = median(values)
        mechanisms.add(name, label, len(values), secs, secs / bare_feed)
        clip_data["feeds"][label] = {"s": round(secs, 2), "x_bare": round(secs / bare_feed, 3)}
    res.data["clips"][name] = clip_data
    return clip_data


def make_clip_size(name: str) -> float:
    for clip_name, bitrate, noise in CLIPS:
        if clip_name == name:
            return make_clip(clip_name, bitrate, noise).stat().st_size / 1e6
    raise KeyError(name)


PHASES = (
    "claim commit",
    "HEAD of the upload",
    "duration probe (one pass or segments?)",
    "ffprobe of the input",
    "ffmpeg",
    "upload of the output",
)


def _phases(
    table: Table, name: str, where: str, runs: list[WorkerRun], secs: float, base: float
) -> dict[str, float]:
    """The median seconds of each phase, and what is not in any (`other`)."""
    found: dict[str, float] = {}
    for phase in PHASES:
        values = []
        for w in runs:
            p = w.phases
            # The output is not probed (its index says what was written), and an MP4's duration
            # probe reads its index: every ffprobe is the transcoder's of the input.
            values.append(p.get("ffprobe (all)" if phase == "ffprobe of the input" else phase, 0.0))
        found[phase] = median(values)
    found["other"] = secs - sum(found.values())
    found["input wait (inside ffmpeg)"] = _median_or_zero([w.input_wait_s for w in runs])
    gap = secs - base
    for i, (phase, value) in enumerate(found.items()):
        share = value - base if phase == "ffmpeg" else value
        table.add(
            name if i == 0 else "",
            where if i == 0 else "",
            secs if i == 0 else "",
            base if i == 0 else "",
            phase,
            value,
            f"{share / gap:.0%}" if gap > 0 and phase != "input wait (inside ffmpeg)" else "",
        )
    return {k: round(v, 3) for k, v in found.items()}


def _why(ratio: float, gap: float, phases: dict[str, float], clip: dict[str, Any], key: str) -> str:
    biggest = sorted(
        ((k, v) for k, v in phases.items() if k not in ("ffmpeg", "input wait (inside ffmpeg)")),
        key=lambda kv: -kv[1],
    )[:3]
    run = clip[key]
    return (
        f"by {ratio - TARGET_RATIO:.3f}x ({gap:.2f} s over bare ffmpeg): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in biggest)
        + f"; ffmpeg itself {phases.get('ffmpeg', 0):.2f} s"
        + f" (input wait {phases.get('input wait (inside ffmpeg)', 0):.2f} s) vs bare {clip['bare_s']:.2f} s."
        + f" CPU: the worker {run['cpu_s']:.1f} s (its Python {run['python_cpu_s']:.1f}) vs bare ffmpeg"
        + f" {clip['bare_cpu_s']:.1f} s; meanwhile the rest of the machine used"
        + f" {run['other_cpu_s']:.1f} CPU s"
        + f" (bare's run: {clip['bare_other_cpu_s']:.1f}): the local stand-ins for R2 serving the bytes,"
        + " on the same 2 cores as ffmpeg"
    )


def _median_or_zero(values: list[float | None]) -> float:
    real = [v for v in values if v is not None]
    return median(real) if real else 0.0


def _median_or_blank(values: list[float | None]) -> float | str:
    real = [v for v in values if v is not None]
    return median(real) if real else ""
