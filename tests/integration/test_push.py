"""Web Push through the real stack: a person subscribes two browsers (the push service stand-in on
127.0.0.1), their jobs complete and fail, and each browser gets an encrypted push whose VAPID JWT
and payload the stand-in checks independently; a subscription the push service answers 410 for
is removed; the person's push choice holds; bad subscriptions are a clear 400."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.notifier import Notifier
from tests.support.api import Tenant, new_tenant
from tests.support.notify import eventually
from tests.support.push_service import BrowserKeys, PushService, opened
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str, notifier: Notifier) -> Tenant:
    return new_tenant(aws_stack, api_server)


def subscribe(tenant: Tenant, browser: BrowserKeys, endpoint: str) -> dict[str, Any]:
    answer = tenant.api.post("/push/subscriptions", browser.subscription(endpoint))
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["subscription"])


def test_each_browser_gets_its_jobs_outcomes_encrypted_and_signed_and_a_gone_one_is_removed(
    tenant: Tenant, push_service: PushService, worker: Workers, clip: bytes, aws_stack: AwsStack
) -> None:
    # GIVEN two browsers of one person, subscribed with the application server key
    key = tenant.api.get("/push/public-key")
    assert key.status_code == 200, key.text
    server_key = key.json()["publicKey"]
    laptop, phone = BrowserKeys(), BrowserKeys()
    laptop_url, phone_url = push_service.endpoint(), push_service.endpoint()
    subscribe(tenant, laptop, laptop_url)
    gone = subscribe(tenant, phone, phone_url)
    assert subscribe(tenant, phone, phone_url)["id"] == gone["id"]  # the same browser again: replaced
    push_service.scripted[phone_url.removeprefix(push_service.origin)] = [410]  # unsubscribed meanwhile

    # WHEN a job completes
    done = tenant.api.submit(clip, "holiday.mp4")
    tenant.api.wait_for(done["id"], "completed")

    # THEN each browser got one push, sealed for it alone, signed with the application server key
    pushed = eventually(lambda: push_service.to(laptop_url), what="the laptop's push")
    message = opened(pushed[0], laptop, push_service, server_key)
    assert message["type"] == "job.completed" and message["jobId"] == done["id"]
    assert message["title"] == "Ready: holiday.mp4"
    assert message["url"] == f"{aws_stack.web_origin}/?workspace={tenant.workspace_id}#job-{done['id']}"
    phone_got = eventually(lambda: push_service.to(phone_url), what="the phone's push")
    assert opened(phone_got[0], phone, push_service, server_key)["jobId"] == done["id"]

    # ... and the phone's push service said 410: that subscription is gone
    def listed() -> list[str]:
        return [s["id"] for s in tenant.api.get("/push/subscriptions").json()["subscriptions"]]

    eventually(lambda: gone["id"] not in listed(), what="the gone subscription removed")
    assert len(listed()) == 1

    # WHEN a job fails, THEN the remaining browser hears why
    bad = tenant.api.submit(b"not a video at all" * 40, "broken.mp4")
    tenant.api.wait_for(bad["id"], "failed")
    failed = eventually(lambda: [p for p in push_service.to(laptop_url)[1:]], what="the failure's push")
    message = opened(failed[0], laptop, push_service, server_key)
    assert message["type"] == "job.failed" and message["title"] == "Failed: broken.mp4"
    assert "not a readable video" in message["body"]
    assert len(push_service.to(phone_url)) == 1  # removed: nothing more was sent to it


def test_the_push_choice_holds_and_bad_subscriptions_are_a_clear_400(
    tenant: Tenant, push_service: PushService, worker: Workers, clip: bytes
) -> None:
    # GIVEN a browser of a person who wants pushes about failures only
    browser, endpoint = BrowserKeys(), push_service.endpoint()
    subscribe(tenant, browser, endpoint)
    chosen = tenant.api.call("PUT", "/notifications/settings", json={"pushEvents": ["job.failed"]})
    assert chosen.status_code == 200 and chosen.json()["pushEvents"] == ["job.failed"], chosen.text
    unknown = tenant.api.call("PUT", "/notifications/settings", json={"pushEvents": ["credits.low"]})
    assert unknown.status_code == 400

    # WHEN a job completes and another fails
    done = tenant.api.submit(clip)
    tenant.api.wait_for(done["id"], "completed")
    bad = tenant.api.submit(b"not a video at all" * 40)
    tenant.api.wait_for(bad["id"], "failed")

    # THEN only the failure was pushed
    pushed = eventually(lambda: push_service.to(endpoint), what="the failure's push")
    server_key = tenant.api.get("/push/public-key").json()["publicKey"]
    assert [opened(p, browser, push_service, server_key)["jobId"] for p in pushed] == [bad["id"]]

    # AND a subscription that is not one is refused with its reason, and nothing is stored
    good = browser.subscription(push_service.endpoint())
    refusals = {
        "a private address": {**good, "endpoint": "https://10.0.0.7/push/x"},
        "plain http to a host": {**good, "endpoint": "http://push.example.com/x"},
        "a short key": {**good, "keys": {**good["keys"], "p256dh": "AAAA"}},
        "an auth that is not base64url": {**good, "keys": {**good["keys"], "auth": "!!!"}},
        "no keys": {"endpoint": good["endpoint"]},
    }
    for why, body in refusals.items():
        answer = tenant.api.post("/push/subscriptions", body)
        assert answer.status_code == 400, (why, answer.status_code, answer.text)
    [stored] = tenant.api.get("/push/subscriptions").json()["subscriptions"]
    deleted = tenant.api.call("DELETE", f"/push/subscriptions/{stored['id']}")
    assert deleted.status_code == 200 and tenant.api.get("/push/subscriptions").json()["subscriptions"] == []
    assert tenant.api.call("DELETE", "/push/subscriptions/nope").status_code == 404
