"""9. Tenant isolation of webhooks: another workspace's delivery latency, with and without a tarpit.

Workspace B has a receiver on 127.0.0.1 that answers at once; B's events go onto the
notifications queue one at a time (as the stream's function puts them), and each latency is from
that send to the receiver's arrival, through the local notifier (the same pollers as
`make dev`). Then workspace A registers a tarpit (one byte every 0.5 s, forever) and gets
TARPIT_EVENTS events, and B's latencies are measured again while A's tries run. A delivery that
has not arrived after GIVE_UP_SECONDS counts as that long and is reported as missing.

Run on another commit's code (the figures before a fix), the module needs only what every
version has: `devstack.notifier.Notifier`, the queue's `send_event`, `POST /webhooks`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from benchmarks.core import BenchResult, Context, Latency, Table
from benchmarks.fixtures import tenant
from tests.support.notify import Receiver, Tarpit, send_credits_low

# The deployed defaults (the test stack's env shortens them): a try of up to 10 s, retries
# after 5 s and more, an endpoint disabled after 3 failed deliveries.
DEPLOYED = {
    "WEBHOOK_TIMEOUT_SECONDS": "10",
    "WEBHOOK_RETRY_BASE_SECONDS": "5",
    "WEBHOOK_RETRY_MAX_DELAY_SECONDS": "10800",
    "WEBHOOK_RETRY_WINDOW_SECONDS": "86400",
    "WEBHOOK_DISABLE_AFTER_FAILURES": "3",
}
NAME = "notifier"
TITLE = "Webhook latency of one workspace beside another's tarpit endpoint"
TARPIT_EVENTS = 3  # as the report: three failed jobs in the tarpit's workspace
GIVE_UP_SECONDS = 120.0


def _latencies(receiver: Receiver, workspace_id: str, count: int) -> tuple[list[float], int]:
    """B's events one at a time: (seconds from send to arrival, how many never arrived)."""
    samples, missing = [], 0
    for _ in range(count):
        sent = time.monotonic()
        event_id = send_credits_low(workspace_id)
        while True:
            got = [r for r in receiver.received if r.event["id"] == event_id]
            if got:
                samples.append(got[0].at - sent)
                break
            if time.monotonic() - sent > GIVE_UP_SECONDS:
                samples.append(GIVE_UP_SECONDS)
                missing += 1
                break
            time.sleep(0.01)
        if missing:
            break  # one missing delivery says it: the rest would wait behind it too
    return samples, missing


def run(ctx: Context, res: BenchResult) -> None:
    with _deployed_settings():
        _run(ctx, res)


@contextlib.contextmanager
def _deployed_settings() -> Iterator[None]:
    from chalicelib import bootstrap

    saved = {k: os.environ.get(k) for k in DEPLOYED}
    os.environ.update(DEPLOYED)
    bootstrap.reset()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        bootstrap.reset()


def _run(ctx: Context, res: BenchResult) -> None:
    from devstack.notifier import Notifier

    count = ctx.n(20, 6)
    notifier = Notifier().start()
    receiver, tarpit = Receiver().start(), Tarpit(every=0.5, forever=True)
    table = Table(
        f"{TITLE}: {count} events of B, one at a time (ms from the send to the receiver)",
        ["condition", "n", "p50 ms", "p95 ms", "max ms", "missing after 120 s"],
    )
    res.tables.append(table)
    try:
        b = tenant(ctx.stack, ctx.api_url, credits=10)
        r = b.api.post("/webhooks", {"url": receiver.url, "eventTypes": ["credits.low"]})
        assert r.status_code == 201, r.text
        _latencies(receiver, b.workspace_id, 2)  # warm: the first try builds the clients
        for condition in ("alone", "beside A's tarpit"):
            if condition != "alone":
                a = tenant(ctx.stack, ctx.api_url, credits=10)
                r = a.api.post("/webhooks", {"url": tarpit.url, "eventTypes": ["credits.low"]})
                assert r.status_code == 201, r.text
                for _ in range(TARPIT_EVENTS):
                    send_credits_low(a.workspace_id)
                deadline = time.monotonic() + 30
                while tarpit.connections < 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
            started = time.monotonic()
            samples, missing = _latencies(receiver, b.workspace_id, count)
            latency = Latency.of(samples, time.monotonic() - started)
            table.add(condition, latency.n, latency.p50, latency.p95, latency.max, missing)
            res.data[condition] = {**latency.as_dict(), "missing": missing}
            ctx.say(f"{condition}: p50 {latency.p50:.0f} ms, p95 {latency.p95:.0f} ms, missing {missing}")
        res.check("B's webhooks all arrived beside the tarpit", res.data["beside A's tarpit"]["missing"] == 0)
    finally:
        tarpit.stop()
        receiver.stop()
        notifier.stop()
