"""1. API latency through `chalice local`: N sequential requests per route with a real Cognito token.

Each request opens its own connection, as the test suite's client does (see the keep-alive row
and the README for why). Warm-up requests are sent first and not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from benchmarks.core import BenchResult, Context, Latency, Table
from benchmarks.fixtures import (
    NOT_A_VIDEO,
    KeepAliveApi,
    bump,
    drain_messages,
    fail_jobs,
    idempotency_key,
    parallel,
    tenant,
    upload,
)

NAME = "api"
TITLE = "API latency (chalice local, HTTP, real token)"
LIST_WORKSPACE_JOBS = 50

COLUMNS = ["request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s"]


class UnexpectedAnswer(RuntimeError):
    pass


def measure(
    call: Callable[[int], requests.Response], expect: int, n: int, warm: int
) -> tuple[Latency, list[requests.Response]]:
    """call(i) for i in 0..warm+n-1; the first `warm` are not counted. Every answer must be `expect`."""
    answers: list[requests.Response] = []

    def checked(i: int) -> requests.Response:
        resp = call(i)
        if resp.status_code != expect:
            raise UnexpectedAnswer(
                f"request {i}: HTTP {resp.status_code} (wanted {expect}): {resp.text[:300]}"
            )
        answers.append(resp)
        return resp

    for i in range(warm):
        checked(i)
    samples = []
    wall_started = time.perf_counter()
    for i in range(warm, warm + n):
        started = time.perf_counter()
        checked(i)
        samples.append(time.perf_counter() - started)
    wall = time.perf_counter() - wall_started
    return Latency.of(samples, wall), answers


def new_job_body(i: int) -> dict[str, Any]:
    return {"filename": f"clip-{i}.mp4", "contentType": "video/mp4", "size": len(NOT_A_VIDEO)}


def run(ctx: Context, res: BenchResult) -> None:
    n, warm = ctx.n(100, 20), ctx.n(10, 3)
    total = n + warm
    url = ctx.api_url
    owner = tenant(ctx.stack, url, credits=3 * total + 5)
    api = owner.api  # a new connection per request
    table = Table(f"{TITLE}: {n} sequential requests per row after {warm} warm-up", COLUMNS)
    res.tables.append(table)
    routes: dict[str, Any] = {}
    res.data["routes"] = routes

    def row(label: str, latency: Latency) -> None:
        table.add(label, latency.n, latency.p50, latency.p95, latency.p99, latency.max, latency.rps)
        routes[label] = latency.as_dict()
        ctx.say(f"{label:<42} p50 {latency.p50:7.1f} ms  p95 {latency.p95:7.1f} ms")

    lat, _ = measure(lambda i: requests.get(url + "/health", timeout=30), 200, n, warm)
    row("GET /health", lat)
    keep_alive = KeepAliveApi(url, api.token)
    lat, _ = measure(lambda i: keep_alive.get("/health"), 200, n, warm)
    row("GET /health (one keep-alive connection)", lat)

    lat, _ = measure(lambda i: api.get("/me"), 200, n, warm)
    row("GET /me", lat)

    lat, created = measure(lambda i: api.post("/jobs", new_job_body(i)), 201, n, warm)
    row("POST /jobs", lat)

    lister = tenant(ctx.stack, url, credits=0)
    parallel(lambda i: lister.api.post("/jobs", new_job_body(i)), range(LIST_WORKSPACE_JOBS))
    lat, pages = measure(lambda i: lister.api.get("/jobs?limit=20"), 200, n, warm)
    res.check(
        "GET /jobs?limit=20 answers 20 jobs and a cursor",
        all(len(p.json()["jobs"]) == 20 and p.json()["cursor"] for p in pages),
    )
    row(f"GET /jobs?limit=20 ({LIST_WORKSPACE_JOBS} jobs in the workspace)", lat)

    bodies = [c.json() for c in created]
    parallel(upload, bodies)
    jobs = [b["job"] for b in bodies]
    drain_messages(ctx.stack)
    lat, started = measure(lambda i: api.post(f"/jobs/{jobs[i]['id']}/start"), 202, n, warm)
    row("POST /jobs/{id}/start (file uploaded)", lat)

    queued = [s.json()["job"] for s in started]
    fail_jobs(queued)
    drain_messages(ctx.stack)
    lat, _ = measure(lambda i: api.post(f"/jobs/{queued[i]['id']}/retry"), 200, n, warm)
    row("POST /jobs/{id}/retry (failed job)", lat)

    lat, details = measure(lambda i: api.get(f"/jobs/{queued[i]['id']}"), 200, n, warm)
    res.check(
        "GET /jobs/{id} shows both attempts of a retried job",
        all(len(d.json()["job"]["attempts"]) == 2 for d in details),
    )
    row("GET /jobs/{id} (2 attempts)", lat)

    retried = bump(queued)
    fail_jobs(retried)
    drain_messages(ctx.stack)
    lat, _ = measure(
        lambda i: api.post(f"/jobs/{retried[i]['id']}/retry", headers={"Idempotency-Key": idempotency_key()}),
        200,
        n,
        warm,
    )
    row("POST /jobs/{id}/retry + Idempotency-Key", lat)

    credits = api.credits()
    res.check("every start and retry charged exactly 1 credit", credits == 5, f"balance {credits}, wanted 5")
    res.notes += [
        "Sequential, one client. Each request opens a new TCP connection (as the test suite's client).",
        "Keep-alive row: chalice local writes headers and body separately; devstack.chalice_local "
        "sets TCP_NODELAY so a reused connection does not wait for the client's delayed ACK "
        "(it cost ~40 ms per answer before).",
        "The frontend sends an Idempotency-Key with every retry (frontend/retry.js).",
    ]
