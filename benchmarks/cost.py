"""Dollars per output minute and per 1,000 jobs, from the worker's measured durations (benchmark
`worker`, same run), beside AWS Elemental MediaConvert's published per-minute prices: compute and
requests (what each job costs to process) apart from R2 storage (what keeping the files costs,
under the workspace's retention of originals).

Every price is a constant below with its source and the date it was read; nothing is fetched at
run time. us-east-1, on-demand, no free tier.

The Lambda seconds are estimated from the CPU seconds the worker process and its ffmpeg used
(load-independent, unlike wall time on a shared machine) over the vCPUs Lambda gives 3008 MB
(1 vCPU per 1769 MB: 1.70); the copy's wait on the network is not in it (R2 from Lambda is not
moto from this machine). The wall-clock figure of this run is shown beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.core import BenchResult, Context, Table
from chalicelib.processing.streaming_input import CHUNK as STREAM_CHUNK

NAME = "cost"
TITLE = "Cost per output minute and per 1,000 jobs"
READ_ON = "2026-12-02"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


LAMBDA_URL = "https://aws.amazon.com/lambda/pricing/"
PRICES = {
    "lambda_x86_gb_s": Price(0.0000166667, "GB-second", LAMBDA_URL),
    "lambda_arm_gb_s": Price(0.0000133334, "GB-second", LAMBDA_URL),
    "lambda_request": Price(0.20 / 1e6, "request", LAMBDA_URL),
    "apigw_request": Price(3.50 / 1e6, "REST API request", "https://aws.amazon.com/api-gateway/pricing/"),
    "ddb_write": Price(
        0.625 / 1e6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
    "ddb_read": Price(0.125 / 1e6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "sqs_request": Price(0.40 / 1e6, "request (standard queue)", "https://aws.amazon.com/sqs/pricing/"),
    "r2_class_a": Price(
        4.50 / 1e6, "Class A operation (PUT)", "https://developers.cloudflare.com/r2/pricing/"
    ),
    "r2_class_b": Price(
        0.36 / 1e6, "Class B operation (GET, HEAD)", "https://developers.cloudflare.com/r2/pricing/"
    ),
    "r2_storage": Price(0.015, "GB-month", "https://developers.cloudflare.com/r2/pricing/"),
    "mediaconvert_sd": Price(
        0.0075, "output minute, SD, Basic tier", "https://aws.amazon.com/mediaconvert/pricing/"
    ),
    "mediaconvert_hd": Price(
        0.015, "output minute, HD, Basic tier", "https://aws.amazon.com/mediaconvert/pricing/"
    ),
}
WORKER_MEMORY_GB = 3008 / 1024  # infra/chalice-merge.yaml WorkerMemorySize
LAMBDA_VCPUS = 3008 / 1769  # Lambda: one vCPU per 1769 MB
API_MEMORY_GB = 512 / 1024  # .chalice/config.json
TARGET_PER_MINUTE = 0.001  # compute and requests, per output minute of 720p (issue 17)
MONTH_DAYS = 30.44
RETENTION_DAYS = (0, 7, 30)  # what the report prices the original's storage under (30: the default)

# What one job costs besides the worker's seconds, from the code's own calls (per job):
API_CALLS = 6  # POST /jobs, POST /start, GET /jobs/{id} x3 (the dashboard's polls), GET /download
API_SECONDS = 0.05  # per API invocation (warm; the in-process `calls` benchmark measures the routes)
# DynamoDB write units: create (1); start: a 4-item transaction (x2 per item = 8); claim: 2 items (4);
# complete: 2 items (4); progress: one 1-unit update per PROGRESS_EVERY_SECONDS of the worker;
# the retention: the sweeper looks at a finished job's upload weekly until it deletes it (one
# update each, and the to-sweep index's copy of it: x2).
WRITE_UNITS_FIXED = 1 + 8 + 4 + 4
PROGRESS_EVERY_SECONDS = 2.0
READ_UNITS = 10  # membership, workspace and job reads of those API calls, strongly consistent
SQS_REQUESTS = 3  # send, receive, delete


def retention_writes(days: int) -> int:
    return 2 * (math.ceil(days / 7) + 1)


def per_job(
    worker_seconds: float, input_bytes: float, gb_s_price: float, retention_days: int = 30
) -> dict[str, float]:
    """The compute and the requests of one job (dollars), storage apart."""
    ranges = math.ceil(input_bytes / STREAM_CHUNK) + 2  # the stream's ranged GETs (+ the head and tail)
    return {
        "worker": worker_seconds * WORKER_MEMORY_GB * gb_s_price + PRICES["lambda_request"].usd,
        "api": API_CALLS
        * (
            API_SECONDS * API_MEMORY_GB * gb_s_price
            + PRICES["lambda_request"].usd
            + PRICES["apigw_request"].usd
        ),
        "dynamodb": (
            WRITE_UNITS_FIXED + worker_seconds / PROGRESS_EVERY_SECONDS + retention_writes(retention_days)
        )
        * PRICES["ddb_write"].usd
        + READ_UNITS * PRICES["ddb_read"].usd,
        "sqs": SQS_REQUESTS * PRICES["sqs_request"].usd,
        # PUT of the upload and of the result, the retention's listing before it deletes (Class A;
        # DeleteObjects is free); HEAD x2, the ranged GETs and the user's download (Class B)
        "r2_requests": 3 * PRICES["r2_class_a"].usd + (3 + ranges) * PRICES["r2_class_b"].usd,
    }


def storage(input_bytes: float, output_bytes: float, retention_days: int) -> dict[str, float]:
    """R2 storage: the original for `retention_days` after the job (once), the output per month."""
    return {
        "original_once": input_bytes / 1e9 * PRICES["r2_storage"].usd * retention_days / MONTH_DAYS,
        "output_per_month": output_bytes / 1e9 * PRICES["r2_storage"].usd,
    }


def run(ctx: Context, res: BenchResult) -> None:
    clips: dict[str, Any] = ctx.shared.get("worker", {})
    if not clips:
        raise RuntimeError("the cost is derived from the worker benchmark: run it in the same run")
    table = Table(
        f"{TITLE}: compute and requests (worker at {WORKER_MEMORY_GB * 1024:.0f} MB; CPU seconds of the "
        "worker benchmark over 1.7 vCPU), beside MediaConvert",
        [
            "clip",
            "arch",
            "worker s per job",
            "$ per output minute",
            "$ per 1,000 jobs",
            "of which worker",
            "of which requests",
            "vs MediaConvert HD",
            "vs MediaConvert SD",
        ],
    )
    stored = Table(
        "Storage in R2 ($0.015 per GB-month), per output minute: the original under the workspace's "
        "retention (kept N days after the job, once), and the output (kept until deleted, per month)",
        [
            "clip",
            "original MB",
            "output MB",
            *[f"original, {d} days" for d in RETENTION_DAYS],
            "output, per month",
        ],
    )
    res.tables += [table, stored]
    res.data["per_minute"] = {}
    for name, clip in clips.items():
        run_data = clip["stream"]
        wall = run_data["s"]
        seconds = run_data["cpu_s"] / LAMBDA_VCPUS
        minutes = clip["clip_seconds"] / 60
        input_bytes = clip["mb"] * 1e6
        output_bytes = clip["output"]["kbps"] * 1000 / 8 * clip["output"]["duration"]
        for arch, key in (("x86_64", "lambda_x86_gb_s"), ("arm64", "lambda_arm_gb_s")):
            parts = per_job(seconds, input_bytes, PRICES[key].usd)
            job = sum(parts.values())
            minute = job / minutes
            # The floor: the same command on a local file (bare ffmpeg's CPU seconds), same requests
            floor_parts = per_job(clip["bare_cpu_s"] / LAMBDA_VCPUS, input_bytes, PRICES[key].usd)
            floor = sum(floor_parts.values()) / minutes
            table.add(
                name,
                arch,
                f"{seconds:.1f} ({wall:.1f})",
                f"{minute:.5f}",
                f"{job * 1000:.2f}",
                f"{parts['worker'] / job:.0%}",
                f"{(job - parts['worker']) / job:.0%}",
                f"{minute / PRICES['mediaconvert_hd'].usd:.3f}x",
                f"{minute / PRICES['mediaconvert_sd'].usd:.3f}x",
            )
            res.data["per_minute"][f"{name} {arch}"] = {
                "compute_and_requests_usd_per_minute": round(minute, 6),
                "usd_per_1000_jobs": round(job * 1000, 3),
                "parts": {k: round(v, 7) for k, v in parts.items()},
                "bare_ffmpeg_floor_usd_per_minute": round(floor, 6),
            }
            if arch == "x86_64":
                met = minute <= TARGET_PER_MINUTE
                res.target(
                    f"compute and requests per output minute of 720p ({name} clip, x86_64)",
                    f"${minute:.5f} vs MediaConvert HD ${PRICES['mediaconvert_hd'].usd} "
                    f"({minute / PRICES['mediaconvert_hd'].usd:.3f}x)",
                    f"<= ${TARGET_PER_MINUTE}",
                    met,
                    "" if met else _why(minute, parts, job, floor, clip),
                    value=minute,
                    bound=TARGET_PER_MINUTE,
                )
        by_days = {d: storage(input_bytes, output_bytes, d) for d in RETENTION_DAYS}
        stored.add(
            name,
            f"{input_bytes / 1e6:.0f}",
            f"{output_bytes / 1e6:.1f}",
            *[f"{by_days[d]['original_once'] / minutes:.5f}" for d in RETENTION_DAYS],
            f"{by_days[30]['output_per_month'] / minutes:.5f}",
        )
        res.data["per_minute"][f"{name} storage"] = {
            f"original_{d}_days": round(by_days[d]["original_once"] / minutes, 6) for d in RETENTION_DAYS
        } | {"output_per_month": round(by_days[30]["output_per_month"] / minutes, 6)}
    prices = Table(
        f"Prices used (us-east-1, on-demand, no free tier; read {READ_ON})", ["item", "USD", "per", "source"]
    )
    res.tables.append(prices)
    for key, price in PRICES.items():
        prices.add(key, f"{price.usd:.10g}", price.per, price.source)
    res.notes += [
        "Compute and requests per job: the worker's GB-seconds and request; 6 API calls (Lambda + API "
        f"Gateway); DynamoDB {WRITE_UNITS_FIXED} write units + one per {PROGRESS_EVERY_SECONDS:.0f} s of "
        f"progress + the retention's weekly looks ({retention_writes(30)} units for 30 days), {READ_UNITS} "
        "read units; 3 SQS requests; R2: 3 Class A (the two PUTs, the retention's listing), 2 HEADs, the "
        "stream's ranged GETs and the user's download. Egress from R2 is free; so is DeleteObjects.",
        "Storage is apart: the original is kept the workspace's retention (default 30 days; an owner "
        "sets 0 to 3650 in the dashboard's Storage panel or PUT /retention) and then deleted by the "
        "sweeper; the output is kept until it is deleted, so its storage is a monthly figure.",
        "Fixed per month, whatever the volume: the sweeper (43,200 runs of ~0.1 s at 512 MB: about "
        "$0.04 + $0.01 of requests) and Lambda's idle SQS polling (about 0.6 M ReceiveMessage: ~$0.26).",
        "MediaConvert: Basic tier, AVC single-pass, up to 30 fps, first volume tier (HD = 720p and "
        "up to 1080p); storage not included (its input and output live in S3 at S3's prices).",
    ]


def _why(minute: float, parts: dict[str, float], job: float, floor: float, clip: dict[str, Any]) -> str:
    worker = parts["worker"] / job * minute
    run = clip["stream"]
    return (
        f"by ${minute - TARGET_PER_MINUTE:.5f}: the worker is ${worker:.5f} per minute, the requests "
        f"${minute - worker:.5f}. Bare ffmpeg alone (the same command on a local file, "
        f"{clip['bare_cpu_s']:.1f} CPU s) would be ${floor:.5f}: the encode itself (x264 veryfast at 720p, "
        f"with the poster and thumbnails, of a noisy 1080p source). The worker used {run['cpu_s']:.1f} "
        f"CPU s in all, of which its Python process {run.get('python_cpu_s', 0.0):.1f} (imports, the "
        "ranged GETs and the range server, the upload)"
    )
