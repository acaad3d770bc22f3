"""Buying credits in the dashboard (headless Chromium) against the real local stack: the API, the
Stripe stand-in's pay page and its signed webhook, DynamoDB Local, the worker."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devstack.stripe_standin import StripeStandIn
from tests.e2e.test_dashboard import (
    INSUFFICIENT_CREDITS,
    RETRY_CONFIRM,
    Person,
    accept_next_dialog,
    card,
    expect_balance,
    failed_jobs,
    new_person,  # noqa: F401 (a fixture)
    not_a_video,  # noqa: F401 (a fixture)
    sign_in,
)
from tests.support.stack import AwsStack, Workers

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def sign_in_owing(page: Page, email: str, password: str) -> None:
    """Sign in where the balance may be below 0 (test_dashboard's sign_in waits for a count >= 0)."""
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-email")).to_have_text(email)


@pytest.fixture
def stripe(aws_stack: AwsStack) -> Iterator[StripeStandIn]:
    yield aws_stack.stripe
    aws_stack.stripe.release_webhooks()  # never leave webhooks held for the next test


def test_from_insufficient_credits_buy_a_pack_come_back_to_the_new_balance_and_retry(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    worker: Workers,
    not_a_video: bytes,  # noqa: F811
    stripe: StripeStandIn,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=1)
    (job,) = failed_jobs(person, not_a_video, "needs-credits.mp4")  # the start spent the only credit
    sign_in(page, person)
    expect_balance(page, 0)
    expect(page.get_by_test_id("buy-credits")).to_be_visible()  # beside the badge too

    # GIVEN the seed's insufficient-credits message on the failed job, with a way to buy
    job_card = card(page, job["id"])
    seen: list[str] = []
    accept_next_dialog(page, seen)
    job_card.get_by_test_id("retry-button").click()
    assert seen == [RETRY_CONFIRM]
    expect(job_card.get_by_test_id("job-action-error")).to_have_text(INSUFFICIENT_CREDITS)
    buy = job_card.get_by_test_id("job-buy-credits")
    expect(buy).to_have_text("Buy credits")
    screenshot(page, "insufficient-credits-buy")

    # WHEN the packs open, with their prices, and the small one is bought on the pay page
    buy.click()
    dialog = page.get_by_test_id("buy-dialog")
    expect(dialog).to_be_visible()
    packs = dialog.get_by_test_id("pack")
    expect(packs).to_have_count(3)
    expect(packs.nth(0)).to_contain_text("10 credits")
    expect(packs.nth(0).get_by_test_id("pack-price")).to_have_text("$5.00")
    expect(packs.nth(2)).to_contain_text("200 credits")
    expect(packs.nth(2).get_by_test_id("pack-price")).to_have_text("$60.00")
    screenshot(page, "buy-credits-dialog")
    stripe.hold_webhooks()  # the webhook lands only when the test says so
    dialog.locator('[data-pack="small"] [data-testid="buy-pack"]').click()
    page.wait_for_url(re.compile(rf"^{re.escape(stripe.url)}/pay/cs_"))
    expect(page.get_by_test_id("pack")).to_have_text("10 credits")
    expect(page.get_by_test_id("price")).to_have_text("5.00 USD")
    page.get_by_role("button", name="Pay").click()

    # THEN back on the dashboard, the page waits for the webhook, then shows the new balance
    page.wait_for_url(re.compile(rf"/\?workspace={person.workspace_id}"))
    status = page.get_by_test_id("purchase-status")
    expect(status).to_have_attribute("data-state", "paid")
    expect(status).to_have_text("Payment received. Adding your credits…")
    expect_balance(page, 0)
    assert "session_id" not in page.url  # a reload asks nothing again
    [delivered] = stripe.release_webhooks()
    assert delivered.status == 200
    expect(status).to_have_text("10 credits added. Your balance is 10 credits.")
    expect_balance(page, 10)
    assert person.api.credits() == 10
    screenshot(page, "purchase-completed")

    # AND the purchase is in the credit history
    page.get_by_test_id("credit-history-toggle").click()
    newest = page.get_by_test_id("ledger-entry").first
    expect(newest).to_have_attribute("data-reason", "purchase")
    expect(newest).to_contain_text("+10")
    expect(newest).to_contain_text("Bought 10 credits")

    # AND the failed job can be retried now
    accept_next_dialog(page, seen)
    job_card.get_by_test_id("retry-button").click()
    expect(job_card.get_by_test_id("status-badge")).not_to_have_text("failed")
    expect(job_card.get_by_test_id("job-action-error")).to_have_count(0)
    expect_balance(page, 9)
    assert person.api.credits() == 9
    expect(page.get_by_test_id("ledger-entry").first).to_have_attribute("data-reason", "retry")


def test_a_cancelled_checkout_comes_back_and_changes_nothing(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    stripe: StripeStandIn,
) -> None:
    person = new_person(credits=2)
    sign_in(page, person)
    page.get_by_test_id("buy-credits").click()
    page.locator('[data-pack="medium"] [data-testid="buy-pack"]').click()
    page.wait_for_url(re.compile(rf"^{re.escape(stripe.url)}/pay/cs_"))
    page.get_by_role("link", name="Cancel").click()

    expect(page.get_by_test_id("purchase-status")).to_have_text(
        "The purchase was cancelled. Nothing was charged."
    )
    expect_balance(page, 2)
    assert person.api.credits() == 2


def test_a_refunded_purchase_shows_what_is_owed_and_members_have_no_buy_button(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    aws_stack: AwsStack,
    stripe: StripeStandIn,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=0)
    r = person.api.post("/credits/checkout", {"pack": "small"})
    assert r.status_code == 200, r.text
    session_id = r.json()["sessionId"]
    assert stripe.pay(session_id).status == 200
    person.api.submit(b"bytes: a start only checks the upload", "spent.mp4")  # 1 of the 10 spent
    assert stripe.refund(session_id).status == 200
    assert person.api.credits() == -1

    sign_in_owing(page, person.email, person.password)
    credits = page.get_by_test_id("credits")
    expect(credits).to_have_text("Owes 1 credit")
    expect(credits).to_have_attribute("data-credits", "-1")
    expect(page.get_by_test_id("credits-owed")).to_contain_text("This workspace owes 1 credit")
    expect(page.get_by_test_id("buy-credits")).to_be_visible()
    page.get_by_test_id("credit-history-toggle").click()
    expect(page.get_by_test_id("ledger-entry").first).to_have_attribute("data-reason", "purchase_reversal")
    expect(page.get_by_test_id("ledger-entry").first).to_contain_text("-10")
    screenshot(page, "credits-owed")

    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    added = aws_stack.add_user(email, person.workspace_id, role="member")
    page.get_by_role("button", name="Sign out").click()
    sign_in_owing(page, email, added.password)
    expect(page.get_by_test_id("credits")).to_have_text("Owes 1 credit")
    expect(page.get_by_test_id("buy-credits")).to_be_hidden()  # only owners buy
