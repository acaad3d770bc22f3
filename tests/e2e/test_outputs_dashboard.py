"""The output a person chooses and sees (issue 16), in Chromium against the real stack: the preset
select beside the drop zone, the poster and facts on the card, playback of MP4 and HLS (natively
and through hls.js) with thumbnails on the seek bar, retry with another preset, a new file for a
broken job, and the default output in the settings view."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.test_dashboard import (  # noqa: F401
    PROCESSING,
    Person,
    card,
    failed_jobs,
    new_person,
    retry_dialog,
    sign_in,
)
from tests.support.media import make_clip, make_corrupt_file
from tests.support.stack import AwsStack, Workers

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Chromium has played HLS natively since version 142; this hides it, as on a browser without it,
# so hls.js plays (served by the dashboard from npm).
NO_NATIVE_HLS = """
const canPlay = HTMLMediaElement.prototype.canPlayType;
HTMLMediaElement.prototype.canPlayType = function (type) {
  return /mpegurl/i.test(type) ? '' : canPlay.call(this, type);
};
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 7 s: two HLS segments; 10 frames a second keeps the encode cheap.
    return make_clip(
        tmp_path_factory.mktemp("media") / "garden.mp4", seconds=7, width=640, height=360, fps=10
    )


@pytest.fixture(scope="module")
def hd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("media") / "second-take.mp4", seconds=1, width=1280, height=720, fps=10
    )


PLAYER_STATE = """() => { const v = document.querySelector('[data-testid=player-video]');
    const d = document.querySelector('[data-testid=player]');
    return {time: v.currentTime, error: v.error && v.error.code, engine: d.dataset.engine,
            kind: d.dataset.kind, live: d.dataset.live, paused: v.paused, ready: v.readyState,
            status: document.querySelector('[data-testid=player-status]').textContent,
            shown: document.querySelector('[data-testid=player-error]').textContent}; }"""


def playing(page: Page, at_least: float = 1.0) -> dict[str, object]:
    """Wait until the player's video has played `at_least` seconds with no media error."""
    try:
        page.wait_for_function(
            "t => document.querySelector('[data-testid=player-video]').currentTime >= t",
            arg=at_least,
            timeout=30_000,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(f"the player did not play: {page.evaluate(PLAYER_STATE)}") from None
    state: dict[str, object] = page.evaluate(PLAYER_STATE)
    assert state["error"] is None, state
    return state


def hover_seek_bar(page: Page, fraction: float) -> None:
    seek = page.get_by_test_id("player-seek")
    box = seek.bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)


def test_an_mp4_shows_its_poster_and_facts_and_plays_with_thumbnails_on_the_seek_bar(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    worker: Workers,
    clip: Path,
    screenshot: Callable[..., Path],
    docs_screenshot: Callable[..., Path | None],
) -> None:
    person = new_person(credits=3)
    sign_in(page, person)
    select = page.get_by_test_id("preset-select")
    expect(select.locator("option")).to_have_count(4)
    expect(select).to_have_value("mp4-720p")
    select.select_option("mp4-480p")
    page.get_by_label("Choose a video").set_input_files(clip)
    job_card = page.get_by_test_id("job-card").filter(has_text="garden.mp4")
    expect(job_card.get_by_test_id("job-poster-placeholder")).to_be_visible()  # while it is processed
    expect(job_card.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
    poster = job_card.get_by_test_id("job-poster")
    expect(poster).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=poster.element_handle())
    expect(job_card.get_by_test_id("job-facts")).to_have_text(
        re.compile(r"^0:07 · 640×360 · [\d.]+ (KB|MB) · MP4 480p$")  # never upscaled
    )
    screenshot(page, "card-with-poster")
    docs_screenshot(job_card, "card-with-poster")
    page.reload()
    expect(page.get_by_test_id("preset-select")).to_have_value("mp4-480p")  # the workspace remembers

    page.get_by_test_id("job-card").filter(has_text="garden.mp4").get_by_test_id("play-button").click()
    expect(page.get_by_test_id("player")).to_be_visible()
    state = playing(page)
    assert (state["kind"], state["engine"]) == ("mp4", "native")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=seek-preview]').dataset.sheetsLoaded || 0) >= 1"
    )
    assert page.get_by_test_id("seek-preview").get_attribute("data-cues") == "7"
    hover_seek_bar(page, 0.75)
    preview = page.get_by_test_id("seek-preview")
    expect(preview).to_be_visible()
    thumb = page.get_by_test_id("seek-thumb")
    expect(thumb).to_have_attribute("data-start", "5")  # 0.75 of 7 s: the cue from 5 s
    assert "thumbs/00000.jpg" in (thumb.evaluate("t => t.style.backgroundImage") or "")
    assert thumb.evaluate("t => t.style.backgroundPosition") == "-800px 0px"  # the 6th cell
    screenshot(page, "player")
    docs_screenshot(page.get_by_test_id("player"), "player")
    page.get_by_test_id("player-close").click()
    expect(page.get_by_test_id("player")).to_be_hidden()


@pytest.fixture
def hls_person(new_person: Callable[..., Person]) -> Person:  # noqa: F811
    """A person whose workspace's uploads start as HLS (its default output)."""
    person = new_person(credits=3)
    assert person.api.call("PUT", "/presets/default", json={"preset": "hls"}).status_code == 200
    return person


@pytest.mark.parametrize("engine", ["native", "hls.js"])
def test_an_hls_stream_plays_natively_or_through_hls_js_and_refreshes_an_expired_link(
    page: Page, hls_person: Person, worker: Workers, clip: Path, engine: str
) -> None:
    if engine == "hls.js":
        page.add_init_script(NO_NATIVE_HLS)
    job = hls_person.api.submit(clip.read_bytes(), "stream.mp4")
    assert job["preset"] == "hls"
    done = hls_person.api.wait_for(job["id"], "completed", "failed", timeout=PROCESSING / 1000)
    assert done["status"] == "completed", done
    sign_in(page, hls_person)
    # The first segment request is refused as an expired presigned URL would be: the player asks
    # for a fresh playback and goes on from where it was.
    refused: list[str] = []
    playbacks: list[str] = []
    page.on(
        "request", lambda r: playbacks.append(r.url) if r.url.split("?")[0].endswith("/playback") else None
    )

    def expire_once(route: Route) -> None:
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        route.fulfill(
            status=403, body="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        )

    page.route(re.compile(r"/package\.zip\?"), expire_once)
    card(page, job["id"]).get_by_test_id("play-button").click()
    state = playing(page, 1.5)
    assert (state["kind"], state["engine"], state["live"]) == ("hls", engine, "false")
    assert refused and len(playbacks) >= 2


def test_retry_with_different_settings_produces_that_resolution(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    worker: Workers,
    aws_stack: AwsStack,
    hd_clip: Path,
    tmp_path: Path,
) -> None:
    person = new_person(credits=3)
    good = hd_clip.read_bytes()
    bad = make_corrupt_file(tmp_path / "bad.mp4", size=len(good)).read_bytes()[: len(good)]
    (job,) = failed_jobs(person, bad, "second-take.mp4")
    aws_stack.client("s3").put_object(Bucket=aws_stack.env["R2_BUCKET"], Key=job["inputFileKey"], Body=good)
    sign_in(page, person)
    job_card = card(page, job["id"])
    message = retry_dialog(page, job_card.get_by_test_id("retry-button"), preset="mp4-480p")
    assert message == "This will use 1 credit. Are you sure you want to retry this job?"
    expect(job_card.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
    expect(job_card.get_by_test_id("job-facts")).to_contain_text("854×480")
    job_card.get_by_test_id("history-toggle").click()
    expect(job_card.get_by_test_id("attempt").nth(0)).to_contain_text("MP4 720p")
    expect(job_card.get_by_test_id("attempt").nth(1)).to_contain_text("succeeded · 1 credit · MP4 480p")
    done = person.api.job(job["id"])
    assert (done["outputHeight"], done["preset"]) == (480, "mp4-480p") and person.api.credits() == 1


def test_a_broken_file_is_replaced_on_the_same_job_which_completes_with_its_history(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    worker: Workers,
    clip: Path,
    tmp_path: Path,
) -> None:
    person = new_person(credits=3)
    (job,) = failed_jobs(person, make_corrupt_file(tmp_path / "x.mp4").read_bytes(), "vacation.mp4")
    sign_in(page, person)
    job_card = card(page, job["id"])
    expect(job_card.get_by_test_id("retry-note")).to_be_visible()  # the smart-retry note stays
    replace = job_card.get_by_test_id("replace-button")
    expect(replace).to_have_text("Upload a new file")
    with page.expect_file_chooser() as chooser:
        replace.click()
    chooser.value.set_files(clip)
    expect(page.get_by_test_id("retry-dialog")).to_be_visible()
    assert page.get_by_test_id("retry-dialog-message").inner_text() == (
        "This will use 1 credit. Are you sure you want to retry this job?"
    )
    page.get_by_test_id("retry-dialog-ok").click()
    expect(job_card.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
    expect(job_card.get_by_test_id("job-filename")).to_have_text("garden.mp4")
    job_card.get_by_test_id("history-toggle").click()
    attempts = job_card.get_by_test_id("attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("Attempt 1 · first run · failed")
    expect(attempts.nth(1)).to_contain_text("Attempt 2 · retry · succeeded")
    assert person.api.credits() == 1


def test_the_default_output_is_chosen_in_the_settings_view(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
) -> None:
    person = new_person(credits=1)
    sign_in(page, person)
    page.get_by_test_id("settings-link").click()
    expect(page.get_by_test_id("settings-view")).to_be_visible()
    page.get_by_test_id("default-preset").select_option("hls")
    page.get_by_test_id("default-preset-save").click()
    expect(page.get_by_test_id("default-preset-status")).to_have_text("Saved.")
    page.get_by_test_id("settings-link").click()
    expect(page.get_by_test_id("preset-select")).to_have_value("hls")
    assert person.api.get("/presets").json()["default"] == "hls"
