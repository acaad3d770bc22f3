"""Cold starts: what each function imports, and the first requests of a fresh API process.

- Cold import per function, each in a fresh interpreter, interleaved with `import boto3` (the
  baseline) in every round: the API (`import app`), the worker and the sweeper (`import app` plus
  what their handler imports on its first call). The clock runs inside the child, around the
  imports only (the interpreter's own start is the same for all).
- A fresh process's first requests through Chalice's test client (benchmarks/coldchild.py):
  import, then the first and second GET /me, GET /jobs?limit=20, GET /jobs/{id}, counting the
  botocore clients made (each adapter is built on its first use).
- The first GET /me of 10 threads at once in a fresh process: the clients are still built once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.core import BenchResult, Context, Table, median
from benchmarks.fixtures import submitted_jobs, tenant
from devstack import REPO_ROOT

NAME = "cold"
TITLE = "Cold start"
CONCURRENT = 10
TARGET_RATIO = 1.2
IMPORTS = {
    "import boto3 (baseline)": "import boto3",
    "API: import app": "import app",
    "worker: import app + its handler": "import app; from chalicelib.handlers import worker",
    "sweeper: import app + its handler": "import app; from chalicelib.handlers import sweeper",
}


def cold_import(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{statement}: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def imports(ctx: Context, res: BenchResult) -> None:
    rounds = ctx.n(9, 3)
    samples: dict[str, list[float]] = {label: [] for label in IMPORTS}
    for statement in IMPORTS.values():
        cold_import(statement)  # the first run of each may write .pyc files: not counted
    for _ in range(rounds):
        for label, statement in IMPORTS.items():
            samples[label].append(cold_import(statement))
    base = median(samples["import boto3 (baseline)"])
    table = Table(
        f"{TITLE}: cold import per function, fresh interpreter, median of {rounds} interleaved rounds",
        ["function", "ms", "x import boto3"],
    )
    res.tables.append(table)
    res.data["cold_import_ms"] = {}
    for label, values in samples.items():
        ms = median(values) * 1000
        table.add(label, ms, ms / (base * 1000))
        res.data["cold_import_ms"][label] = round(ms, 1)
    api = median(samples["API: import app"])
    ratio = api / base
    res.target(
        "API cold import",
        f"{api * 1000:.0f} ms vs import boto3 {base * 1000:.0f} ms = {ratio:.2f}x",
        f"<= {TARGET_RATIO}x",
        ratio <= TARGET_RATIO,
        "" if ratio <= TARGET_RATIO else f"by {ratio - TARGET_RATIO:.2f}x",
        value=ratio,
        bound=TARGET_RATIO,
    )
    ctx.say(f"cold import: {json.dumps(res.data['cold_import_ms'])}")


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
    imports(ctx, res)
    owner = tenant(ctx.stack, ctx.api_url, credits=1)
    [job] = submitted_jobs(owner.api, 1)
    token = owner.api.token or ""
    table = Table(
        f"{TITLE}: a fresh Python process, routes through Chalice's test client",
        ["request", "first ms", "botocore clients made", "of which client creation ms", "second ms"],
    )
    res.tables.append(table)
    data = fresh_process(ctx, "sequential", token, job["id"])
    table.add("import app (the counting hook imported botocore first)", data["import_ms"], "", "", "")
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

    res.notes += [
        "botocore clients made: the boto3 and pynamodb clients created during that request "
        "(the services are built on first use); creation ms is the time spent in "
        "botocore's create_client.",
        "chalice local serves every connection on a new thread (Lambda: one request at a time), so "
        "10 threads asking at once show whether each client is still built once.",
        "On Lambda a container serves one request at a time: there the cost is the sequential one "
        "(first table), once per container "
        f"(median of the second calls: {median([s['ms'] for _, s in data['paths'].values()]):.1f} ms).",
    ]
