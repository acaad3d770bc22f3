"""8. Uploads: a 1 GB file to the local R2 (moto's S3) through the API, one connection against
parallel parts.

- one PUT: the whole file to one presigned URL (what every upload was before multipart; the API
  now answers with parts above UPLOAD_MULTIPART_THRESHOLD_BYTES, so the URL is presigned here);
- parts, N at a time: POST /jobs (a multipart upload), the parts' URLs signed in batches of 100,
  N PUTs at once, then POST .../upload/complete (which lists the parts from storage and joins them);
- the dashboard: Chromium choosing the file, Uppy sending 6 parts at once, the parts signed through
  the API (24 per call, ahead of need), until the complete answers.

"sending" leaves out the complete: R2 joins the parts without copying them, moto copies the whole
file again (most of its "complete s"), so the sending figures are the ones that compare.

The Python clients run in a spawned child process (the moto server is a thread of this one and
must not share its GIL with them). Timed from the first request to the completed object; each
object is checked (its size, every part received exactly once) and deleted before the next run.
moto is not R2: it writes every part to a temporary file and copies them all again to complete,
so the absolute figures are this machine's, and the ratios are what carries over.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from benchmarks.core import BenchResult, Context, Table, median
from chalicelib import bootstrap
from devstack import REPO_ROOT
from tests.support.api import Api
from tests.support.media import make_raw_clip

NAME = "uploads"
TITLE = "Upload throughput: a 1 GB file, one connection against parallel parts"
MEDIA = REPO_ROOT / ".media"
MEGABYTES = 1000
PARALLEL = (1, 2, 4, 6, 8)
SIGN_BATCH = 100


def source_file() -> Path:
    """A 1 GB video (uncompressed 720p in Matroska, about 24 s), made once into .media/."""
    path = MEDIA / f"upload-{MEGABYTES}mb-720p-raw.mkv"
    if not path.exists():
        MEDIA.mkdir(exist_ok=True)
        make_raw_clip(path, megabytes=MEGABYTES)
    return path


# --- the clients, run in a child process ------------------------------------------------------------


def put_whole(url: str, headers: dict[str, str], path: str) -> dict[str, float]:
    started = time.perf_counter()
    with open(path, "rb") as f:
        r = requests.put(url, data=f, headers=headers, timeout=1800)
    r.raise_for_status()
    return {
        "seconds": time.perf_counter() - started,
        "sign_seconds": 0.0,
        "complete_seconds": 0.0,
        "calls": 0,
    }


def put_parts(base: str, token: str, path: str, threads: int) -> dict[str, Any]:
    """Create the job, sign in batches, PUT `threads` parts at once, complete."""
    api = Api(base, token)
    size = Path(path).stat().st_size
    started = time.perf_counter()
    r = api.post("/jobs", {"filename": Path(path).name, "contentType": "video/x-matroska", "size": size})
    r.raise_for_status()
    created = r.json()
    job_id, part_size, count = (
        created["job"]["id"],
        created["upload"]["partSize"],
        created["upload"]["partCount"],
    )
    sign_seconds, calls = 0.0, 1
    urls: dict[int, dict[str, Any]] = {}
    for first in range(1, count + 1, SIGN_BATCH):
        t = time.perf_counter()
        numbers = list(range(first, min(first + SIGN_BATCH, count + 1)))
        signed = api.post(f"/jobs/{job_id}/upload/parts", {"partNumbers": numbers})
        signed.raise_for_status()
        urls |= {p["partNumber"]: p for p in signed.json()["parts"]}
        sign_seconds += time.perf_counter() - t
        calls += 1

    def put(n: int) -> None:
        with open(path, "rb") as f:
            f.seek((n - 1) * part_size)
            data = f.read(part_size)
        done = requests.put(urls[n]["url"], data=data, headers=urls[n]["headers"], timeout=600)
        done.raise_for_status()

    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(1, count + 1)))
    t = time.perf_counter()
    api.post(f"/jobs/{job_id}/upload/complete", {}).raise_for_status()
    complete_seconds = time.perf_counter() - t
    return {
        "seconds": time.perf_counter() - started,
        "sign_seconds": sign_seconds,
        "complete_seconds": complete_seconds,
        "calls": calls + 1,
        "job_id": job_id,
        "key": created["job"]["inputFileKey"],
    }


def elsewhere(fn: Any, *args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(fn, args)
        return result


# --- the benchmark -----------------------------------------------------------------------------------


def run(ctx: Context, res: BenchResult) -> None:
    source = source_file()
    size = source.stat().st_size
    rounds = ctx.n(2, 1)
    tag = uuid.uuid4().hex[:8]
    email, workspace = f"bench-up-{tag}@example.com", f"ws-bench-up-{tag}"
    added = ctx.stack.add_user(email, workspace, credits=20)
    token = ctx.stack.token(email)
    s3, bucket = ctx.stack.client("s3"), ctx.stack.env["R2_BUCKET"]
    ctx.say(f"file: {source.name}, {size / 1e6:.0f} MB; {rounds} round(s) of each way")

    def settle(key: str, parts: bool) -> None:
        head = s3.head_object(Bucket=bucket, Key=key)
        res.check(f"{key}: the object has the file's {size} bytes", head["ContentLength"] == size)
        if parts:
            received = ctx.stack.received_parts.of(key)
            once = all(len(v) == 1 for v in received.values()) and sum(map(sum, received.values())) == size
            res.check(f"{key}: every part received once", once, str({n: len(v) for n, v in received.items()}))
        s3.delete_object(Bucket=bucket, Key=key)  # moto keeps objects in temporary files: free them

    samples: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):  # interleaved: a busy moment weighs on every way alike
        key = f"bench/{tag}/{uuid.uuid4().hex}"
        store = bootstrap.services().store
        put = store.presign_upload(key, "video/x-matroska", size, 900)
        samples.setdefault("one PUT (one connection)", []).append(
            elsewhere(put_whole, put.url, put.headers, str(source))
        )
        settle(key, parts=False)
        for threads in PARALLEL:
            done = elsewhere(put_parts, ctx.api_url, token, str(source), threads)
            samples.setdefault(f"parts, {threads} at a time", []).append(done)
            settle(done["key"], parts=True)
        browser = dashboard(ctx, email, added.password, source)
        if browser is not None:
            samples.setdefault("dashboard: Chromium + Uppy, 6 at a time", []).append(browser)
            settle(browser["key"], parts=True)

    table = Table(
        f"{TITLE} ({size / 1e6:.0f} MB, parts of 16 MiB, median of {rounds})",
        ["way", "total s", "MB/s", "sending s", "sending MB/s", "complete s", "API calls"],
    )
    res.tables.append(table)
    res.data["rows"] = {}
    for label, runs in samples.items():
        seconds = median([r["seconds"] for r in runs])
        complete = median([r["complete_seconds"] for r in runs])
        # The bytes' transfer alone: what R2 would also take (its complete joins parts without
        # copying them; moto copies the whole file again, which is most of its "complete s").
        sending = median([r["seconds"] - r["complete_seconds"] - r["sign_seconds"] for r in runs])
        row = {
            "seconds": round(seconds, 2),
            "mb_per_s": round(size / 1e6 / seconds, 1),
            "sending_seconds": round(sending, 2),
            "sending_mb_per_s": round(size / 1e6 / sending, 1),
            "complete_seconds": round(complete, 2),
            "api_calls": runs[0]["calls"],
        }
        table.add(label, *row.values())
        res.data["rows"][label] = row
        ctx.say(f"{label}: {seconds:.1f} s in all ({row['mb_per_s']} MB/s), sending {sending:.1f} s")


def dashboard(ctx: Context, email: str, password: str, source: Path) -> dict[str, Any] | None:
    """The dashboard's way: the file chosen in Chromium, until the complete answers."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        ctx.say("no Chromium: the dashboard's way is not measured")
        return None
    from playwright.sync_api import sync_playwright

    from tests.support.stack import running_web

    api = ctx.api_url.rstrip("/")
    calls: list[str] = []
    with running_web(ctx.stack, ctx.api_url) as web, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(base_url=web).new_page()
            page.goto("/")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_test_id("user-email").wait_for()
            page.on(
                "request",
                lambda r: calls.append(r.url) if r.url.startswith(api) and r.method != "OPTIONS" else None,
            )
            started = time.perf_counter()
            completed = lambda r: r.url.endswith("/upload/complete")  # noqa: E731
            with page.expect_response(completed, timeout=1_800_000) as done:
                page.get_by_label("Choose a video").set_input_files(source)
            seconds = time.perf_counter() - started
            answer = done.value
            assert answer.ok, answer.text()
            job = answer.json()["job"]
            complete = answer.request.timing["responseEnd"] / 1000  # ms from the request's start
            sent = [c for c in calls if "/upload/complete" not in c]  # before the complete
        finally:
            browser.close()
    return {
        "seconds": seconds,
        "sign_seconds": 0.0,  # overlapping the parts' PUTs: Uppy signs ahead while others send
        "complete_seconds": complete,
        "calls": len(sent) + 1,
        "key": job["inputFileKey"],
    }
