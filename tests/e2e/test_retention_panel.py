"""The dashboard's Storage panel (frontend/retention.js) in headless Chromium against the real
local stack: an owner sees the default and changes it, a member only reads it."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.support.api import Api
from tests.support.stack import AwsStack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-email")).to_have_text(email)


def test_an_owner_changes_how_long_uploads_are_kept_and_a_member_reads_it(
    page: Page, aws_stack: AwsStack, api_server: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    owner, member, workspace = f"keep-{tag}@example.com", f"keep-member-{tag}@example.com", f"ws-keep-{tag}"
    added = aws_stack.add_user(owner, workspace)
    sign_in(page, owner, added.password)

    page.get_by_test_id("settings-link").click()  # the settings view holds the Storage panel
    summary = page.get_by_test_id("retention-summary")
    expect(summary).to_have_text(
        "Uploads are kept 30 days after their job completed or was cancelled (the default)."
    )
    page.get_by_test_id("retention-days").fill("-3")
    page.get_by_test_id("retention-save").click()
    expect(page.get_by_test_id("retention-status")).to_contain_text("from 0 to 3650")
    page.get_by_test_id("retention-days").fill("7")
    page.get_by_test_id("retention-save").click()
    expect(page.get_by_test_id("retention-status")).to_have_text("Saved.")
    expect(summary).to_have_text("Uploads are kept 7 days after their job completed or was cancelled.")
    assert Api(api_server, aws_stack.token(owner)).get("/retention").json()["keepOriginalsDays"] == 7

    invited = aws_stack.add_user(member, workspace, role="member")
    page.get_by_test_id("sign-out").click()
    sign_in(page, member, invited.password)
    page.get_by_test_id("settings-link").click()  # the settings view holds the Storage panel
    expect(page.get_by_test_id("retention-summary")).to_have_text(
        "Uploads are kept 7 days after their job completed or was cancelled."
    )
    expect(page.get_by_test_id("retention-form")).to_have_count(0)  # only owners change it
