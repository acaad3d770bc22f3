"""`make dev` keeps what it shows: the stack stopped in the middle of a run (a job completed, one
processing, one queued, a webhook being retried) and started again works as before; crashed
(SIGKILL) it loses nothing it had acknowledged and leaves nothing inconsistent; FRESH=1 starts
every service from nothing. One test, because each phase starts on the state the last one left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.support.api import Api
from tests.support.devstack_process import DevStack
from tests.support.media import make_clip
from tests.support.notify import Receiver, eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# Quick enough to watch: a claim a stopped worker held runs out in 3 s, the sweeper runs every
# 2 s, webhook retries come every 1-2 s for five minutes and never disable the endpoint.
SETTINGS = {
    "WORKERS": "1",
    "SWEEP_INTERVAL_SECONDS": "2",
    "CLAIM_LEASE_SECONDS": "3",
    "HEARTBEAT_SECONDS": "1",
    "AUTO_RETRY_BASE_SECONDS": "0",
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
    "WEBHOOK_RETRY_MAX_DELAY_SECONDS": "2",
    "WEBHOOK_RETRY_WINDOW_SECONDS": "300",
    "WEBHOOK_DISABLE_AFTER_FAILURES": "50",
}
BOB = "bob@example.com"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    running = DevStack(tmp_path / "state", settings=SETTINGS)
    try:
        yield running
    finally:
        running.kill_all()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(default=500).start()  # failing until the test says otherwise
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "short": make_clip(folder / "short.mp4", seconds=1).read_bytes(),
        # a few seconds of x264 work on this machine: long enough to be caught processing
        "long": make_clip(folder / "long.mp4", seconds=10, width=1280, height=720, fps=30).read_bytes(),
    }


def _download(api: Api, job_id: str) -> bytes:
    answer = api.get(f"/jobs/{job_id}/download")
    assert answer.status_code == 200, answer.text
    got = requests.get(answer.json()["url"], timeout=60)
    assert got.status_code == 200 and got.content[4:8] == b"ftyp", got.status_code
    return got.content


def _ledger(api: Api) -> list[dict[str, Any]]:
    answer = api.get("/credits/ledger", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["entries"])


def _completed_events(receiver: Receiver) -> set[str]:
    return {r.event["data"]["job"]["id"] for r in receiver.of_type("job.completed") if r.status == 200}


def _check_the_money(api: Api, started: int) -> None:
    """Each start charged once, and the ledger sums to the balance."""
    entries = _ledger(api)
    assert sum(e["delta"] for e in entries) == api.credits()
    assert len([e for e in entries if e["reason"] == "job_start"]) == started


def test_the_local_stack_keeps_what_it_shows_across_a_stop_a_crash_and_fresh(
    stack: DevStack, receiver: Receiver, clips: dict[str, bytes]
) -> None:
    # --- GIVEN a stack in the middle of a run ------------------------------------------------
    stack.start()
    added = stack.cli("user", "add", BOB, "--workspace", "acme", "--credits", "10")
    assert added.returncode == 0, added.stderr
    password = next(line.split(": ")[1] for line in added.stdout.splitlines() if line.startswith("password"))
    bob = Api(stack.api, stack.sign_in(BOB, password))
    hook = bob.post("/webhooks", {"url": receiver.url, "eventTypes": ["job.completed", "job.failed"]})
    assert hook.status_code == 201, hook.text
    endpoint = hook.json()["endpoint"]["id"]

    done = bob.submit(clips["short"], "done.mp4")["id"]
    bob.wait_for(done, "completed", timeout=120)
    before = _download(bob, done)
    history = bob.job(done)["attempts"]
    eventually(lambda: bob.get(f"/webhooks/{endpoint}/deliveries").json()["deliveries"], what="a delivery")
    busy = bob.submit(clips["long"], "busy.mp4")["id"]
    bob.wait_for(busy, "processing", timeout=120)
    waiting = bob.submit(clips["short"], "waiting.mp4")["id"]
    assert bob.job(waiting)["status"] == "queued"  # the only worker is busy
    ledger = _ledger(bob)

    # WHEN it is stopped as a person stops it, and started again
    assert stack.stop() == 0
    receiver.default = 200  # the endpoint comes back while the stack is down
    stack.start()

    # THEN everyone signs in as before, and sees what they saw
    bob = Api(stack.api, stack.sign_in(BOB, password))
    alice = stack.sign_in("alice@example.com", (stack.state_dir / "demo-password").read_text().strip())
    assert requests.get(f"{stack.api}/me", headers={"Authorization": f"Bearer {alice}"}, timeout=30).ok
    assert [w["id"] for w in bob.get("/me").json()["workspaces"]] == ["acme"]
    assert _download(bob, done) == before  # the same bytes, from the same stored object
    assert bob.job(done)["attempts"] == history
    assert _ledger(bob)[-len(ledger) :] == ledger  # the newest first: what was there is still there
    # the processing job and the queued one both complete, charged once each
    for job_id in (busy, waiting):
        bob.wait_for(job_id, "completed", timeout=180)
        _download(bob, job_id)
    _check_the_money(bob, started=3)
    # the webhook being retried is delivered, and every completion made its event exactly once
    eventually(lambda: _completed_events(receiver) == {done, busy, waiting}, timeout=60, what="3 events")
    log = bob.get(f"/webhooks/{endpoint}/deliveries").json()["deliveries"]
    assert {d["status"] for d in log} == {"delivered"} and len(log) == 3
    first = next(d for d in log if d["eventId"] == receiver.of_type("job.completed")[0].event["id"])
    assert first["attempts"] > 1  # tried before the stop, delivered after it

    # --- WHEN it crashes (SIGKILL) with a job processing and an upload just acknowledged ------
    crashed = bob.submit(clips["long"], "crashed.mp4")["id"]
    bob.wait_for(crashed, "processing", timeout=120)
    uploaded = bob.create(clips["short"], "uploaded.mp4")["id"]  # the PUT was answered 200
    stack.crash()
    stack.start()

    # THEN nothing acknowledged is lost and nothing is left half done
    bob = Api(stack.api, stack.sign_in(BOB, password))
    started = bob.post(f"/jobs/{uploaded}/start")
    assert started.status_code == 202, started.text  # its upload is there
    for job_id in (crashed, uploaded):
        assert bob.wait_for(job_id, "completed", "failed", timeout=180)["status"] == "completed"
    for job in bob.get("/jobs").json()["jobs"]:
        assert job["status"] == "completed"
        _download(bob, job["id"])  # never a silent broken download
    _check_the_money(bob, started=5)
    expected = {done, busy, waiting, crashed, uploaded}
    eventually(lambda: _completed_events(receiver) == expected, timeout=60, what="5 events")

    # --- WHEN it is started with FRESH=1 --------------------------------------------------------
    assert stack.stop() == 0
    stack.start(FRESH="1")

    # THEN every service starts from nothing (the demo user is made again)
    with pytest.raises(ClientError):
        stack.sign_in(BOB, password)
    demo_password = (stack.state_dir / "demo-password").read_text().strip()  # kept: a setting, not data
    alice_api = Api(stack.api, stack.sign_in("alice@example.com", demo_password))
    assert alice_api.get("/jobs").json()["jobs"] == [] and alice_api.credits() == 10
    bucket = stack.client("s3").list_objects_v2(Bucket=stack.stack_env()["R2_BUCKET"])
    assert bucket.get("KeyCount", 0) == 0
    sqs = stack.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.stack_env()["JOBS_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert alice_api.get(f"/jobs/{done}").status_code == 404
    assert stack.stop() == 0
