"""A large file through the dashboard: parallel parts (Uppy), and a resumption that sends no stored
part again after the network is cut halfway and the page reloaded.

What storage received is counted on the server side (the local R2's UploadPart bodies, per part:
tests.support.received), not taken from the browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
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


def test_an_upload_cut_halfway_resumes_after_a_reload_and_sends_no_stored_part_again(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    aws_stack: AwsStack,
    big_clip: Path,
    screenshot: Callable[..., Path],
) -> None:
    person = new_person(credits=3)
    size = big_clip.stat().st_size
    count = -(-size // PART)
    sign_in(page, person)

    # The network is cut for every part after the first three (as a dropped connection would).
    def cut(route: Route) -> None:
        if part_number(route.request.url) <= STORED_BEFORE_THE_CUT:
            route.continue_()
        else:
            route.abort("internetdisconnected")

    parts = re.compile(r".*[?&]partNumber=\d+.*")
    page.route(parts, cut)
    page.get_by_label("Choose a video").set_input_files(big_clip)
    [job] = wait_for(page, lambda: person.api.get("/jobs?status=uploading").json()["jobs"] or None)
    key = job["inputFileKey"]

    def stored_before_the_cut() -> list[int] | None:
        numbers = stored_parts(person, job["id"])
        return numbers if len(numbers) >= STORED_BEFORE_THE_CUT else None

    assert wait_for(page, stored_before_the_cut) == [1, 2, 3]
    expect(page.get_by_test_id("upload-progress-text")).to_have_text(
        re.compile(r"^\d+% · [\d.]+ MB of [\d.]+ MB")
    )
    screenshot(page, "upload-in-parts-cut")

    page.unroute(parts)
    page.reload()  # the page is gone: Uppy and everything in memory with it
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

    received = aws_stack.received_parts.of(key)
    sizes = {n: min(PART, size - (n - 1) * PART) for n in range(1, count + 1)}
    # Every part reached storage exactly once, whole: the resumption sent only the missing ones.
    assert received == {n: [sizes[n]] for n in range(1, count + 1)}, received
    assert sum(sum(v) for v in received.values()) == size
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
