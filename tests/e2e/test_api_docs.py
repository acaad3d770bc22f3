"""The browsable API reference: Swagger UI (the pinned npm package, served by the dashboard, no
CDN) on the API's /openapi.json. Signed in on the dashboard, a person authorises with the token
and calls GET /me from the page."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, Request, expect

from tests.support.stack import AwsStack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_swagger_ui_authorises_with_the_token_and_calls_get_me(
    page: Page, aws_stack: AwsStack, api_server: str, web_server: str
) -> None:
    # GIVEN a person signed in on the dashboard
    email = f"docs-{uuid.uuid4().hex[:8]}@example.com"
    added = aws_stack.add_user(email, f"ws-docs-{uuid.uuid4().hex[:8]}", credits=3, workspace_name="Docs")
    assert added.password
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(added.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-email")).to_have_text(email)
    token = str(page.evaluate("sessionStorage.getItem('vidproc.idToken')"))
    outside: list[str] = []
    page.on("request", lambda r: _note_outside(r, outside, web_server, api_server))

    # WHEN they open the API reference from the header
    page.get_by_test_id("api-docs-link").click()
    expect(page).to_have_url(f"{web_server}/api-docs/")
    expect(page.get_by_test_id("api-docs-status")).to_have_text("Authorised with your dashboard session.")
    me = page.locator(".opblock-get").filter(has=page.locator('[data-path="/me"]'))
    expect(me).to_be_visible()

    # ... log out of Swagger UI's authorisation and authorise with the token by hand
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.locator("button", has_text="Logout").click()
    dialog.locator("input#auth-bearer-value").fill(token)
    dialog.locator("button", has_text="Authorize").click()
    expect(dialog.locator("h6", has_text="Authorized")).to_be_visible()
    dialog.locator("button", has_text="Close").click()

    # ... and call GET /me from the page
    me.locator(".opblock-summary").click()
    me.locator("button", has_text="Try it out").click()
    with page.expect_response(f"{api_server}/me") as answered:
        me.locator("button", has_text="Execute").click()

    # THEN the API answered them, with the bearer token, and the page shows it
    assert answered.value.status == 200
    assert answered.value.request.headers["authorization"] == f"Bearer {token}"
    result = me.locator(".live-responses-table")
    expect(result.locator("tbody .response-col_status")).to_have_text("200")
    expect(result.locator("tbody .response-col_description")).to_contain_text(email)
    assert outside == []  # Swagger UI came from this dashboard, not from a CDN


def _note_outside(request: Request, outside: list[str], *origins: str) -> None:
    if not request.url.startswith(origins) and not request.url.startswith(("data:", "blob:")):
        outside.append(request.url)
