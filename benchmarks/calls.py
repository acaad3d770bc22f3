"""Where a request's time goes: each route run in THIS process (Chalice's test client, the same app
and the same stack), with every backend round trip counted and timed (benchmarks.backend).

`chalice local` is another process, so this is how its backend calls are seen. The difference
between the HTTP latency (benchmark `api`) and the in-process time is the local HTTP server.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from typing import Any

from chalice.test import Client

from benchmarks import backend
from benchmarks.core import BenchResult, Context, Latency, Table, median
from benchmarks.fixtures import (
    NOT_A_VIDEO,
    bump,
    drain_messages,
    fail_jobs,
    failed_jobs,
    idempotency_key,
    parallel,
    tenant,
    upload,
)
from tests.support.aws_calls import counting, shape

NAME = "calls"
TITLE = "Backend round trips per request (routes run in-process)"
BATCH = 25


class UnexpectedAnswer(RuntimeError):
    pass


def run(ctx: Context, res: BenchResult) -> None:
    import app  # the Chalice app, on this process's services (the stack's env is applied)
    from chalicelib.bootstrap import services

    # Powertools warns once per process that no Lambda context was registered (see the README).
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")

    backend.install(ctx.stack.ddb_url)
    n, warm = ctx.n(20, 5), 2
    batch_runs = ctx.n(3, 1)
    total = n + warm
    owner = tenant(ctx.stack, ctx.api_url, credits=3 * total + BATCH * (batch_runs + 2) + 5)
    client = Client(app.app)
    auth = {"Authorization": f"Bearer {owner.api.token}", "Content-Type": "application/json"}
    table = Table(
        f"{TITLE}: median of {n} after {warm} warm-up",
        ["request", "in-process ms", "backend ms", "other ms", "AWS calls per request (botocore hooks)"],
    )
    res.tables.append(table)
    routes: dict[str, Any] = {}
    res.data["routes"] = routes
    per_op: dict[str, list[float]] = {}

    def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        h = {**auth, **(headers or {})}
        payload = json.dumps(body) if body is not None else None
        with counting(services()) as hooked, backend.record(all_threads=True) as rec:  # threads too
            started = time.perf_counter()
            if method == "GET":
                resp = client.http.get(path, headers=h)
            else:
                resp = client.http.post(path, headers=h, body=payload or "{}")
            elapsed = time.perf_counter() - started
        return resp, elapsed, rec, shape(hooked)

    def route(label: str, method: str, paths: list[str], expect: int, **kw: Any) -> list[Any]:
        answers, totals, backends, others, signatures = [], [], [], [], Counter[str]()
        drain_messages(ctx.stack)
        for i, path in enumerate(paths):
            if "before" in kw:
                kw["before"](i)
                drain_messages(ctx.stack)
            headers = {"Idempotency-Key": idempotency_key()} if kw.get("keyed") else None
            body = kw["bodies"][i] if "bodies" in kw else None
            resp, elapsed, rec, hooked = call(method, path, body, headers)
            if resp.status_code != expect:
                raise UnexpectedAnswer(f"{label}: HTTP {resp.status_code}: {resp.body[:300]!r}")
            answers.append(resp.json_body)
            if i < kw.get("warm", warm):
                continue
            totals.append(elapsed)
            backends.append(rec.wall_seconds)
            others.append(elapsed - rec.wall_seconds)
            signatures[hooked] += 1
            if rec.wall_seconds >= 0.95 * rec.seconds:  # one at a time: each call's own latency
                for c in rec.calls:
                    per_op.setdefault(c.op, []).append(c.seconds)
        sig, seen = signatures.most_common(1)[0]
        shape = sig if seen == sum(signatures.values()) else f"{sig} ({seen} of {sum(signatures.values())})"
        t, b, o = (median(x) * 1000 for x in (totals, backends, others))
        table.add(label, t, b, o, shape)
        routes[label] = {
            "n": len(totals),
            "in_process_ms": round(t, 2),
            "backend_ms": round(b, 2),
            "other_ms": round(o, 2),
            "aws_calls": sig,
        }
        ctx.say(f"{label:<42} {t:6.1f} ms in-process, {b:6.1f} ms backend: {sig}")
        return answers

    route("GET /health", "GET", ["/health"] * total, 200)
    route("GET /me", "GET", ["/me"] * total, 200)
    bodies = [
        {"filename": f"c{i}.mp4", "contentType": "video/mp4", "size": len(NOT_A_VIDEO)} for i in range(total)
    ]
    created = route("POST /jobs", "POST", ["/jobs"] * total, 201, bodies=bodies)
    parallel(upload, created)
    ids = [c["job"]["id"] for c in created]
    route("GET /jobs?limit=20", "GET", ["/jobs?limit=20"] * total, 200)
    started = route("POST /jobs/{id}/start", "POST", [f"/jobs/{i}/start" for i in ids], 202)
    queued = [s["job"] for s in started]
    route("GET /jobs/{id}", "GET", [f"/jobs/{i}" for i in ids], 200)
    fail_jobs(queued)
    route("POST /jobs/{id}/retry", "POST", [f"/jobs/{i}/retry" for i in ids], 200)
    retried = bump(queued)
    fail_jobs(retried)
    route(
        "POST /jobs/{id}/retry + Idempotency-Key", "POST", [f"/jobs/{i}/retry" for i in ids], 200, keyed=True
    )

    batch = failed_jobs(owner.api, BATCH)
    runs = []
    for _ in range(batch_runs + 1):
        runs.append(batch)
        batch = bump(batch)
    answers = route(
        f"POST /jobs/retry ({BATCH} failed jobs)",
        "POST",
        ["/jobs/retry"] * (batch_runs + 1),
        200,
        bodies=[{"jobIds": [j["id"] for j in b]} for b in runs],
        warm=1,
        before=lambda i: fail_jobs(runs[i]) if i else None,
    )
    res.check(
        f"every batch retry requeued all {BATCH} jobs",
        all(a["creditsCharged"] == BATCH for a in answers),
        str([a["creditsCharged"] for a in answers]),
    )

    from chalicelib.auth import verify_token

    settings = services().settings
    verify_token(owner.api.token or "", settings)
    rounds = 200
    started_at = time.perf_counter()
    for _ in range(rounds):
        verify_token(owner.api.token or "", settings)
    per_call = (time.perf_counter() - started_at) / rounds * 1000
    table.add("verify_token() alone (JWKS cached)", per_call, 0.0, per_call, "none")
    routes["verify_token"] = {"n": rounds, "in_process_ms": round(per_call, 3)}
    ops = Table(
        "Backend operations as seen from the route code (requests whose calls ran one at a time)",
        ["operation", "calls", "p50 ms", "p95 ms", "max ms"],
    )
    res.tables.append(ops)
    res.data["operations"] = {}
    for op, samples in sorted(per_op.items()):
        lat = Latency.of(samples, sum(samples))
        ops.add(op, lat.n, lat.p50, lat.p95, lat.max)
        res.data["operations"][op] = {k: v for k, v in lat.as_dict().items() if k != "rps"}
    res.notes += [
        "in-process = the route's handler through Chalice's test client in the benchmark process; "
        "backend = the time during which at least one of its DynamoDB/S3/SQS round trips was in "
        "flight; other = the rest (auth, pydantic, logging and metrics, Chalice).",
        "S3 and SQS are the moto server, which runs in this same process: a route that runs "
        "round trips on threads of its own competes with moto for the GIL here, so its in-process "
        "time is pessimistic (the `batch` benchmark measures it over HTTP).",
    ]
