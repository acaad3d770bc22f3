"""Cold starts: the first requests of a fresh API process.

- In a fresh Python process (as a new Lambda container would be, minus Lambda's own init):
  import the app, then the first and the second GET /me, GET /jobs?limit=20 and
  GET /jobs/{id} through Chalice's test client, counting the botocore clients created on the way.
- A fresh Python process whose first GET /me come from N threads at once (as `chalice local`
  serves them), counting the botocore clients made;
- A fresh `chalice local`: 50 concurrent GET /me as its very first requests, then 50 more.

The fresh process runs benchmarks/coldchild.py, which imports nothing of the project before
it starts the clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.core import BenchResult, Context, Latency, Table, median
from benchmarks.fixtures import submitted_jobs, tenant
from benchmarks.load import Request, fire_elsewhere
from devstack import REPO_ROOT
from devstack.services import free_port

NAME = "cold"
TITLE = "Cold start of the API"
BURST = 50
CONCURRENT = 10


def fresh_process(ctx: Context, mode: str, token: str, arg: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.coldchild", mode, token, arg],
        env={**os.environ, **ctx.stack.env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks.coldchild {mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(ctx: Context, res: BenchResult) -> None:
    from tests.support.stack import running_api

    owner = tenant(ctx.stack, ctx.api_url, credits=1)
    [job] = submitted_jobs(owner.api, 1)
    token = owner.api.token or ""
    table = Table(
        f"{TITLE}: a fresh Python process, routes through Chalice's test client",
        ["request", "first ms", "botocore clients made", "of which client creation ms", "second ms"],
    )
    res.tables.append(table)
    data = fresh_process(ctx, "sequential", token, job["id"])
    table.add("import app (botocore imported already)", data["import_ms"], "", "", "")
    for path, (first, second) in data["paths"].items():
        table.add(f"GET {path}", first["ms"], first["clients"], first["client_ms"], second["ms"])
    res.data["fresh_process"] = {
        "import_ms": round(data["import_ms"], 1),
        **{
            f"GET {p}": {
                "first_ms": round(f["ms"], 1),
                "clients_made": f["clients"],
                "client_creation_ms": round(f["client_ms"], 1),
                "second_ms": round(s["ms"], 1),
            }
            for p, (f, s) in data["paths"].items()
        },
    }
    ctx.say(f"fresh process: {json.dumps(res.data['fresh_process'])}")

    together = Table(
        f"{TITLE}: a fresh Python process, the first GET /me of N threads at once (in-process)",
        [
            "threads",
            "wall ms",
            "botocore clients made",
            "client creation ms (summed over threads, GIL waits included)",
        ],
    )
    res.tables.append(together)
    res.data["fresh_process_concurrent"] = {}
    for threads in (1, CONCURRENT):
        shot = fresh_process(ctx, "concurrent", token, str(threads))
        res.check(f"cold: {threads} concurrent first GET /me all 200", shot["statuses"] == {"200": threads})
        made = ", ".join(f"{k} {v}" for k, v in sorted(shot["clients"].items()))
        together.add(threads, shot["wall_ms"], made, shot["client_ms"])
        res.data["fresh_process_concurrent"][str(threads)] = {
            "wall_ms": round(shot["wall_ms"], 1),
            "clients": shot["clients"],
            "client_ms": round(shot["client_ms"], 1),
        }
        ctx.say(
            f"fresh process, {threads} concurrent first GET /me: {shot['wall_ms']:.0f} ms, clients {made}"
        )

    burst = Table(
        f"{TITLE}: a fresh chalice local, {BURST} concurrent GET /me (preconnected)",
        ["burst", "wall ms", "p50 ms", "p95 ms", "max ms"],
    )
    res.tables.append(burst)
    res.data["fresh_chalice_local"] = {}
    with running_api(ctx.stack, port=free_port()) as fresh_url:  # beside the running API
        for label in ("first burst (cold)", "second burst (warm)"):
            wave = fire_elsewhere(fresh_url, token, [Request("GET", "/me")] * BURST, BURST, preconnect=True)
            ok = all(a.status == 200 for a in wave.answers)
            res.check(f"cold: {label} all 200", ok, str({a.status for a in wave.answers}))
            lat = Latency.of([a.seconds for a in wave.answers], wave.wall_seconds)
            burst.add(label, wave.wall_seconds * 1000, lat.p50, lat.p95, lat.max)
            res.data["fresh_chalice_local"][label] = {
                "wall_ms": round(wave.wall_seconds * 1000, 1),
                **lat.as_dict(),
            }
            ctx.say(
                f"fresh chalice local, {label}: {wave.wall_seconds * 1000:.0f} ms wall, p50 {lat.p50:.0f} ms"
            )
    res.notes += [
        "botocore clients made: the boto3 and pynamodb clients created during that request "
        "(the services are built on first use); creation ms is the time spent in "
        "botocore's create_client.",
        "chalice local serves every connection on a new thread, so a burst of first requests "
        "builds the services from many threads at once; the second table shows whether they are "
        "still built once when 10 threads ask together.",
        "On Lambda a container serves one request at a time: there the cost is the sequential one "
        "(first table), once per container "
        f"(median of the second calls: {median([s['ms'] for _, s in data['paths'].values()]):.1f} ms).",
    ]
