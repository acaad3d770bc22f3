"""The dashboard (issue 4) in headless Chromium against the real local stack.

Every test has its own user and workspace. Jobs that must fail fail for real: their bytes are
not a video, so the worker's ffprobe refuses them ("The file is not a readable video"). To make
a failed job succeed on retry, the same R2 key is overwritten with a real clip first.
Balances are checked through the API as well as on screen.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Dialog, Locator, Page, Request, Route, expect

from chalicelib.domain import RetryPricing, utcnow
from chalicelib.lifecycle import transitions
from tests.support.api import Api
from tests.support.media import make_clip, make_corrupt_file, probe_streams
from tests.support.stack import AwsStack, Workers

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

RETRY_CONFIRM = "This will use 1 credit. Are you sure you want to retry this job?"
INSUFFICIENT_CREDITS = "Insufficient credits. Please purchase more credits to retry."
SESSION_EXPIRED = "Your session has expired. Please sign in again."
NOT_A_VIDEO = "The file is not a readable video"
PROCESSING = 90_000  # ms: a worker transcoding a short clip on a slow machine


@dataclass
class Person:
    email: str
    password: str
    workspace_id: str
    workspace_name: str
    api: Api


@pytest.fixture
def new_person(aws_stack: AwsStack, api_server: str) -> Callable[..., Person]:
    """A fresh user owning a fresh workspace with `credits` credits."""

    def make(credits: int = 10) -> Person:
        tag = uuid.uuid4().hex[:10]
        email, workspace_id, name = f"dash-{tag}@example.com", f"ws-dash-{tag}", f"Studio {tag}"
        added = aws_stack.add_user(email, workspace_id, credits=credits, workspace_name=name)
        assert added.password
        return Person(email, added.password, workspace_id, name, Api(api_server, aws_stack.token(email)))

    return make


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "holiday.mp4", seconds=2, width=320, height=240)


@pytest.fixture(scope="module")
def not_a_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_corrupt_file(tmp_path_factory.mktemp("media") / "broken.mp4", size=16 * 1024).read_bytes()


# --- helpers -----------------------------------------------------------------------------------
def _b64url(claims: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def sign_in(page: Page, person: Person) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-email")).to_have_text(person.email)
    expect(page.get_by_test_id("credits")).to_have_attribute("data-credits", re.compile(r"^\d+$"))


def card(page: Page, job_id: str) -> Locator:
    return page.locator(f'[data-testid="job-card"][data-job-id="{job_id}"]')


def expect_balance(page: Page, credits: int) -> None:
    """The header's balance, as a number and as words ("1 credit", "3 credits")."""
    shown = page.get_by_test_id("credits")
    expect(shown).to_have_attribute("data-credits", str(credits))
    expect(shown).to_have_text(f"{credits} credit" + ("" if credits == 1 else "s"))


def failed_jobs(person: Person, data: bytes, *filenames: str) -> list[dict[str, Any]]:
    """Submit non-videos and wait until the worker has failed each of them."""
    submitted = [person.api.submit(data, name) for name in filenames]
    done = [person.api.wait_for(job["id"], "failed", "completed") for job in submitted]
    for job in done:
        assert job["status"] == "failed" and job["error"] == NOT_A_VIDEO, job
    return done


def accept_next_dialog(page: Page, seen: list[str]) -> None:
    def handle(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.once("dialog", handle)


def hold_requests(page: Page, pattern: re.Pattern[str]) -> list[Route]:
    """Hold matching POSTs (the page shows its in-flight state) until the test continues them."""
    held: list[Route] = []

    def handle(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(pattern, handle)
    return held


def wait_until_held(page: Page, held: list[Route]) -> Route:
    # Route handlers run while Playwright waits; a short bounded wait lets the handler see it.
    for _ in range(200):
        if held:
            return held[0]
        page.wait_for_timeout(50)
    raise AssertionError("the request was never sent")


def retry_posts(page: Page, job_id: str | None = None) -> list[Request]:
    path = f"/jobs/{job_id}/retry" if job_id else "/jobs/retry"
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" and r.url.endswith(path) else None)
    return posts


# --- sign in, upload, complete, download ------------------------------------------------------
def test_sign_in_upload_a_clip_watch_it_complete_and_download_it(
    page: Page,
    new_person: Callable[..., Person],
    worker: Workers,
    clip: Path,
    tmp_path: Path,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=5)
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).hostname or ""))
    sign_in(page, person)
    expect(page.get_by_test_id("workspace-name")).to_have_text(person.workspace_name)
    expect_balance(page, 5)
    expect(page.get_by_test_id("jobs-empty")).to_be_visible()

    page.get_by_label("Choose a video").set_input_files(clip)

    expect(page.get_by_test_id("upload-status")).to_have_text("holiday.mp4 is uploaded and queued.")
    expect(page.get_by_test_id("upload-progress-text")).to_have_text(
        re.compile(r"^100% · [\d.]+ MB of [\d.]+ MB$")
    )
    job_card = page.get_by_test_id("job-card").filter(has_text="holiday.mp4")
    expect(job_card).to_have_count(1)
    # The start charged one credit, and the header shows it without a reload.
    expect_balance(page, 4)
    badge = job_card.get_by_test_id("status-badge")
    expect(badge).to_have_text("completed", timeout=PROCESSING)
    expect(badge).to_have_class(re.compile(r"\bbg-green-100\b.*\btext-green-800\b"))
    expect(job_card.get_by_test_id("retry-button")).to_be_hidden()
    # Nothing is queued or processing any more: the list stops polling.
    expect(page.get_by_test_id("jobs")).to_have_attribute("data-polling", "false")
    assert person.api.credits() == 4
    screenshot(page, "job-list")

    with page.expect_download() as download_info:
        job_card.get_by_test_id("download-button").click()
    saved = tmp_path / "downloaded.mp4"
    download_info.value.save_as(saved)
    streams = probe_streams(saved)
    assert any(s["codec_type"] == "video" and s["codec_name"] == "h264" for s in streams), streams
    assert saved.read_bytes()[4:8] == b"ftyp"
    # Page, API, Cognito and storage are all local: nothing came from a CDN or a third party.
    assert hosts == {"127.0.0.1"}, hosts


def test_sign_out_and_an_expired_session_return_to_sign_in(
    page: Page, new_person: Callable[..., Person], screenshot: Callable[..., Path]
) -> None:
    person = new_person(credits=1)
    sign_in(page, person)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_have_text("You have signed out.")
    assert page.evaluate("sessionStorage.length") == 0

    sign_in(page, person)
    # A token the API refuses (forged, or revoked) but the page thinks is still valid.
    forged = ".".join(
        [_b64url({"alg": "none"}), _b64url({"email": person.email, "exp": int(time.time()) + 3600}), "forged"]
    )
    page.evaluate("token => sessionStorage.setItem('vidproc.idToken', token)", forged)
    page.reload()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_have_text(SESSION_EXPIRED)
    expect(page.get_by_test_id("dashboard")).to_be_hidden()
    screenshot(page, "session-expired")


def test_upload_refusals_show_the_api_message(
    page: Page, new_person: Callable[..., Person], clip: Path, tmp_path: Path
) -> None:
    person = new_person(credits=0)
    sign_in(page, person)
    upload, error = page.get_by_label("Choose a video"), page.get_by_test_id("upload-error")

    # Not a video, dropped on the drop zone: the API's 400 message.
    page.get_by_test_id("dropzone").evaluate(
        """zone => {
            const files = new DataTransfer();
            files.items.add(new File(['a shopping list, not a video'], 'notes.txt', {type: 'text/plain'}));
            for (const type of ['dragenter', 'dragover', 'drop']) {
                const init = {bubbles: true, cancelable: true, dataTransfer: files};
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }"""
    )
    expect(error).to_have_text(re.compile(r"^notes\.txt: Only video files can be processed"))

    # Too big: the API's 413 message (a sparse file: nothing is read, only its size is declared).
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as f:
        f.truncate(50 * 1024**3 + 1)
    upload.set_input_files(huge)
    expect(error).to_have_text(re.compile(r"^huge\.mp4: The file is too large"))

    # No credits: the file is uploaded, the start is refused with the API's 403 message.
    upload.set_input_files(clip)
    expect(error).to_have_text("holiday.mp4: Insufficient credits. Please purchase more credits.")
    waiting = page.get_by_test_id("job-card").filter(has_text="holiday.mp4")
    expect(waiting.get_by_test_id("status-badge")).to_have_text("uploading")
    expect_balance(page, 0)
    assert person.api.credits() == 0


def test_a_member_of_several_workspaces_picks_one_in_the_header(
    page: Page, new_person: Callable[..., Person], aws_stack: AwsStack, clip: Path
) -> None:
    person = new_person(credits=7)
    person.api.create(clip.read_bytes(), "in-main.mp4")  # a job in the first workspace only
    other_id = f"ws-other-{uuid.uuid4().hex[:10]}"
    aws_stack.add_user(
        person.email,
        other_id,
        credits=2,
        role="member",
        password=person.password,
        workspace_name="Other studio",
    )
    sign_in(page, person)

    picker = page.get_by_label("Workspace")
    expect(picker.locator("option")).to_have_count(2)
    picker.select_option(label=person.workspace_name)
    expect_balance(page, 7)
    expect(page.get_by_test_id("job-card").filter(has_text="in-main.mp4")).to_have_count(1)

    picker.select_option(label="Other studio")
    expect_balance(page, 2)
    expect(page.get_by_test_id("jobs-empty")).to_be_visible()
    expect(page.get_by_test_id("job-card")).to_have_count(0)


# --- a failed job ---------------------------------------------------------------------------------
def test_a_failed_job_shows_its_error_and_a_retry_button(
    page: Page,
    new_person: Callable[..., Person],
    worker: Workers,
    not_a_video: bytes,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=3)
    (job,) = failed_jobs(person, not_a_video, "broken.mp4")
    sign_in(page, person)

    job_card = card(page, job["id"])
    badge = job_card.get_by_test_id("status-badge")
    expect(badge).to_have_text("failed")
    expect(badge).to_have_class(re.compile(r"\bbg-red-100\b.*\btext-red-800\b"))
    expect(badge).to_have_css("background-color", "rgb(254, 226, 226)")
    error = job_card.locator("p.text-red-600")
    expect(error).to_have_text(f"Error: {NOT_A_VIDEO}")
    expect(error).to_have_css("color", "rgb(220, 38, 38)")
    retry = job_card.get_by_test_id("retry-button")
    expect(retry).to_have_text("Retry")
    expect(retry).to_be_enabled()
    expect(retry).to_have_class(re.compile(r"\bbg-orange-600\b.*\bhover:bg-orange-700\b"))
    expect(retry).to_have_css("background-color", "rgb(234, 88, 12)")
    expect(job_card.get_by_test_id("download-button")).to_be_hidden()
    expect(page.get_by_test_id("retry-all-button")).to_have_text("Retry all failed (1)")

    # The seed's layout: the error sits below the timestamp; Retry beside (under) the badge.
    time_box = job_card.get_by_test_id("job-timestamp").bounding_box()
    error_box, badge_box, retry_box = error.bounding_box(), badge.bounding_box(), retry.bounding_box()
    assert time_box and error_box and badge_box and retry_box
    assert error_box["y"] > time_box["y"]
    assert retry_box["x"] > error_box["x"] and retry_box["y"] > badge_box["y"]

    retry.hover()
    expect(retry).to_have_css("background-color", "rgb(194, 65, 12)")
    page.mouse.move(0, 0)

    history = job_card.get_by_test_id("history-toggle")
    expect(history).to_have_attribute("aria-expanded", "false")
    history.click()
    expect(history).to_have_attribute("aria-expanded", "true")
    attempt = job_card.get_by_test_id("attempt")
    expect(attempt).to_have_count(1)
    expect(attempt).to_contain_text("Attempt 1 · first run · failed")
    expect(attempt).to_contain_text(NOT_A_VIDEO)
    screenshot(page, "failed-card")

    page.set_viewport_size({"width": 375, "height": 800})
    expect(retry).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "mobile-375")


def test_cancel_in_the_confirm_changes_nothing(
    page: Page, new_person: Callable[..., Person], worker: Workers, not_a_video: bytes
) -> None:
    person = new_person(credits=3)
    (job,) = failed_jobs(person, not_a_video, "keep-me.mp4")
    sign_in(page, person)
    expect_balance(page, 2)
    posts = retry_posts(page, job["id"])
    seen: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    job_card = card(page, job["id"])
    job_card.get_by_test_id("retry-button").click()

    assert seen == [RETRY_CONFIRM]
    expect(job_card.get_by_test_id("retry-button")).to_have_text("Retry")
    expect(job_card.get_by_test_id("retry-button")).to_be_enabled()
    expect(job_card.get_by_test_id("status-badge")).to_have_text("failed")
    expect_balance(page, 2)
    assert posts == []
    assert person.api.credits() == 2
    after = person.api.job(job["id"])
    assert (after["status"], after["retryCount"], after["attempt"]) == ("failed", 0, 1)


def test_ok_shows_retrying_then_queued_then_completed_with_the_balance_one_lower(
    page: Page,
    new_person: Callable[..., Person],
    worker: Workers,
    aws_stack: AwsStack,
    clip: Path,
    tmp_path: Path,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=3)
    good = clip.read_bytes()
    bad = make_corrupt_file(tmp_path / "bad.mp4", size=len(good)).read_bytes()[: len(good)]
    (job,) = failed_jobs(person, bad, "comeback.mp4")
    # The input is fixed behind the job's back (same key, same size): the retry can succeed.
    aws_stack.client("s3").put_object(
        Bucket=aws_stack.env["R2_BUCKET"], Key=job["inputFileKey"], Body=good, ContentType="video/mp4"
    )
    before = person.api.credits()
    worker.stop()  # so the retried job stays "queued" until the test lets it run

    sign_in(page, person)
    job_card = card(page, job["id"])
    retry = job_card.get_by_test_id("retry-button")
    expect(retry).to_have_text("Retry")
    held = hold_requests(page, re.compile(rf"/jobs/{job['id']}/retry$"))
    seen: list[str] = []
    accept_next_dialog(page, seen)
    screenshot(page, "confirm-about-to-open")  # a native dialog cannot be captured while it is open
    retry.click()

    assert seen == [RETRY_CONFIRM]
    expect(retry).to_have_text("Retrying...")
    expect(retry).to_be_disabled()
    expect(retry).to_have_class(re.compile(r"\bopacity-50\b"))
    expect(retry).to_have_class(re.compile(r"\bcursor-not-allowed\b"))
    expect(retry).to_have_class(re.compile(r"\bbg-orange-600\b"))
    screenshot(page, "retrying")
    wait_until_held(page, held).continue_()

    badge = job_card.get_by_test_id("status-badge")
    expect(badge).to_have_text("queued")
    expect(badge).to_have_class(re.compile(r"\bbg-yellow-100\b.*\btext-yellow-800\b"))
    expect(retry).to_be_hidden()
    expect(job_card.locator("p.text-red-600")).to_be_hidden()  # the error is cleared
    expect_balance(page, before - 1)
    assert person.api.credits() == before - 1

    worker.start()
    expect(badge).to_have_text("completed", timeout=PROCESSING)
    expect(job_card.get_by_test_id("download-button")).to_be_visible()
    expect(job_card.get_by_test_id("retry-count")).to_have_text("Retried 1×")
    assert person.api.credits() == before - 1
    expect_balance(page, before - 1)
    done = person.api.job(job["id"])
    assert (done["status"], done["retryCount"], done["error"]) == ("completed", 1, None)


def test_at_zero_credits_retry_shows_insufficient_credits_and_changes_nothing(
    page: Page,
    new_person: Callable[..., Person],
    worker: Workers,
    not_a_video: bytes,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=1)
    (job,) = failed_jobs(person, not_a_video, "no-credits.mp4")  # the start spent the only credit
    assert person.api.credits() == 0
    sign_in(page, person)
    expect_balance(page, 0)

    seen: list[str] = []
    accept_next_dialog(page, seen)
    job_card = card(page, job["id"])
    job_card.get_by_test_id("retry-button").click()

    assert seen == [RETRY_CONFIRM]
    message = job_card.get_by_test_id("job-action-error")
    expect(message).to_have_text(INSUFFICIENT_CREDITS)
    expect(message).to_have_class(re.compile(r"\btext-red-600\b"))
    expect(job_card.get_by_test_id("retry-button")).to_have_text("Retry")
    expect(job_card.get_by_test_id("retry-button")).to_be_enabled()
    expect(job_card.get_by_test_id("status-badge")).to_have_text("failed")
    expect(job_card.locator("p.text-red-600").first).to_have_text(f"Error: {NOT_A_VIDEO}")
    expect_balance(page, 0)
    expect(page.get_by_test_id("retry-all-button")).to_have_text("Retry all failed (1)")
    screenshot(page, "insufficient-credits")
    assert person.api.credits() == 0
    after = person.api.job(job["id"])
    assert (after["status"], after["retryCount"]) == ("failed", 0)


def test_retry_all_failed_retries_exactly_the_jobs_on_screen(
    page: Page,
    new_person: Callable[..., Person],
    worker: Workers,
    not_a_video: bytes,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=10)
    shown = failed_jobs(person, not_a_video, "one.mp4", "two.mp4", "three.mp4")
    sign_in(page, person)
    button = page.get_by_test_id("retry-all-button")
    expect(button).to_have_text("Retry all failed (3)")
    expect(page.get_by_test_id("jobs")).to_have_attribute("data-polling", "false")
    # A fourth job fails while the page is open but not polling: it is not on screen.
    (unseen,) = failed_jobs(person, not_a_video, "four.mp4")
    assert person.api.credits() == 6
    expect(page.get_by_test_id("job-card")).to_have_count(3)
    worker.stop()  # the retried jobs stay queued, so what the page shows is stable

    seen: list[str] = []
    accept_next_dialog(page, seen)
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/jobs/retry")) as sent:
        button.click()
    assert seen == [
        "This will use 3 credits to retry 3 failed jobs. Your balance will be 3 credits. Continue?"
    ]
    body = sent.value.post_data_json
    assert body and sorted(body["jobIds"]) == sorted(job["id"] for job in shown)
    assert sent.value.headers.get("idempotency-key")

    results = page.get_by_test_id("batch-result")
    expect(results).to_have_count(3)
    for job in shown:
        outcome = page.locator(f'[data-testid="batch-result"][data-job-id="{job["id"]}"]')
        expect(outcome).to_have_attribute("data-success", "true")
        expect(outcome).to_have_text(f"{job['originalFilename']}: queued again")
        expect(card(page, job["id"]).get_by_test_id("status-badge")).to_have_text("queued")
    expect(page.get_by_test_id("batch-summary")).to_have_text("3 of 3 jobs queued again.")
    expect_balance(page, 3)
    # After the batch the list reloads: the fourth job shows up, still failed, on its own.
    expect(card(page, unseen["id"]).get_by_test_id("status-badge")).to_have_text("failed")
    expect(button).to_have_text("Retry all failed (1)")
    screenshot(page, "batch-results")

    assert person.api.credits() == 3
    for job in shown:
        assert person.api.job(job["id"])["retryCount"] == 1
    assert person.api.job(unseen["id"])["retryCount"] == 0


def test_a_double_click_on_retry_charges_once(
    page: Page, new_person: Callable[..., Person], worker: Workers, not_a_video: bytes
) -> None:
    person = new_person(credits=4)
    first, second = failed_jobs(person, not_a_video, "double.mp4", "lost-answer.mp4")
    worker.stop()
    assert person.api.credits() == 2
    sign_in(page, person)
    page.on("dialog", lambda dialog: dialog.accept())

    # 1. The answer is lost after the server charged; the person clicks Retry again (nothing is
    #    queued on screen, so the page is not polling and still shows the job as failed).
    posts = retry_posts(page, second["id"])
    lost: list[int] = []

    def lose_the_answer(route: Route) -> None:
        if route.request.method != "POST" or lost:
            route.continue_()
            return
        lost.append(route.fetch().status)  # the server does the retry...
        route.abort("connectionreset")  # ...and the browser never hears back

    page.route(re.compile(rf"/jobs/{second['id']}/retry$"), lose_the_answer)
    second_card = card(page, second["id"])
    second_card.get_by_test_id("retry-button").click()
    expect(second_card.get_by_test_id("job-action-error")).to_contain_text("Network error")
    assert lost == [200]
    assert person.api.credits() == 1
    expect(second_card.get_by_test_id("retry-button")).to_have_text("Retry")

    second_card.get_by_test_id("retry-button").click()
    expect(second_card.get_by_test_id("status-badge")).to_have_text("queued")
    expect(second_card.get_by_test_id("job-action-error")).to_be_hidden()
    expect_balance(page, 1)
    assert len(posts) == 2
    assert posts[0].headers.get("idempotency-key") == posts[1].headers.get("idempotency-key")
    assert person.api.credits() == 1
    assert person.api.job(second["id"])["retryCount"] == 1

    # 2. A double click: one charge.
    posts = retry_posts(page, first["id"])
    first_card = card(page, first["id"])
    first_card.get_by_test_id("retry-button").dblclick()
    expect(first_card.get_by_test_id("status-badge")).to_have_text("queued")
    expect_balance(page, 0)
    assert person.api.credits() == 0
    assert person.api.job(first["id"])["retryCount"] == 1
    assert len({post.headers.get("idempotency-key") for post in posts}) == 1


# --- issue 7: automatic retries, suggestions, the price of a retry -------------------------------
class CrashesOnce:
    """The real transcoder, except that its first run dies as if ffmpeg were killed (a platform fault)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.crashed = inner, False

    def transcode(self, *args: Any, **kwargs: Any) -> Any:
        from chalicelib.errors import FFmpegCrashedError

        if not self.crashed:
            self.crashed = True
            raise FFmpegCrashedError(detail="ffmpeg killed by signal 9")
        return self.inner.transcode(*args, **kwargs)


def test_an_auto_retried_job_counts_down_then_completes_and_a_corrupt_one_says_why_retry_wont_help(
    page: Page,
    new_person: Callable[..., Person],
    worker: Workers,
    clip: Path,
    not_a_video: bytes,
    monkeypatch: pytest.MonkeyPatch,
    screenshot: Callable[..., Path],
) -> None:
    from chalicelib import bootstrap
    from chalicelib.processing import autoretry
    from chalicelib.processing.context import Services

    person = new_person(credits=5)
    (broken,) = failed_jobs(person, not_a_video, "broken.mp4")
    real = bootstrap.services()
    # Full jitter may pick ~0 s; the wait is pinned so the page has time to count it down.
    monkeypatch.setattr(autoretry, "backoff_seconds", lambda svc, tries: 10)
    bootstrap.override(
        Services(real.settings, real.repo, real.store, real.queue, CrashesOnce(real.transcoder))
    )
    try:
        job = person.api.submit(clip.read_bytes(), "flaky.mp4")
        sign_in(page, person)  # the page polls while a job is queued or processing
        flaky = card(page, job["id"])
        note = flaky.get_by_test_id("auto-retry")
        expect(note).to_have_text(re.compile(r"^Retrying automatically in ([1-9]|10) s \(try 2 of 3\)$"))
        expect(flaky.get_by_test_id("status-badge")).to_have_text("queued")
        expect(flaky.get_by_test_id("retry-button")).to_be_hidden()
        screenshot(page, "auto-retry-countdown")
        expect(flaky.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
        expect(note).to_be_hidden()
    finally:
        bootstrap.override(None)
    flaky.get_by_test_id("history-toggle").click()
    attempts = flaky.get_by_test_id("attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("Attempt 1 · first run · failed")
    expect(attempts.nth(0)).to_contain_text("FFmpeg stopped unexpectedly")
    expect(attempts.nth(1)).to_contain_text("Attempt 2 · automatic retry · succeeded · 0 credits")
    assert person.api.credits() == 3  # two jobs, one credit each: the automatic try was free

    corrupt = card(page, broken["id"])
    expect(corrupt.get_by_test_id("job-suggestion")).to_have_text(
        "Upload a different file: this one is not a readable video."
    )
    expect(corrupt.get_by_test_id("retry-note")).to_have_text(
        "A retry is unlikely to help: the problem is with the file itself."
    )
    expect(corrupt.get_by_test_id("retry-button")).to_be_visible()  # the Retry button stays
    expect(flaky.get_by_test_id("retry-note")).to_be_hidden()
    screenshot(page, "not-retryable-note")
    seen: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    corrupt.get_by_test_id("retry-button").click()
    expect(corrupt.get_by_test_id("retry-button")).to_have_text("Retry")
    assert seen == [RETRY_CONFIRM]  # it costs 1 credit: exactly the seed's sentence


def test_a_free_first_retry_says_so_in_the_confirm_and_costs_nothing(
    page: Page, new_person: Callable[..., Person], worker: Workers, not_a_video: bytes
) -> None:
    from tests.support.api import repository

    person = new_person(credits=3)
    (job,) = failed_jobs(person, not_a_video, "free-once.mp4")
    repository().commit(transitions.set_pricing(person.workspace_id, RetryPricing.FIRST_FREE, utcnow()))
    assert person.api.job(job["id"])["retryPrice"] == 0
    sign_in(page, person)
    expect_balance(page, 2)
    seen: list[str] = []
    accept_next_dialog(page, seen)
    card(page, job["id"]).get_by_test_id("retry-button").click()
    expect(card(page, job["id"]).get_by_test_id("status-badge")).not_to_have_text(
        "failed", timeout=PROCESSING
    )
    assert seen == ["This retry is free. Are you sure you want to retry this job?"]
    expect_balance(page, 2)
    assert person.api.credits() == 2
    detail = person.api.job(job["id"])
    assert detail["attempts"][1]["creditsCharged"] == 0 and detail["attempts"][1]["trigger"] == "manual"


# --- cancel ------------------------------------------------------------------------------------
CANCEL_CONFIRM = "Cancel this job? Its credit will be refunded."


def test_cancel_on_a_queued_card_refunds_the_credit_and_shows_cancelled(
    page: Page, new_person: Callable[..., Person], worker: Workers, clip: Path
) -> None:
    worker.stop()  # the job stays queued until the test cancels it
    person = new_person(credits=3)
    job = person.api.submit(clip.read_bytes(), "not-this-one.mp4")
    sign_in(page, person)
    expect_balance(page, 2)
    job_card = card(page, job["id"])
    cancel = job_card.get_by_test_id("cancel-button")
    expect(cancel).to_have_text("Cancel")
    expect(job_card.get_by_test_id("download-button")).to_be_hidden()

    seen: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    cancel.click()
    assert seen == [CANCEL_CONFIRM]
    expect(job_card.get_by_test_id("status-badge")).to_have_text("queued")  # dismissed: nothing
    assert person.api.credits() == 2

    accept_next_dialog(page, seen)
    cancel.click()
    assert seen == [CANCEL_CONFIRM, CANCEL_CONFIRM]
    expect(job_card.get_by_test_id("status-badge")).to_have_text("cancelled")
    expect(job_card.get_by_test_id("job-cancelled")).to_have_text("Cancelled")
    expect(cancel).to_be_hidden()
    expect(job_card.get_by_test_id("retry-button")).to_be_hidden()
    expect_balance(page, 3)
    assert person.api.credits() == 3 and person.api.job(job["id"])["status"] == "cancelled"
