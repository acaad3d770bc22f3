"""Notifications on the real local stack: events from the tables' streams, emails through moto's
SES, webhooks to a receiver on 127.0.0.1 that checks signatures with its own HMAC code."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.domain import LedgerEntry, LedgerReason
from devstack.notifier import Notifier
from tests.support.api import Tenant, new_tenant, repository
from tests.support.media import make_clip, make_corrupt_file
from tests.support.notify import Receiver, eventually, sent_mail, signed_by
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration

ALL_EVENTS = ["job.completed", "job.failed", "job.retried", "credits.low"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return make_clip(path, seconds=1, width=320, height=240, fps=10).read_bytes()


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_corrupt_file(tmp_path_factory.mktemp("bad") / "bad.mp4", size=4096).read_bytes()


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str, notifier: Notifier) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def register(tenant: Tenant, url: str, events: list[str] | None = None) -> dict[str, Any]:
    r = tenant.api.post("/webhooks", {"url": url, "eventTypes": events or ALL_EVENTS})
    assert r.status_code == 201, r.text
    return dict(r.json())


def take_credits(workspace_id: str, amount: int) -> None:
    """An operator's adjustment through the ledger (a committed balance change, no job needed)."""
    entry = LedgerEntry(workspace_id=workspace_id, delta=-amount, reason=LedgerReason.ADJUSTMENT, actor="test")
    repository().change_credits(workspace_id, entry)


def deliveries(tenant: Tenant, endpoint_id: str) -> list[dict[str, Any]]:
    r = tenant.api.get(f"/webhooks/{endpoint_id}/deliveries")
    assert r.status_code == 200, r.text
    return list(r.json()["deliveries"])


# --- webhooks: signatures, exactly once, retries ---------------------------------------------
def test_credits_low_reaches_the_webhook_once_signed_and_the_owner_by_email(
    aws_stack: AwsStack, tenant: Tenant, receiver: Receiver
) -> None:
    hook = register(tenant, receiver.url, ["credits.low"])
    take_credits(tenant.workspace_id, 7)  # 10 -> 3: above the default threshold (2): no event
    take_credits(tenant.workspace_id, 1)  # 3 -> 2: crosses it

    got = eventually(lambda: receiver.of_type("credits.low"), what="the credits.low webhook")
    assert signed_by(hook["secret"], got[0].headers, got[0].body)
    event = got[0].event
    assert event["workspaceId"] == tenant.workspace_id
    assert event["data"] == {"credits": 2, "threshold": 2}
    assert got[0].headers["webhook-id"] == event["id"]
    mail = eventually(lambda: sent_mail(aws_stack.moto_url, tenant.email), what="the credits.low email")
    assert "2 left" in mail[0]["subject"]
    take_credits(tenant.workspace_id, 1)  # 2 -> 1: already low, no second event
    log = eventually(
        lambda: [d for d in deliveries(tenant, hook["endpoint"]["id"]) if d["status"] == "delivered"],
        what="the delivered log entry",
    )
    assert len(receiver.received) == 1 and len(log) == 1
    assert log[0]["attempts"] == 1 and log[0]["lastResponseCode"] == 200


def test_a_500_is_retried_until_a_200_and_the_log_shows_both_tries(tenant: Tenant) -> None:
    flaky = Receiver(script=[500]).start()
    try:
        hook = register(tenant, flaky.url, ["credits.low"])
        take_credits(tenant.workspace_id, 8)
        eventually(lambda: len(flaky.received) >= 2, what="the retry")
        first, second = flaky.received[:2]
        assert (first.status, second.status) == (500, 200)
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert first.body == second.body
        assert signed_by(hook["secret"], second.headers, second.body)
        log = eventually(
            lambda: [d for d in deliveries(tenant, hook["endpoint"]["id"]) if d["status"] == "delivered"],
            what="delivered",
        )
        assert log[0]["attempts"] == 2 and log[0]["lastResponseCode"] == 200
    finally:
        flaky.stop()
