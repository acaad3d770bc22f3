"""The dashboard's Notifications panel in headless Chromium against the real local stack:
email settings, browser notifications after an opt-in, and an owner's webhooks."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devstack.notifier import Notifier
from tests.support.api import Api
from tests.support.media import make_clip
from tests.support.notify import Receiver, signed_by
from tests.support.stack import AwsStack, Workers

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PROCESSING = 90_000

# The Notification API, recorded: what the page asks and shows (a headless browser has no
# notification centre to look at). Permission starts as "default", as in a fresh profile.
RECORD_NOTIFICATIONS = """
window.__asked = 0;
window.__notes = [];
window.__permission = 'default';
window.Notification = class {
  constructor(title, options) { window.__notes.push({ title, body: options && options.body }); }
  static get permission() { return window.__permission; }
  static async requestPermission() { window.__asked += 1; window.__permission = 'granted'; return 'granted'; }
};
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "holiday.mp4", seconds=1, width=320, height=240)


def test_settings_panel_email_choices_browser_notifications_and_webhooks(
    page: Page, aws_stack: AwsStack, api_server: str, notifier: Notifier, worker: Workers, clip: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    email = f"notify-{tag}@example.com"
    added = aws_stack.add_user(email, f"ws-notify-{tag}", credits=5)
    api = Api(api_server, aws_stack.token(email))
    receiver = Receiver().start()
    try:
        page.add_init_script(RECORD_NOTIFICATIONS)
        page.goto("/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(added.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("user-email")).to_have_text(email)

        # Settings live in their own view, reached from the header; the main page is the upload
        # and the jobs. Defaults for an owner; no permission prompt before the person asks.
        page.get_by_test_id("settings-link").click()
        expect(page.get_by_test_id("settings-view")).to_be_visible()
        expect(page.get_by_test_id("main-view")).to_be_hidden()
        expect(page.get_by_test_id("retention-settings")).to_be_visible()
        page.get_by_test_id("notification-settings-toggle").click()
        for kind, checked in (
            ("job.completed", True),
            ("job.failed", True),
            ("job.retried", False),
            ("credits.low", True),
        ):
            box = page.get_by_test_id(f"email-event-{kind}")
            expect(box).to_be_checked() if checked else expect(box).not_to_be_checked()
        assert page.evaluate("window.__asked") == 0
        expect(page.get_by_test_id("browser-notify-status")).to_have_text("Browser notifications are off.")

        page.get_by_test_id("email-event-job.completed").uncheck()
        page.get_by_test_id("email-event-job.retried").check()
        page.get_by_test_id("email-settings-save").click()
        expect(page.get_by_test_id("email-settings-status")).to_have_text("Saved.")
        assert api.get("/notifications/settings").json()["emailEvents"] == [
            "credits.low",
            "job.failed",
            "job.retried",
        ]

        page.reload()  # the address keeps the view
        expect(page.get_by_test_id("settings-view")).to_be_visible()
        page.get_by_test_id("notification-settings-toggle").click()
        expect(page.get_by_test_id("email-event-job.completed")).not_to_be_checked()
        expect(page.get_by_test_id("email-event-job.retried")).to_be_checked()

        page.get_by_test_id("browser-notify-toggle").click()
        expect(page.get_by_test_id("browser-notify-status")).to_have_text("Browser notifications are on.")
        assert page.evaluate("window.__asked") == 1

        # Webhooks: a refused URL says why; a good one shows its secret once.
        page.get_by_test_id("webhook-url").fill("http://example.com/hook")
        page.get_by_test_id("webhook-add").click()
        expect(page.get_by_test_id("webhook-error")).to_contain_text("https")
        page.get_by_test_id("webhook-url").fill(receiver.url)
        page.get_by_test_id("webhook-add").click()
        secret = page.get_by_test_id("webhook-secret")
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        expect(page.get_by_test_id("webhook-item")).to_have_count(1)
        expect(page.get_by_test_id("webhook-item-url")).to_have_text(receiver.url)
        shown_secret = secret.inner_text()

        # A job completes: a system notification, and a signed webhook in the delivery log.
        page.get_by_test_id("settings-link").click()  # "Back to jobs"
        expect(page.get_by_test_id("main-view")).to_be_visible()
        page.get_by_label("Choose a video").set_input_files(clip)
        job_card = page.get_by_test_id("job-card").filter(has_text="holiday.mp4")
        expect(job_card.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
        page.wait_for_function("window.__notes.length > 0")
        assert page.evaluate("window.__notes")[0]["title"] == "Ready: holiday.mp4"
        for _ in range(100):
            if receiver.of_type("job.completed"):
                break
            page.wait_for_timeout(100)
        got = receiver.of_type("job.completed")
        assert len(got) == 1 and signed_by(shown_secret, got[0].headers, got[0].body)

        page.get_by_test_id("settings-link").click()
        page.get_by_test_id("webhook-deliveries").click()
        expect(page.get_by_test_id("delivery-status")).to_have_text("delivered")
        page.get_by_test_id("delivery-resend").click()
        for _ in range(100):
            if len(receiver.of_type("job.completed")) == 2:
                break
            page.wait_for_timeout(100)
        assert len(receiver.of_type("job.completed")) == 2

        # The link an email carries opens the workspace with that job's card in view.
        job_id = got[0].event["data"]["job"]["id"]
        page.goto(f"/?workspace=ws-notify-{tag}#job-{job_id}")
        linked = page.locator(f'[data-testid="job-card"][data-job-id="{job_id}"]')
        expect(linked).to_have_class(re.compile(r"\bjob-card-linked\b"))
        expect(linked).to_be_in_viewport()
    finally:
        receiver.stop()
