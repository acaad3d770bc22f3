"""Concurrent HTTP load from a separate process.

The moto server (S3, SQS, Cognito) runs in a thread of the benchmark's own process
(tests.support.stack), so 50 client threads there would compete with it for the GIL and slow
the very S3 HEADs and SQS sends the API is waiting for. The client threads run in a spawned
child process instead.

Two ways to connect, one connection per request either way:
- fresh: each request connects when it is sent, as the test suite's client does. chalice local
  accepts from one GIL-bound thread; with its default backlog of 5 (devstack.chalice_local now
  sets 128) a burst of connects overflowed it and some waited for a SYN retransmit (1 s, 3 s);
- preconnected: every connection is opened (and accepted) before the clock starts; the burst
  then measures the app and its backends, not the accept queue.
"""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import json
import multiprocessing
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    headers: dict[str, str] | None = None
    tag: str = ""  # echoed back (e.g. the job id)


@dataclass(frozen=True)
class Answer:
    tag: str
    status: int
    body: Any
    seconds: float


@dataclass(frozen=True)
class Burst:
    wall_seconds: float
    answers: list[Answer]


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def accept_queue(port: int) -> int | None:
    """Connections waiting in the accept queue of the listener on 127.0.0.1:port (Linux), else None."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    local = f"0100007F:{port:04X}"
    for line in table:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # LISTEN: rx_queue is the accept queue
            return int(fields[4].split(":")[1], 16)
    return None


def _wait_accepted(port: int, timeout: float = 5.0) -> None:
    """Wait until the server has accepted every connection made so far.

    connect() returns once the handshake is done on the client's side; if the server's accept
    queue (backlog 5 in chalice local) is full by then, the server drops the final ACK and the
    connection only comes alive after retransmits. Connecting one at a time, each accepted before
    the next, keeps the queue from ever filling.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = accept_queue(port)
        if waiting is None:
            time.sleep(0.005)
            return
        if waiting == 0:
            time.sleep(0.001)
            if accept_queue(port) == 0:
                return
        time.sleep(0.001)


def fire(base: str, token: str, batch: list[Request], threads: int, preconnect: bool = False) -> Burst:
    """Send every request with `threads` threads at once; answers in request order."""
    auth = {"Authorization": f"Bearer {token}"}
    where = urlsplit(base)
    connections: list[http.client.HTTPConnection] = []
    if preconnect:
        for _ in batch:
            conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=120)
            conn.connect()
            connections.append(conn)
            _wait_accepted(where.port or 80)

    def on_connection(i: int, req: Request) -> Answer:
        conn = connections[i]
        headers = {**auth, **(req.headers or {})}
        payload = None
        if req.json is not None:
            payload = json.dumps(req.json).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        conn.request(req.method, req.path, body=payload, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        elapsed = time.perf_counter() - started
        conn.close()
        return Answer(req.tag, resp.status, _decode(raw), elapsed)

    def one(req: Request) -> Answer:
        started = time.perf_counter()
        r = requests.request(
            req.method, base + req.path, json=req.json, headers={**auth, **(req.headers or {})}, timeout=120
        )
        elapsed = time.perf_counter() - started
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        return Answer(req.tag, r.status_code, body, elapsed)

    requests.get(base + "/health", timeout=30)  # imports and first connection out of the way
    with cf.ThreadPoolExecutor(threads) as pool:
        ready = threading.Barrier(threads + 1)
        for _ in range(threads):  # every thread exists and waits before the clock starts
            pool.submit(ready.wait)
        ready.wait()
        started = time.perf_counter()
        if preconnect:
            futures = [pool.submit(on_connection, i, req) for i, req in enumerate(batch)]
        else:
            futures = [pool.submit(one, req) for req in batch]
        answers = [f.result() for f in futures]
        wall = time.perf_counter() - started
    return Burst(wall, answers)


def fire_elsewhere(
    base: str, token: str, batch: list[Request], threads: int, preconnect: bool = False
) -> Burst:
    """`fire` in a spawned child process (see the module's docstring)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        burst: Burst = pool.apply(fire, (base, token, batch, threads, preconnect))
        return burst
