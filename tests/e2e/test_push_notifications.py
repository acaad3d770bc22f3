"""Web Push to a closed dashboard, in Chromium.

Chromium's pushManager.subscribe needs its vendor's push service, which no test here can reach
(measured: "AbortError: Registration failed - permission denied"). So the subscription the
dashboard stores is the push service stand-in's (tests/support/push_service.py): the page's
PushManager hands out the stand-in's endpoint with keys this test holds, and everything after it
is real: the API stores it, the worker completes the job, the notifier encrypts and signs the
push, the stand-in checks and decrypts it. What a push service would then do, deliver it to the
browser, is the DevTools protocol's ServiceWorker.deliverPushMessage, with the payload the
stand-in decrypted; the dashboard's service worker shows the notification, and its click takes
a dashboard tab to the job's card.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from devstack.notifier import Notifier
from tests.support.api import Api
from tests.support.media import make_clip
from tests.support.notify import eventually
from tests.support.push_service import BrowserKeys, PushService, opened
from tests.support.stack import AwsStack, Workers

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# The page's PushManager, standing in for the push service Chromium cannot reach from here.
STAND_IN_PUSH_MANAGER = """
(() => {
  const subscription = %s;
  let current = null;
  const made = () => ({
    endpoint: subscription.endpoint,
    expirationTime: null,
    toJSON: () => subscription,
    unsubscribe: async () => { current = null; return true; },
  });
  PushManager.prototype.subscribe = async function () { current = made(); return current; };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""


@pytest.fixture
def context(browser: Browser, web_server: str) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=web_server)
    context.grant_permissions(["notifications"], origin=web_server)
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


def _sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-email")).to_have_text(email)


def _deliver(context: BrowserContext, host: Page, web_server: str, data: dict[str, Any]) -> None:
    """What the push service does: hand the (decrypted) message to the origin's service worker."""
    cdp = context.new_cdp_session(host)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(100):  # the events arrive while Playwright waits
        if registrations:
            break
        host.wait_for_timeout(100)
    [registration] = [r for r in registrations if r["scopeURL"].startswith(web_server) and not r["isDeleted"]]
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": web_server, "registrationId": registration["registrationId"], "data": json.dumps(data)},
    )


def test_a_push_reaches_the_closed_dashboard_as_a_notification_whose_click_opens_the_jobs_card(
    context: BrowserContext,
    push_service: PushService,
    aws_stack: AwsStack,
    api_server: str,
    web_server: str,
    notifier: Notifier,
    worker: Workers,
    tmp_path: Path,
) -> None:
    # GIVEN a person who turned on push notifications on this browser
    email = f"push-{uuid.uuid4().hex[:8]}@example.com"
    added = aws_stack.add_user(email, f"ws-push-{uuid.uuid4().hex[:8]}", credits=3)
    assert added.password
    keys, endpoint = BrowserKeys(), push_service.endpoint()
    page = context.new_page()
    page.add_init_script(STAND_IN_PUSH_MANAGER % json.dumps(keys.subscription(endpoint)))
    _sign_in(page, email, added.password)
    page.get_by_test_id("notification-settings-toggle").click()
    expect(page.get_by_test_id("push-status")).to_have_text("Push notifications are off for this device.")
    page.get_by_test_id("push-toggle").click()
    expect(page.get_by_test_id("push-status")).to_have_text(
        "Push notifications are on for this device, even with the dashboard closed."
    )
    api = Api(api_server, aws_stack.token(email))
    assert [s["endpoint"] for s in api.get("/push/subscriptions").json()["subscriptions"]] == [endpoint]

    # WHEN the dashboard is closed and one of their jobs completes
    page.close()
    job = api.submit(
        make_clip(tmp_path / "clip.mp4", seconds=1, width=320, height=240).read_bytes(), "trip.mp4"
    )
    api.wait_for(job["id"], "completed")
    [pushed] = eventually(lambda: push_service.to(endpoint), what="the push")
    message = opened(pushed, keys, push_service, api.get("/push/public-key").json()["publicKey"])

    # ... and the push service hands the push to the browser (no dashboard tab is open)
    host = context.new_page()  # about:blank: only a place for the DevTools session
    _deliver(context, host, web_server, message)

    # THEN the service worker shows a system notification for that job
    [worker_scope] = context.service_workers
    listed = (
        "self.registration.getNotifications()"
        ".then(ns => ns.map(n => ({title: n.title, body: n.body, data: n.data})))"
    )
    shown = eventually(lambda: worker_scope.evaluate(listed), what="the notification")
    card_url = f"{web_server}/?workspace={job['workspaceId']}#job-{job['id']}"
    assert shown == [
        {
            "title": "Ready: trip.mp4",
            "body": "Your video is ready to download.",
            "data": {"url": card_url, "jobId": job["id"], "type": "job.completed"},
        }
    ]

    # WHEN it is clicked with no dashboard tab open THEN the dashboard opens on the card. (A
    # click made here has no user activation, which openWindow requires: the call is recorded.)
    opened_at = worker_scope.evaluate(
        """async () => {
          const calls = [];
          self.clients.openWindow = async (url) => { calls.push(url); return null; };
          const [n] = await self.registration.getNotifications();
          const click = new NotificationEvent('notificationclick', {notification: n});
          let done; click.waitUntil = (p) => { done = p; };
          self.dispatchEvent(click);
          await done;
          return calls;
        }"""
    )
    assert opened_at == [card_url]

    # WHEN a dashboard tab is open elsewhere and the next notification is clicked
    tab = context.new_page()
    _sign_in(tab, email, added.password)
    _deliver(context, host, web_server, message)
    eventually(
        lambda: worker_scope.evaluate("self.registration.getNotifications().then(ns => ns.length)"), what="it"
    )
    worker_scope.evaluate(
        """async () => {
          const [n] = await self.registration.getNotifications();
          self.dispatchEvent(new NotificationEvent('notificationclick', {notification: n}));
        }"""
    )

    # THEN that tab shows the job's card, brought into view, and the notification is gone
    card = tab.locator(f'[data-testid="job-card"][data-job-id="{job["id"]}"]')
    expect(card).to_have_class("job-card job-card-linked", timeout=15_000)
    expect(card).to_be_in_viewport()
    assert worker_scope.evaluate("self.registration.getNotifications().then(ns => ns.length)") == 0
