"""The child of the `cold` benchmark: a fresh process that imports the app and serves its first
requests through Chalice's test client, counting the botocore clients it creates.

    python -m benchmarks.coldchild sequential TOKEN JOB_ID   # first and second call of each path
    python -m benchmarks.coldchild concurrent TOKEN THREADS  # THREADS first GET /me at once

Prints one JSON line. Imports nothing of the project before the clock starts.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from typing import Any

PATHS = ("/me", "/jobs?limit=20", "/jobs/{job}")

_created: list[tuple[str, float]] = []
_lock = threading.Lock()


def _count_clients() -> None:
    import botocore.session

    original = botocore.session.Session.create_client

    def counting(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, service_name, *args, **kwargs)
        finally:
            with _lock:
                _created.append((service_name, time.perf_counter() - started))

    botocore.session.Session.create_client = counting


def sequential(token: str, job_id: str) -> dict[str, Any]:
    """Time the import, then the first and the second call of each path."""
    _count_clients()
    started = time.perf_counter()
    from chalice.test import Client

    import app

    imported = time.perf_counter() - started
    client = Client(app.app)
    headers = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {"import_ms": imported * 1000, "paths": {}}
    for path in PATHS:
        real = path.format(job=job_id)
        timings = []
        for _ in range(2):
            before = (len(_created), sum(s for _, s in _created))
            started = time.perf_counter()
            resp = client.http.get(real, headers=headers)
            elapsed = time.perf_counter() - started
            if resp.status_code != 200:
                raise RuntimeError(f"{real}: HTTP {resp.status_code} {resp.body[:200]!r}")
            timings.append(
                {
                    "ms": elapsed * 1000,
                    "clients": len(_created) - before[0],
                    "client_ms": (sum(s for _, s in _created) - before[1]) * 1000,
                }
            )
        out["paths"][path] = timings
    return out


def concurrent(token: str, threads: int) -> dict[str, Any]:
    """`threads` first GET /me at once, each on its own thread (as chalice local serves them)."""
    _count_clients()
    from chalice.test import Client

    import app

    client = Client(app.app)
    headers = {"Authorization": f"Bearer {token}"}
    ready = threading.Barrier(threads + 1)
    statuses: list[int] = []

    def one() -> None:
        ready.wait()
        statuses.append(client.http.get("/me", headers=headers).status_code)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return {
        "threads": threads,
        "wall_ms": (time.perf_counter() - started) * 1000,
        "statuses": dict(Counter(statuses)),
        "clients": dict(Counter(name for name, _ in _created)),
        "client_ms": sum(s for _, s in _created) * 1000,
    }


if __name__ == "__main__":
    mode, token, arg = sys.argv[1:4]
    result = sequential(token, arg) if mode == "sequential" else concurrent(token, int(arg))
    print(json.dumps(result))
