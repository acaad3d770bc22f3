"""Cancel on the real stack: the API, the worker's stop signal (real ffmpeg killed), the segmented
path, a race with completion, the CLI. After each test the autouse check proves ledger == balance."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.domain import Principal, QueueMessage, utcnow
from chalicelib.errors import JobNotCancellableError, StoppedError
from chalicelib.lifecycle import transitions
from chalicelib.processing import cancel
from chalicelib.processing import worker as worker_rules
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from tests.support.api import Tenant, new_tenant, repository
from tests.support.lifecycle import claim
from tests.support.media import make_long_form_clip
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "lecture.mp4"
    return make_long_form_clip(path, 12, width=640, height=360, fps=25).read_bytes()


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=10)


@pytest.fixture
def swap() -> Iterator[Any]:
    real = bootstrap.services()

    def use(**settings: Any) -> Services:
        changed = real.settings.model_copy(update={"pulse_seconds": 0.5, **settings})
        svc = Services(changed, real.repo, real.store, real.queue, real.transcoder, real.segmenter)
        bootstrap.override(svc)
        return svc

    yield use
    bootstrap.override(None)


def objects(stack: AwsStack, prefix: str) -> list[str]:
    listed = stack.client("s3").list_objects_v2(Bucket=stack.env["R2_BUCKET"], Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def ffmpeg_children() -> list[int]:
    """ffmpeg processes started by this test process (the in-process worker's)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if name == "ffmpeg" and int(rest[1]) == os.getpid():
            found.append(int(pid))
    return found


def until(condition: Any, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def principal_of(tenant: Tenant) -> Principal:
    me = tenant.api.get("/me").json()["user"]
    return Principal(user_id=me["id"], email=me["email"])


# --- the API ----------------------------------------------------------------------------------


def test_cancelling_a_queued_job_refunds_it_once_and_it_stays_cancelled(
    tenant: Tenant, clip: bytes, worker: Workers
) -> None:
    worker.stop()
    job = tenant.api.submit(clip)
    assert tenant.api.credits() == 9
    first = tenant.api.post(f"/jobs/{job['id']}/cancel")
    assert first.status_code == 200, first.text
    assert first.json() == {"success": True, "jobId": job["id"], "status": "cancelled", "creditsRefunded": 1}
    again = tenant.api.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 200 and again.json()["creditsRefunded"] == 0
    assert tenant.api.credits() == 10
    worker.run_once()  # its message arrives: nothing is claimed
    cancelled = tenant.api.job(job["id"])
    assert cancelled["status"] == "cancelled"
    assert [(a["outcome"], a["refunded"]) for a in cancelled["attempts"]] == [("cancelled", True)]
    retried = tenant.api.post(f"/jobs/{job['id']}/retry")
    assert (retried.status_code, retried.json()["message"]) == (400, "Only failed jobs can be retried")
    reasons = [
        e["reason"] for e in tenant.api.get("/credits/ledger").json()["entries"] if e["jobId"] == job["id"]
    ]
    assert reasons == ["cancel_refund", "job_start"]


def test_a_completed_job_cannot_be_cancelled_and_a_stranger_cannot_see_it(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack, api_server: str
) -> None:
    job = tenant.api.submit(clip)
    assert tenant.api.wait_for(job["id"], "completed", "failed")["status"] == "completed"
    refused = tenant.api.post(f"/jobs/{job['id']}/cancel")
    assert (refused.status_code, refused.json()) == (
        400,
        {"code": "BAD_REQUEST", "message": "Only queued or processing jobs can be cancelled"},
    )
    stranger = new_tenant(aws_stack, api_server)
    hidden = stranger.api.post(f"/jobs/{job['id']}/cancel")
    assert (hidden.status_code, hidden.json()["message"]) == (404, "Job not found")
    assert tenant.api.credits() == 9


# --- the worker stops --------------------------------------------------------------------------


def test_cancel_mid_transcode_kills_ffmpeg_within_a_pulse_and_stores_nothing(
    tenant: Tenant, long_clip: bytes, worker: Workers, swap: Any, aws_stack: AwsStack
) -> None:
    worker.stop()
    swap(transcode_preset="slow")  # ffmpeg is still running when the cancel lands
    job = tenant.api.submit(long_clip)
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    until(lambda: ffmpeg_children() != [], 60, "ffmpeg started")
    answer = tenant.api.post(f"/jobs/{job['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["creditsRefunded"] == 1
    # The spec's bound for the stop signal: one pulse (0.5 s here; 2 s by default) and a poll.
    until(lambda: ffmpeg_children() == [], 5, "ffmpeg gone after the cancel")
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert objects(aws_stack, f"outputs/{tenant.workspace_id}/{job['id']}/") == []
    cancelled = tenant.api.job(job["id"])
    assert cancelled["status"] == "cancelled" and cancelled["attempts"][0]["outcome"] == "cancelled"
    assert tenant.api.credits() == 10


def test_cancel_racing_completion_has_exactly_one_winner(
    tenant: Tenant, clip: bytes, worker: Workers
) -> None:
    worker.stop()
    repo, member = repository(), principal_of(tenant)
    outcomes = []
    for _ in range(6):
        job = tenant.api.submit(clip)
        ref = QueueMessage(job["id"], tenant.workspace_id, 1)
        assert claim(repo, ref)
        start = threading.Barrier(2)

        def complete(ref: QueueMessage = ref, start: threading.Barrier = start) -> bool:
            start.wait()
            return committed(repo, transitions.complete(ref, "outputs/x.mp4", utcnow()))

        def cancel_it(job_id: str = job["id"], start: threading.Barrier = start) -> str:
            start.wait()
            try:
                return f"cancelled:{cancel.cancel_job(bootstrap.services(), member, job_id).credits_refunded}"
            except JobNotCancellableError:
                return "refused"

        with cf.ThreadPoolExecutor(2) as pool:
            completed, cancelled = pool.submit(complete), pool.submit(cancel_it)
            outcome = (completed.result(), cancelled.result())
        assert outcome in ((True, "refused"), (False, "cancelled:1")), outcome
        status = tenant.api.job(job["id"])["status"]
        assert status == ("completed" if outcome[0] else "cancelled")
        outcomes.append(outcome[0])
    paid = sum(outcomes)
    assert tenant.api.credits() == 10 - paid  # only completed jobs cost a credit


# --- the segmented path --------------------------------------------------------------------------


class BlockingSegmenter:
    """The real segmenter, except segment 2 waits for the stop signal (as a slow encode would)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.blocked = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def render_segment(self, input_url: str, span: Any, *args: Any, stop: Any = None, **kwargs: Any) -> Any:
        if span.index == 1:
            self.blocked.set()
            if stop is not None and stop.wait(20):
                raise StoppedError("stopped")
        return self.inner.render_segment(input_url, span, *args, stop=stop, **kwargs)


def test_cancel_of_a_segmented_job_midway_stops_its_tasks_and_never_stitches(
    tenant: Tenant, lecture: bytes, worker: Workers, swap: Any, aws_stack: AwsStack
) -> None:
    worker.stop()
    svc = swap(segment_threshold_seconds=5.0, segment_seconds=4.0)
    blocking = BlockingSegmenter(svc.segmenter)
    svc.segmenter = blocking
    job = tenant.api.submit(lecture, "lecture.mp4")
    assert (
        worker_rules.process(svc, QueueMessage(job["id"], tenant.workspace_id, 1))
        == worker_rules.Handled.PLANNED
    )
    first = QueueMessage(job["id"], tenant.workspace_id, 1, task=0)
    assert worker_rules.process(svc, first) == worker_rules.Handled.ENCODED
    assert objects(aws_stack, f"work/{tenant.workspace_id}/{job['id']}/")  # a part is stored
    second = QueueMessage(job["id"], tenant.workspace_id, 1, task=1)
    with cf.ThreadPoolExecutor(1) as pool:
        running = pool.submit(worker_rules.process, svc, second)
        assert blocking.blocked.wait(30)
        assert tenant.api.post(f"/jobs/{job['id']}/cancel").json()["creditsRefunded"] == 1
        assert running.result(timeout=10) == worker_rules.Handled.STOPPED
    worker.run_once()  # the other tasks' messages: each finds the attempt gone
    assert objects(aws_stack, f"work/{tenant.workspace_id}/{job['id']}/") == []
    assert objects(aws_stack, f"outputs/{tenant.workspace_id}/{job['id']}/") == []
    cancelled = tenant.api.job(job["id"])
    assert cancelled["status"] == "cancelled" and tenant.api.credits() == 10


# --- the CLI ---------------------------------------------------------------------------------


def test_an_operator_cancels_from_the_cli(tenant: Tenant, clip: bytes, worker: Workers, capsys: Any) -> None:
    from cli import main

    worker.stop()
    job = tenant.api.submit(clip)
    assert main(["--no-local-stack", "cancel", job["id"]]) == 0
    assert f"{job['id']}: cancelled; 1 credit(s) refunded" in capsys.readouterr().out
    assert main(["--no-local-stack", "cancel", job["id"]]) == 0  # again: nothing more
    assert tenant.api.credits() == 10
