"""2. Retries under contention, through chalice local, with the credit invariant verified.

- 100 concurrent retries (50 client threads) over 40 failed jobs with 10 credits: exactly 10
  succeed, on 10 distinct jobs; the balance ends at 0 and equals the sum of the ledger.
- 50 concurrent retries of ONE failed job: exactly one 200, one credit charged, one new attempt.

A broken invariant is a failed check: the run exits non-zero.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.core import BenchResult, Context, Latency, Table
from benchmarks.fixtures import drain_messages, failed_jobs, repo, tenant
from benchmarks.load import Burst, Request, fire_elsewhere
from chalicelib.processing import accounts
from tests.support.api import Api

NAME = "contention"
TITLE = "Retry under contention"
JOBS, CREDITS, RETRIES, THREADS = 40, 10, 100, 50
ONE_JOB_RETRIES = 50


def outcome(burst: Burst) -> dict[str, int]:
    counts = Counter(
        f"{a.status} {a.body.get('code', '') if isinstance(a.body, dict) else ''}".strip()
        for a in burst.answers
    )
    return dict(sorted(counts.items()))


def ledger_sum(workspace_id: str) -> int:
    return repo().ledger_sum(workspace_id)


def retry_entries(api: Api) -> int:
    entries = api.get("/credits/ledger?limit=100").json()["entries"]
    return sum(1 for e in entries if e["reason"] == "retry")


def many_jobs(ctx: Context, res: BenchResult, label: str, preconnect: bool) -> tuple[Burst, dict[str, Any]]:
    owner = tenant(ctx.stack, ctx.api_url, credits=CREDITS)
    ws = owner.workspace_id
    accounts.add_credits(repo(), ws, JOBS)
    jobs = failed_jobs(owner.api, JOBS)
    accounts.set_credits(repo(), ws, CREDITS)
    drain_messages(ctx.stack)
    targets = [jobs[i % JOBS]["id"] for i in range(RETRIES)]
    batch = [Request("POST", f"/jobs/{jid}/retry", tag=jid) for jid in targets]
    burst = fire_elsewhere(ctx.api_url, owner.api.token or "", batch, THREADS, preconnect)

    winners = [a.tag for a in burst.answers if a.status == 200]
    losers = {
        (a.status, a.body.get("code")) for a in burst.answers if a.status != 200 and isinstance(a.body, dict)
    }
    balance = owner.api.credits()
    total = ledger_sum(ws)
    queued = owner.api.get("/jobs?status=queued&limit=100").json()["jobs"]
    res.check(
        f"{label}: exactly {CREDITS} retries succeed", len(winners) == CREDITS, f"{len(winners)} succeeded"
    )
    res.check(
        f"{label}: no job queued twice", len(set(winners)) == len(winners), f"{len(set(winners))} distinct"
    )
    res.check(
        f"{label}: the others are 400 (not failed) or 403 (no credits)",
        losers <= {(400, "BAD_REQUEST"), (403, "FORBIDDEN")},
        str(sorted(losers)),
    )
    res.check(f"{label}: balance ends at 0", balance == 0, f"balance {balance}")
    res.check(f"{label}: ledger sum == balance", total == balance, f"ledger sum {total}, balance {balance}")
    res.check(
        f"{label}: the queued jobs are exactly the winners",
        sorted(j["id"] for j in queued) == sorted(winners),
        f"{len(queued)} queued",
    )
    res.check(f"{label}: {CREDITS} retry ledger entries", retry_entries(owner.api) == CREDITS)
    facts = {
        "successes": len(winners),
        "distinct": len(set(winners)),
        "balance": balance,
        "ledger_sum": total,
    }
    return burst, facts


def one_job(ctx: Context, res: BenchResult, label: str, preconnect: bool) -> tuple[Burst, dict[str, Any]]:
    owner = tenant(ctx.stack, ctx.api_url, credits=CREDITS)
    [job] = failed_jobs(owner.api, 1)
    before = owner.api.credits()
    drain_messages(ctx.stack)
    batch = [Request("POST", f"/jobs/{job['id']}/retry", tag=job["id"])] * ONE_JOB_RETRIES
    burst = fire_elsewhere(ctx.api_url, owner.api.token or "", batch, ONE_JOB_RETRIES, preconnect)
    statuses = Counter(a.status for a in burst.answers)
    balance = owner.api.credits()
    total = ledger_sum(owner.workspace_id)
    attempts = [a["n"] for a in owner.api.job(job["id"])["attempts"]]
    res.check(
        f"{label}: one job, exactly one 200 and {ONE_JOB_RETRIES - 1} x 400",
        statuses == Counter({200: 1, 400: ONE_JOB_RETRIES - 1}),
        str(dict(statuses)),
    )
    res.check(f"{label}: one job, charged once", balance == before - 1, f"{before} -> {balance}")
    res.check(f"{label}: one job, ledger sum == balance", total == balance, f"{total} vs {balance}")
    res.check(f"{label}: one job, one new attempt", attempts == [1, 2], str(attempts))
    return burst, {"successes": statuses.get(200, 0), "balance": balance, "ledger_sum": total}


def warm_up(ctx: Context) -> None:
    """Every path a burst takes, once, one at a time: a burst must not pay for first uses.

    (The first concurrent requests of a chalice local process are much slower: see `cold`.)
    """
    owner = tenant(ctx.stack, ctx.api_url, credits=3)
    one, two = failed_jobs(owner.api, 2)
    for job, expect in ((one, 200), (one, 400), (two, 403)):
        r = owner.api.post(f"/jobs/{job['id']}/retry")
        assert r.status_code == expect, r.text
    owner.api.credits()


def run(ctx: Context, res: BenchResult) -> None:
    runs = ctx.n(2, 1)
    warm_up(ctx)
    table = Table(
        f"{TITLE}: concurrent POST /jobs/{{id}}/retry from {THREADS} threads in another process",
        ["scenario", "connections", "wall ms", "req/s", "p50 ms", "p95 ms", "max ms", "answers"],
    )
    res.tables.append(table)
    scenarios = [
        (f"{RETRIES} retries, {JOBS} failed jobs, {CREDITS} credits", many_jobs),
        (f"{ONE_JOB_RETRIES} retries of one failed job", one_job),
    ]
    res.data["runs"] = []
    for label, scenario in scenarios:
        for mode in ("preconnected", "fresh"):
            for i in range(1, runs + 1):
                burst, facts = scenario(ctx, res, f"{label}, {mode}, run {i}", mode == "preconnected")
                lat = Latency.of([a.seconds for a in burst.answers], burst.wall_seconds)
                answers = outcome(burst)
                shown = ", ".join(f"{k}: {v}" for k, v in answers.items())
                wall = burst.wall_seconds * 1000
                table.add(label, mode, wall, lat.rps, lat.p50, lat.p95, lat.max, shown)
                res.data["runs"].append(
                    {
                        "scenario": label,
                        "connections": mode,
                        "run": i,
                        "wall_ms": round(wall, 1),
                        **lat.as_dict(),
                        "answers": answers,
                        **facts,
                    }
                )
                ctx.say(f"{label}, {mode} (run {i}): {wall:.0f} ms, p50 {lat.p50:.0f} ms, {shown}")
    res.notes += [
        "Each run uses a fresh workspace; the invariants are checked after every run (exactly N "
        "winners on distinct jobs, balance 0, ledger sum == balance, the queued jobs == the winners).",
        "preconnected: every connection is opened before the clock starts. fresh: each request "
        "connects during the burst, as the test suite's client does (devstack.chalice_local raises "
        "chalice local's listen backlog from 5 to 128; with 5, connects overflowed it and waited "
        "for SYN retransmits of 1-3 s; see benchmarks/load.py).",
        "Answers are `HTTP status` and error code.",
    ]
