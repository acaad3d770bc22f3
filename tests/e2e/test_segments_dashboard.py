"""The dashboard's view of a long video processed in segments: "Processing: 1 of 3 segments"."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from chalicelib import bootstrap
from chalicelib.domain import AUDIO_TASK, Preset, QueueMessage
from chalicelib.processing import worker as worker_rules
from chalicelib.processing.context import Services
from tests.e2e.test_dashboard import PROCESSING, Person, card, new_person, sign_in  # noqa: F401
from tests.e2e.test_outputs_dashboard import playing
from tests.support.media import make_long_form_clip
from tests.support.stack import AwsStack, Workers

SMALL = {"segment_threshold_seconds": 5.0, "segment_seconds": 4.0}


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "lecture.mp4"
    return make_long_form_clip(path, 12, width=640, height=360, fps=25).read_bytes()


@pytest.fixture
def segmenting(aws_stack: AwsStack) -> Iterator[Services]:
    real = bootstrap.services()
    svc = Services(
        real.settings.model_copy(update=SMALL),
        real.repo,
        real.store,
        real.queue,
        real.transcoder,
        real.segmenter,
    )
    bootstrap.override(svc)
    yield svc
    bootstrap.override(None)


def test_a_long_video_shows_segments_done_of_total_while_it_processes(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    worker: Workers,
    segmenting: Services,
    long_clip: bytes,
) -> None:
    worker.stop()
    person = new_person(credits=3)
    job = person.api.submit(long_clip, "lecture.mp4")
    attempt = QueueMessage(job["id"], person.workspace_id, 1)
    assert worker_rules.process(segmenting, attempt) == worker_rules.Handled.PLANNED
    sign_in(page, person)
    job_card = card(page, job["id"])
    expect(job_card.get_by_test_id("status-badge")).to_have_text("processing")
    expect(job_card.locator(".job-progress")).to_contain_text("Processing: 0 of 3 segments")

    first = QueueMessage(job["id"], person.workspace_id, 1, task=0)
    assert worker_rules.process(segmenting, first) == worker_rules.Handled.ENCODED
    expect(job_card.locator(".job-progress")).to_contain_text("Processing: 1 of 3 segments")
    expect(job_card.get_by_test_id("job-progress")).to_have_attribute("value", re.compile(r"^3[0-9]$"))

    worker.start()  # the rest of the tasks (and the duplicates of those already done)
    expect(job_card.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
    assert person.api.credits() == 2


def test_a_long_hls_video_plays_in_the_browser_before_it_completes(
    page: Page,
    new_person: Callable[..., Person],  # noqa: F811
    worker: Workers,
    segmenting: Services,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    worker.stop()
    person = new_person(credits=3)
    assert person.api.call("PUT", "/presets/default", json={"preset": "hls"}).status_code == 200
    clip = make_long_form_clip(
        tmp_path_factory.mktemp("media") / "talk.mp4", 12, width=640, height=360, fps=10
    )
    job = person.api.submit(clip.read_bytes(), "talk.mp4")
    attempt = QueueMessage(job["id"], person.workspace_id, 1, preset=Preset.HLS)
    assert worker_rules.process(segmenting, attempt) == worker_rules.Handled.PLANNED
    for task in (AUDIO_TASK, 0):  # the soundtrack and the first 4 s: the rest is not encoded yet
        assert (
            worker_rules.process(segmenting, dataclasses.replace(attempt, task=task))
            == worker_rules.Handled.ENCODED
        )
    sign_in(page, person)
    job_card = card(page, job["id"])
    expect(job_card.get_by_test_id("status-badge")).to_have_text("processing")
    job_card.get_by_test_id("play-button").click()
    state = playing(page, 1.5)
    assert (state["live"], state["kind"], state["engine"]) == ("true", "hls", "hls.js")
    expect(page.get_by_test_id("player-status")).to_contain_text("Still processing")
    assert person.api.job(job["id"])["status"] == "processing"  # it played before the job completed

    page.get_by_test_id("player-close").click()
    worker.start()
    expect(job_card.get_by_test_id("status-badge")).to_have_text("completed", timeout=PROCESSING)
    assert person.api.credits() == 2
