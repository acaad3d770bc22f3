"""3. Batch retry: one POST /jobs/retry of 25 failed jobs through chalice local (median of runs).

Between runs the same 25 jobs are failed again (their new attempt), so every run retries 25
failed jobs of one workspace with enough credits.
"""

from __future__ import annotations

import time

from benchmarks.core import BenchResult, Context, Latency, Table, median
from benchmarks.fixtures import bump, drain_messages, fail_jobs, failed_jobs, idempotency_key, tenant

NAME = "batch"
TITLE = "Batch retry"
SIZE = 25


def run(ctx: Context, res: BenchResult) -> None:
    runs, warm = ctx.n(7, 3), 1
    table = Table(
        f"{TITLE}: one POST /jobs/retry of {SIZE} failed jobs, {runs} runs after {warm} warm-up",
        ["request", "runs", "median ms", "min ms", "max ms", "ms per job"],
    )
    res.tables.append(table)
    owner = tenant(ctx.stack, ctx.api_url, credits=SIZE * (2 * (runs + warm) + 1) + 5)
    jobs = failed_jobs(owner.api, SIZE)
    res.data["rows"] = {}
    for keyed in (False, True):
        samples = []
        for i in range(warm + runs):
            headers = {"Idempotency-Key": idempotency_key()} if keyed else None
            drain_messages(ctx.stack)
            started = time.perf_counter()
            r = owner.api.post("/jobs/retry", {"jobIds": [j["id"] for j in jobs]}, headers=headers)
            elapsed = time.perf_counter() - started
            ok = r.status_code == 200 and r.json()["creditsCharged"] == SIZE
            res.check(f"batch{' (keyed)' if keyed else ''} run {i}: {SIZE} jobs requeued", ok, r.text[:200])
            if i >= warm:
                samples.append(elapsed)
            jobs = bump(jobs)
            fail_jobs(jobs)
        lat = Latency.of(samples, sum(samples))
        label = f"POST /jobs/retry, {SIZE} jobs" + (" + Idempotency-Key" if keyed else "")
        table.add(
            label,
            len(samples),
            median(samples) * 1000,
            min(samples) * 1000,
            lat.max,
            median(samples) * 1000 / SIZE,
        )
        res.data["rows"][label] = {
            "runs": len(samples),
            "median_ms": round(median(samples) * 1000, 1),
            "min_ms": round(min(samples) * 1000, 1),
            "max_ms": round(lat.max, 1),
        }
        ctx.say(f"{label}: median {median(samples) * 1000:.0f} ms")
    balance = owner.api.credits()
    res.check("batch: every job charged exactly once", balance == 5, f"balance {balance}, wanted 5")
    res.notes.append("Where the time goes: see the `calls` table (round trips per request).")
