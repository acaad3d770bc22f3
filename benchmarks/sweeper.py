"""5. The sweeper: one scheduled pass (app.sweep_stuck_jobs, in this process) over ~100 queued jobs.

The jobs are queued through the API (create, upload, start), in as many workspaces as
MAX_ACTIVE_JOBS needs (50 queued or processing per workspace); their messages are then deleted, as
if lost. The pass runs with `sweeper_requeue_after_seconds` = 1 so they are due after a second.
A re-sent job then waits twice as long (the sweeper's backoff), so each timed pass gets 100 new
jobs (set up untimed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks import backend
from benchmarks.core import BenchResult, Context, Table, median
from benchmarks.fixtures import drain_messages, quiesce, submitted_jobs, tenant
from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.processing.context import Services
from devstack.lambda_events import scheduled_event

NAME = "sweeper"
TITLE = "Sweeper pass"
QUEUED = 100
EVENT = scheduled_event("vidproc-sweep")


def queue_jobs(ctx: Context) -> None:
    """QUEUED jobs queued, in workspaces of at most MAX_ACTIVE_JOBS each (the API refuses more)."""
    per = Settings().max_active_jobs
    for first in range(0, QUEUED, per):
        count = min(per, QUEUED - first)
        submitted_jobs(tenant(ctx.stack, ctx.api_url, credits=count).api, count)


def run(ctx: Context, res: BenchResult) -> None:
    import app

    runs, idle_runs = ctx.n(3, 1), ctx.n(5, 2)
    started = time.perf_counter()
    leftovers = quiesce(ctx.stack)
    queue_jobs(ctx)
    drain_messages(ctx.stack)
    ctx.say(
        f"set up in {time.perf_counter() - started:.1f} s ({leftovers[0]} earlier queued jobs failed, "
        f"{leftovers[1]} messages deleted; {QUEUED} jobs queued, their messages deleted)"
    )
    backend.install(ctx.stack.ddb_url)
    table = Table(
        f"{TITLE}: app.sweep_stuck_jobs in-process, {QUEUED} queued jobs whose message was lost",
        ["pass", "runs", "median ms", "max ms", "requeued", "ms per job", "round trips per pass"],
    )
    res.tables.append(table)
    res.data["rows"] = {}

    def fresh_jobs() -> None:
        quiesce(ctx.stack)  # the previous pass's jobs are failed: they are not due again
        queue_jobs(ctx)

    def passes(
        label: str, count: int, wait: float, expect: int, prepare: Callable[[], None] | None = None
    ) -> None:
        samples, signatures, requeued = [], set(), []
        for _ in range(count):
            if prepare is not None:
                prepare()
            drain_messages(ctx.stack)
            time.sleep(wait)
            with backend.record(all_threads=True) as rec:
                started = time.perf_counter()
                result = app.sweep_stuck_jobs(EVENT, None)
                samples.append(time.perf_counter() - started)
            signatures.add(rec.signature())
            requeued.append(result["requeued"])
        res.check(f"sweeper {label}: requeued {expect} each pass", set(requeued) == {expect}, str(requeued))
        per_job = median(samples) * 1000 / expect if expect else float("nan")
        shape = " | ".join(sorted(signatures))
        table.add(label, count, median(samples) * 1000, max(samples) * 1000, expect, per_job, shape)
        res.data["rows"][label] = {
            "runs": count,
            "median_ms": round(median(samples) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1),
            "requeued": expect,
            "round_trips": shape,
        }
        ctx.say(f"{label}: median {median(samples) * 1000:.0f} ms ({shape})")

    passes("nothing due (default 120 s cutoff)", idle_runs, 0.0, 0)
    real = bootstrap.services()
    prompt = real.settings.model_copy(update={"sweeper_requeue_after_seconds": 1})
    bootstrap.override(Services(prompt, real.repo, real.store, real.queue, real.transcoder))
    try:
        passes(f"{QUEUED} queued jobs due", runs, 1.1, QUEUED, prepare=fresh_jobs)
    finally:
        bootstrap.override(None)
    quiesce(ctx.stack)
    res.notes.append(
        "The pass runs in-process with sweeper_requeue_after_seconds = 1, after the jobs' messages "
        "were deleted; its round trips are counted as in `calls`."
    )
