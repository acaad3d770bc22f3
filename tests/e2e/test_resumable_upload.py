"""A large file through the dashboard: parallel parts (Uppy), and a resumption that sends no stored
part again after the network is cut halfway and the page reloaded.

What storage received is counted on the server side (the local R2's UploadPart bodies, per part:
tests.support.received), not taken from the browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.test_dashboard import Person, expect_balance, new_person, sign_in  # noqa: F401
from tests.support.media import make_raw_clip
from tests.support.stack import AwsStack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MIB = 1024 * 1024
PART = 16 * MIB  # the API's default part size
STORED_BEFORE_THE_CUT = 3
T = TypeVar("T")


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 110 MB of video (uncompressed 720p): above the 100 MiB threshold, 7 parts."""
    return make_raw_clip(tmp_path_factory.mktemp("media") / "rehearsal.mkv", megabytes=110)


def part_number(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["partNumber"][0])


PARTS = re.compile(r".*[?&]partNumber=\d+.*")


def test_an_upload_cut_halfway_resumes_after_a_reload_and_sends_no_stored_part_again(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    aws_stack: AwsStack,
    big_clip: Path,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=3)
    sign_in(page, person)

    # The network is cut for every part after the first three (as a dropped connection would).
    def cut(route: Route) -> None:
        if part_number(route.request.url) <= STORED_BEFORE_THE_CUT:
            route.continue_()
        else:
            route.abort("internetdisconnected")

    page.route(PARTS, cut)
    job = upload_until_three_parts_are_stored(page, person, big_clip)
    expect(page.get_by_test_id("upload-progress-text")).to_have_text(
        re.compile(r"^\d+% · [\d.]+ MB of [\d.]+ MB")
    )
    screenshot(page, "upload-in-parts-cut")

    page.reload()  # the page is gone: Uppy and everything in memory with it
    page.unroute(PARTS)  # (after the reload: no retry of the old page reaches storage half-sent)
    pending = page.get_by_test_id("pending-upload")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text("rehearsal.mkv")
    expect(pending).to_contain_text("Choose the same file to continue")
    screenshot(page, "upload-unfinished-after-reload")

    page.get_by_label("Choose a video").set_input_files(big_clip)
    expect(page.get_by_test_id("upload-status")).to_have_text(
        "rehearsal.mkv is uploaded and queued.", timeout=60_000
    )
    expect(page.get_by_test_id("pending-upload")).to_have_count(0)
    expect_balance(page, 2)
    assert person.api.credits() == 2
    # Every part reached storage exactly once, whole: the resumption sent only the missing ones.
    assert_each_part_received_once(aws_stack, job["inputFileKey"], big_clip.stat().st_size)


def test_a_connection_dropped_mid_upload_resumes_by_itself_once_the_browser_is_online_again(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    aws_stack: AwsStack,
    big_clip: Path,
) -> None:
    person = new_person(credits=3)
    sign_in(page, person)
    held: list[Route] = []
    online = [False]  # the parts after the third wait for the connection to come back

    def hold(route: Route) -> None:
        if part_number(route.request.url) <= STORED_BEFORE_THE_CUT or online[0]:
            route.continue_()
        else:
            held.append(route)

    page.route(PARTS, hold)
    job = upload_until_three_parts_are_stored(page, person, big_clip)
    page.context.set_offline(True)  # the connection drops: the parts in flight fail
    for route in held:
        route.abort("internetdisconnected")
    expect(page.get_by_test_id("upload-status")).to_have_text("Uploading rehearsal.mkv...")
    expect(page.get_by_test_id("upload-error")).to_be_hidden()

    online[0] = True
    page.context.set_offline(False)  # back: nothing to do for the person, no file to choose again
    expect(page.get_by_test_id("upload-status")).to_have_text(
        "rehearsal.mkv is uploaded and queued.", timeout=60_000
    )
    assert person.api.credits() == 2
    assert_each_part_received_once(aws_stack, job["inputFileKey"], big_clip.stat().st_size)


def upload_until_three_parts_are_stored(page: Page, person: Person, clip: Path) -> dict[str, Any]:
    """Choose `clip` and wait (through the API) until its job exists and storage holds parts 1-3."""
    page.get_by_label("Choose a video").set_input_files(clip)
    [job] = wait_for(page, lambda: person.api.get("/jobs?status=uploading").json()["jobs"] or None)

    def stored_before_the_cut() -> list[int] | None:
        numbers = stored_parts(person, job["id"])
        return numbers if len(numbers) >= STORED_BEFORE_THE_CUT else None

    assert wait_for(page, stored_before_the_cut) == [1, 2, 3]
    return dict(job)


def assert_each_part_received_once(aws_stack: AwsStack, key: str, size: int) -> None:
    """What the local R2 received for `key`: each part in one request, whole, and nothing else."""
    count = -(-size // PART)
    received = aws_stack.received_parts.of(key)
    assert received == {n: [min(PART, size - (n - 1) * PART)] for n in range(1, count + 1)}, received
    head = aws_stack.client("s3").head_object(Bucket=aws_stack.env["R2_BUCKET"], Key=key)
    assert head["ContentLength"] == size


def stored_parts(person: Person, job_id: str) -> list[int]:
    listed = person.api.get(f"/jobs/{job_id}/upload/parts").json()
    return [p["partNumber"] for p in listed["parts"]]


def wait_for(page: Page, probe: Callable[[], T | None], timeout_ms: int = 30_000) -> T:
    """Poll `probe` (the API, not the page) until it returns something truthy."""
    waited = 0
    while waited < timeout_ms:
        found = probe()
        if found:
            return found
        page.wait_for_timeout(100)  # lets Playwright run the route handlers meanwhile
        waited += 100
    raise AssertionError("timed out")
