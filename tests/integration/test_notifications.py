"""Notifications on the real local stack: events from the tables' streams, emails through moto's
SES, webhooks to a receiver on 127.0.0.1 that checks signatures with its own HMAC code."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from chalicelib.domain import LedgerEntry, LedgerReason
from chalicelib.lifecycle import transitions
from chalicelib.notifications.domain import SUBSCRIBABLE
from devstack.notifier import Notifier
from tests.support.api import Tenant, new_tenant, repository
from tests.support.media import make_clip, make_corrupt_file
from tests.support.notify import Receiver, Tarpit, eventually, send_credits_low, sent_mail, signed_by
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
    entry = LedgerEntry(
        workspace_id=workspace_id, delta=-amount, reason=LedgerReason.ADJUSTMENT, actor="test"
    )
    repository().commit(transitions.change_credits(entry))


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


def test_a_delivery_that_keeps_failing_is_failed_the_endpoint_disabled_and_the_owners_told(
    aws_stack: AwsStack, tenant: Tenant
) -> None:
    # The test stack gives up after 6 s and disables an endpoint at its first failed delivery.
    down = Receiver(default=503).start()
    try:
        hook = register(tenant, down.url, ["credits.low"])
        endpoint_id = hook["endpoint"]["id"]
        take_credits(tenant.workspace_id, 8)
        failed = eventually(
            lambda: [d for d in deliveries(tenant, endpoint_id) if d["status"] == "failed"],
            timeout=40,
            what="the delivery to fail",
        )
        assert failed[0]["attempts"] >= 3 and failed[0]["lastResponseCode"] == 503
        assert failed[0]["nextTryAt"] is None
        endpoint = tenant.api.get("/webhooks").json()["endpoints"][0]
        assert endpoint["enabled"] is False and "failed" in endpoint["disabledReason"]
        notice = eventually(
            lambda: [m for m in sent_mail(aws_stack.moto_url, tenant.email) if "disabled" in m["subject"]],
            what="the owners' email",
        )
        assert down.url in notice[0]["body"]
        tries = len(down.received)

        # Fixed: enable it again and resend; this time it is delivered.
        down.default = 200
        assert tenant.api.post(f"/webhooks/{endpoint_id}/enable").status_code == 200
        r = tenant.api.post(f"/webhooks/{endpoint_id}/deliveries/{failed[0]['id']}/resend")
        assert r.status_code == 202, r.text
        eventually(
            lambda: [d for d in deliveries(tenant, endpoint_id) if d["status"] == "delivered"],
            what="the resend",
        )
        assert down.received[-1].status == 200 and len(down.received) == tries + 1
    finally:
        down.stop()


def test_rotation_signs_with_both_secrets_and_the_new_one_is_shown_once(
    tenant: Tenant, receiver: Receiver
) -> None:
    hook = register(tenant, receiver.url, ["credits.low"])
    endpoint_id = hook["endpoint"]["id"]
    r = tenant.api.post(f"/webhooks/{endpoint_id}/rotate")
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] != hook["secret"] and rotated["previousSecretValidUntil"]
    listed = tenant.api.get("/webhooks").text
    assert hook["secret"] not in listed and rotated["secret"] not in listed
    take_credits(tenant.workspace_id, 8)
    got = eventually(lambda: receiver.of_type("credits.low"), what="the webhook")[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert signed_by(rotated["secret"], got.headers, got.body)
    assert signed_by(hook["secret"], got.headers, got.body)


def test_one_workspaces_tarpit_endpoint_never_holds_up_another_workspaces_webhooks(
    aws_stack: AwsStack, api_server: str, tenant: Tenant, receiver: Receiver
) -> None:
    # GIVEN workspace A's endpoint answers one byte every 0.5 s, forever, and three of A's events
    # are being delivered to it (a try of them is under way)
    tarpit = Tarpit(every=0.5, forever=True)
    other = new_tenant(aws_stack, api_server, credits=10)
    try:
        register(tenant, tarpit.url, ["credits.low"])
        register(other, receiver.url, ["credits.low"])
        for _ in range(3):
            send_credits_low(tenant.workspace_id)
        eventually(lambda: tarpit.connections >= 1, what="a try of the tarpit endpoint")
        # WHEN workspace B has an event
        wanted = send_credits_low(other.workspace_id)
        # THEN B's webhook arrives, however long A's endpoint takes (the test stack's tries end
        # after 2 s; a try with a per-read limit only would hold the notifier for as long as A's
        # endpoint drips)
        got = eventually(
            lambda: [r for r in receiver.received if r.event["id"] == wanted], timeout=30, what="B's webhook"
        )
        assert got[0].event["workspaceId"] == other.workspace_id
    finally:
        tarpit.stop()


# --- jobs: completed, failed, retried ---------------------------------------------------------
def test_completed_failed_and_retried_jobs_email_and_call_webhooks_as_each_member_chose(
    aws_stack: AwsStack, tenant: Tenant, receiver: Receiver, clip: bytes, corrupt: bytes, worker: Workers
) -> None:
    hook = register(tenant, receiver.url, ["job.completed", "job.failed", "job.retried"])
    # This member turns completed emails off and retried emails on.
    r = tenant.api.call("PUT", "/notifications/settings", json={"emailEvents": ["job.failed", "job.retried"]})
    assert r.status_code == 200 and r.json()["emailEvents"] == ["job.failed", "job.retried"], r.text

    good = tenant.api.submit(clip, "good.mp4")
    bad = tenant.api.submit(corrupt, "broken.mp4")
    assert tenant.api.wait_for(good["id"], "completed", "failed")["status"] == "completed"
    failed_job = tenant.api.wait_for(bad["id"], "completed", "failed")
    assert failed_job["status"] == "failed"
    r = tenant.api.post(f"/jobs/{bad['id']}/retry")
    assert r.status_code == 200, r.text
    tenant.api.wait_for(bad["id"], "failed")

    eventually(lambda: len(receiver.of_type("job.failed")) == 2, what="two job.failed webhooks")
    completed = eventually(lambda: receiver.of_type("job.completed"), what="job.completed webhook")
    retried = eventually(lambda: receiver.of_type("job.retried"), what="job.retried webhook")
    assert [c.event["data"]["job"]["id"] for c in completed] == [good["id"]]
    assert completed[0].event["data"]["job"]["status"] == "completed"
    assert retried[0].event["data"]["retry"] == {
        "attempt": 2,
        "trigger": "manual",
        "requestedBy": tenant.api.get("/me").json()["user"]["id"],
        "creditsCharged": 1,
    }
    failure = receiver.of_type("job.failed")[0].event["data"]
    assert failure["job"]["id"] == bad["id"] and failure["error"]["code"] == failed_job["errorCode"]
    assert failure["error"]["message"] == failed_job["error"]
    for got in receiver.received:
        assert signed_by(hook["secret"], got.headers, got.body)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 4  # each event exactly once

    def mails() -> list[dict[str, Any]]:
        return sent_mail(aws_stack.moto_url, tenant.email)

    eventually(lambda: len(mails()) >= 3, what="the emails")
    subjects = sorted(m["subject"] for m in mails())
    assert subjects == ["Processing failed: broken.mp4"] * 2 + ["Retry queued: broken.mp4"]
    failed_mail = next(m for m in mails() if m["subject"].startswith("Processing failed"))
    assert failed_job["error"] in failed_mail["body"]
    assert f"#job-{bad['id']}" in failed_mail["body"]
    assert "X-Amz-Signature" not in failed_mail["body"] and "Signature=" not in failed_mail["body"]


def test_a_slow_or_failing_endpoint_never_holds_up_the_worker(
    tenant: Tenant, clip: bytes, worker: Workers
) -> None:
    held = threading.Event()
    slow = Receiver(hold=held).start()
    failing = Receiver(default=500).start()
    try:
        register(tenant, slow.url, ["job.completed"])
        register(tenant, failing.url, ["job.completed"])
        job = tenant.api.submit(clip)
        done = tenant.api.wait_for(job["id"], "completed", "failed")
        assert done["status"] == "completed"
        assert slow.received == []  # the slow endpoint has not answered yet: the job did not wait for it
    finally:
        held.set()
        slow.stop()
        failing.stop()


# --- registration: bad input is a clear 400 and stores nothing ---------------------------------
BAD_REGISTRATIONS: list[tuple[dict[str, Any], str]] = [
    ({"url": "http://example.com/hook", "eventTypes": ["job.failed"]}, "https"),
    ({"url": "https://10.1.2.3/hook", "eventTypes": ["job.failed"]}, "private"),
    ({"url": "https://192.168.0.10/hook", "eventTypes": ["job.failed"]}, "private"),
    ({"url": "https://169.254.169.254/latest/meta-data", "eventTypes": ["job.failed"]}, "link-local"),
    ({"url": "https://[fd00::1]/hook", "eventTypes": ["job.failed"]}, "private"),
    ({"url": "https://example.com/" + "a" * 3000, "eventTypes": ["job.failed"]}, "2048"),
    ({"url": "https://example.com/hook", "eventTypes": ["job.exploded"]}, "Unknown event type"),
    ({"url": "https://example.com/hook", "eventTypes": []}, "eventTypes"),
    ({"url": "not a url", "eventTypes": ["job.failed"]}, "https"),
    ({"eventTypes": ["job.failed"]}, "url"),
    (
        {"url": "https://example.com/hook", "eventTypes": ["job.failed"] * (len(SUBSCRIBABLE) + 1)},
        "eventTypes",
    ),
]


def test_a_bad_registration_is_a_clear_400_and_nothing_is_stored(tenant: Tenant) -> None:
    # One tenant for every case (each case is independent: nothing is stored by any of them).
    # The addresses refused are IP literals: nothing is looked up or connected to.
    for body, says in BAD_REGISTRATIONS:
        r = tenant.api.post("/webhooks", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["code"] == "BAD_REQUEST" and says in r.json()["message"], (body, r.text)
        assert tenant.api.get("/webhooks").json()["endpoints"] == [], body


def test_malformed_json_is_a_400_and_members_cannot_manage_webhooks(
    aws_stack: AwsStack, api_server: str, tenant: Tenant, receiver: Receiver
) -> None:
    r = tenant.api.call("POST", "/webhooks", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"
    member = f"member-{tenant.workspace_id}@example.com"
    aws_stack.add_user(member, tenant.workspace_id, role="member")
    headers = aws_stack.headers(member)
    r = requests.post(
        f"{api_server}/webhooks",
        json={"url": receiver.url, "eventTypes": ["job.failed"]},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 403, r.text
    assert tenant.api.get("/webhooks").json()["endpoints"] == []


# --- settings and unsubscribe -------------------------------------------------------------------
def test_settings_default_by_role_and_reject_what_they_do_not_know(
    aws_stack: AwsStack, api_server: str, tenant: Tenant
) -> None:
    owner = tenant.api.get("/notifications/settings").json()
    assert owner["emailEvents"] == ["credits.low", "job.completed", "job.failed"]
    assert owner["customized"] is False and owner["lowCreditsThreshold"] == 2
    r = tenant.api.call("PUT", "/notifications/settings", json={"emailEvents": ["job.nope"]})
    assert r.status_code == 400 and "Unknown event type" in r.json()["message"]
    r = tenant.api.call("PUT", "/notifications/settings", json={"lowCreditsThreshold": 5})
    assert r.status_code == 200 and r.json()["lowCreditsThreshold"] == 5

    member = f"m-{tenant.workspace_id}@example.com"
    aws_stack.add_user(member, tenant.workspace_id, role="member")
    url = f"{api_server}/notifications/settings"
    mine = requests.get(url, headers=aws_stack.headers(member), timeout=30).json()
    assert mine["emailEvents"] == ["job.completed", "job.failed"]
    r = requests.put(url, json={"lowCreditsThreshold": 1}, headers=aws_stack.headers(member), timeout=30)
    assert r.status_code == 403


def test_the_unsubscribe_link_works_without_signing_in_and_a_forged_one_does_not(
    aws_stack: AwsStack, api_server: str, tenant: Tenant
) -> None:
    take_credits(tenant.workspace_id, 8)  # credits.low: the owner's default email
    mail = eventually(lambda: sent_mail(aws_stack.moto_url, tenant.email), what="the email")[0]
    link = re.search(r'href="([^"]*/notifications/unsubscribe\?token=[^"]+)"', mail["body"])
    assert link is not None
    url = link.group(1).replace("&amp;", "&")
    assert url.startswith(api_server)
    page = requests.get(url, timeout=30)  # no Authorization header
    assert page.status_code == 200 and "<form" in page.text
    assert "credits.low" in tenant.api.get("/notifications/settings").json()["emailEvents"]  # GET only asks
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    done = requests.post(urljoin(url, action.group(1).replace("&amp;", "&")), timeout=30)  # the page's button
    assert done.status_code == 200 and "Unsubscribed" in done.text
    settings = tenant.api.get("/notifications/settings").json()
    assert "credits.low" not in settings["emailEvents"] and settings["customized"] is True

    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert requests.post(forged, timeout=30).status_code == 400
    assert (
        requests.get(f"{api_server}/notifications/unsubscribe?token=nonsense", timeout=30).status_code == 400
    )
