"""Issue 7, section 6: real faults on the local stack (DynamoDB Local, moto, real ffmpeg).

Each scenario ends with the invariants: every workspace's ledger sums to its balance; every
attempt has exactly one outcome; no job is left processing; no credit was kept for a platform
failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.r2 import R2Store
from chalicelib.domain import FailureKind, JobStatus, QueueMessage, utcnow
from chalicelib.processing import failures
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from devstack import REPO_ROOT
from devstack.lambda_events import LocalLambdaContext
from tests.support import sqs_events
from tests.support.api import Tenant, new_tenant, repository
from tests.support.invariants import ledger_mismatches
from tests.support.lifecycle import claim, complete, fail
from tests.support.media import ffmpeg_binary, make_corrupt_file
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=10)


@pytest.fixture
def swap() -> Iterator[Any]:
    """Run the in-process worker with some collaborators replaced."""
    real = bootstrap.services()

    def use(**changes: Any) -> Services:
        fields: dict[str, Any] = {
            "settings": real.settings,
            "repo": real.repo,
            "store": real.store,
            "queue": real.queue,
            "transcoder": real.transcoder,
        } | changes
        svc = Services(**fields)
        bootstrap.override(svc)
        return svc

    yield use
    bootstrap.override(None)


def check_invariants(tenant: Tenant) -> None:
    assert ledger_mismatches() == []
    jobs = tenant.api.get("/jobs?limit=100").json()["jobs"]
    for listed in jobs:
        job = tenant.api.job(listed["id"])
        assert job["status"] != "processing", job
        attempts = job["attempts"]
        finished = attempts if job["status"] in ("completed", "failed") else attempts[:-1]
        assert all(a["outcome"] in ("succeeded", "failed") and a["finishedAt"] for a in finished), attempts
        assert sum(a["outcome"] == "succeeded" for a in attempts) <= 1
        failure = failures.describe(job["errorCode"]) if job["status"] == "failed" else None
        if failure is not None and failure.kind is FailureKind.TRANSIENT:
            charged = [a for a in attempts if a["creditsCharged"] > 0]
            assert not charged or charged[-1]["refunded"], f"a platform failure kept its credit: {job}"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UnreachableFirst:
    """R2 through an endpoint that refuses connections for the first `failures` heads of `key`
    (other jobs' messages may be in the queue too), then the real one."""

    def __init__(self, real: Any, broken: Any, key: str, failures: int) -> None:
        self.real, self.broken, self.key, self.left = real, broken, key, failures

    def head(self, key: str) -> Any:
        if key == self.key and self.left > 0:
            self.left -= 1
            return self.broken.head(key)
        return self.real.head(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


# --- the scenarios ---------------------------------------------------------------------------------


def test_r2_unreachable_during_download_is_retried_and_completes_paid_once(
    tenant: Tenant, clip: bytes, worker: Workers, swap: Any
) -> None:
    worker.stop()
    real = bootstrap.services()
    dead_endpoint = real.settings.model_copy(update={"r2_endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    broken = R2Store.from_settings(dead_endpoint)
    job = tenant.api.submit(clip)
    swap(store=UnreachableFirst(real.store, broken, job["inputFileKey"], failures=1))
    worker.run_once()
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed", done
    first, second = done["attempts"]
    assert (first["outcome"], first["errorCode"]) == ("failed", "R2_DOWNLOAD_FAILED")
    assert (second["trigger"], second["creditsCharged"], second["outcome"]) == ("auto", 0, "succeeded")
    assert tenant.api.credits() == 9
    check_invariants(tenant)


def test_ffmpeg_missing_via_ffmpeg_path_fails_after_the_automatic_tries_with_a_refund(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack
) -> None:
    """The worker process itself, started with FFMPEG_PATH pointing nowhere."""
    worker.stop()
    job = tenant.api.submit(clip)
    env = {
        **os.environ,
        **aws_stack.env,
        "FFMPEG_PATH": "/nonexistent/ffmpeg",
        "FFPROBE_PATH": "/nonexistent/ffprobe",
    }
    env["DEVSTACK_STATE_DIR"] = str(aws_stack.log_dir)
    subprocess.run(
        [sys.executable, "-m", "cli", "--no-local-stack", "worker", "--once"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    failed = tenant.api.job(job["id"])
    assert (failed["status"], failed["error"], failed["errorCode"]) == (
        "failed",
        "FFmpeg not found",
        "FFMPEG_NOT_FOUND",
    )
    assert [a["trigger"] for a in failed["attempts"]] == ["initial", "auto", "auto"]
    assert failed["attempts"][0]["refunded"] is True
    assert tenant.api.credits() == 10
    ledger = [(e["delta"], e["reason"]) for e in tenant.api.get("/credits/ledger").json()["entries"]]
    assert (1, "system_failure_refund") in ledger
    check_invariants(tenant)


def test_ffmpeg_killed_with_sigkill_mid_transcode_is_retried_and_completes_once(
    tenant: Tenant, long_clip: bytes, worker: Workers, swap: Any, tmp_path: Path
) -> None:
    worker.stop()
    pids = tmp_path / "pids"
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{pids}"\nexec "{_which(ffmpeg_binary())}" "$@"\n')
    wrapper.chmod(0o755)
    real = bootstrap.services()
    transcoder = FFmpegTranscoder(
        str(wrapper), real.settings.ffprobe_path, timeout_seconds=120, max_height=720
    )
    job = tenant.api.submit(long_clip)
    swap(transcoder=transcoder)
    killer = threading.Thread(target=_kill_first_ffmpeg, args=(pids,), daemon=True)
    killer.start()
    worker.run_once()
    killer.join(timeout=5)
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed", done
    first, second = done["attempts"]
    assert (first["outcome"], first["errorCode"]) == ("failed", "FFMPEG_CRASHED")
    assert (second["trigger"], second["outcome"]) == ("auto", "succeeded")
    assert len(pids.read_text().split()) == 2  # killed once, then one full transcode
    assert tenant.api.credits() == 9
    check_invariants(tenant)


def _which(binary: str) -> str:
    import shutil

    return shutil.which(binary) or binary


def _kill_first_ffmpeg(pids: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pids.exists() and pids.read_text().split():
            time.sleep(0.5)  # mid-transcode: it has been converting for a while
            os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)
            return
        time.sleep(0.02)


class CountingTranscoder:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self._lock = inner, 0, threading.Lock()

    def render(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        return self.inner.render(*args, **kwargs)


def test_the_same_message_delivered_twice_at_once_runs_one_transcode(
    tenant: Tenant, clip: bytes, worker: Workers, swap: Any
) -> None:
    import app

    worker.stop()
    job = tenant.api.submit(clip)
    counted = CountingTranscoder(bootstrap.services().transcoder)
    swap(transcoder=counted)
    body = json.dumps({"jobId": job["id"], "workspaceId": tenant.workspace_id, "attempt": 1})
    start = threading.Barrier(2)
    results: list[Any] = []

    def deliver(n: int) -> None:
        event = sqs_events.event(sqs_events.record(body, message_id=f"dup-{n}"))
        start.wait()
        results.append(app.handle_job_messages(event, LocalLambdaContext("worker")))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r["batchItemFailures"] for r in results] == [[], []]
    assert counted.calls == 1
    assert tenant.api.wait_for(job["id"], "completed", "failed")["status"] == "completed"
    assert tenant.api.credits() == 9
    worker.run_once()  # the queue's own message for it: a no-op
    assert counted.calls == 1
    check_invariants(tenant)


def test_a_malformed_message_in_a_batch_goes_to_the_dlq_and_the_others_complete(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack, tmp_path: Path
) -> None:
    worker.stop()
    jobs = [tenant.api.submit(clip) for _ in range(2)]  # their messages are in the queue
    sqs = aws_stack.client("sqs")
    bad = json.dumps({"jobId": jobs[0]["id"], "workspaceId": tenant.workspace_id, "attempt": "one"})
    sqs.send_message(QueueUrl=aws_stack.env["JOBS_QUEUE_URL"], MessageBody=bad)
    _purge(sqs, aws_stack.env["JOBS_DLQ_URL"])
    worker.run_once()
    for job in jobs:
        assert tenant.api.job(job["id"])["status"] == "completed"
    assert tenant.api.credits() == 8

    listed = _cli(aws_stack, tmp_path, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [m["body"] for m in lines] == [bad] and lines[0]["reason"] == "Not a job message"
    assert "1 message(s)" in listed.stderr
    moved = _cli(aws_stack, tmp_path, "dlq", "redrive", "--max", "5")
    assert moved.returncode == 0 and "moved 1 message(s)" in moved.stdout, moved.stderr
    assert _cli(aws_stack, tmp_path, "dlq", "list").stdout == ""
    worker.run_once()  # still not a job message: back to the DLQ, nothing charged
    assert len(_cli(aws_stack, tmp_path, "dlq", "list").stdout.splitlines()) == 1
    # Without --max: StartMessageMoveTask where SQS has it; moto has not, so receive/send/delete.
    everything = _cli(aws_stack, tmp_path, "dlq", "redrive")
    assert everything.returncode == 0 and "moved 1 message(s)" in everything.stdout, everything.stderr
    worker.run_once()
    assert tenant.api.credits() == 8
    _purge(sqs, aws_stack.env["JOBS_DLQ_URL"])
    check_invariants(tenant)


def test_a_corrupt_video_fails_at_once_not_retryable_and_is_not_refunded(
    tenant: Tenant, worker: Workers, tmp_path: Path
) -> None:
    job = tenant.api.submit(make_corrupt_file(tmp_path / "bad.mp4").read_bytes())
    failed = tenant.api.wait_for(job["id"], "failed", "completed")
    assert (failed["status"], failed["errorCode"], failed["retryable"]) == ("failed", "INVALID_VIDEO", False)
    assert failed["suggestion"] == "Upload a different file: this one is not a readable video."
    assert len(failed["attempts"]) == 1 and failed["attempts"][0]["refunded"] is False
    assert failed["retryPrice"] == 1
    assert tenant.api.credits() == 9
    check_invariants(tenant)


def test_a_record_with_too_little_invocation_time_is_handed_back_not_failed(
    tenant: Tenant, clip: bytes, worker: Workers
) -> None:
    import app

    worker.stop()
    job = tenant.api.submit(clip)

    def late_in_the_invocation(event: dict[str, Any], context: Any) -> Any:
        return app.handle_job_messages(event, LocalLambdaContext("worker", timeout_seconds=30))

    from devstack.worker import Poller, queue_url_of, sqs_client

    sqs = sqs_client()
    poller = Poller(late_in_the_invocation, sqs, queue_url_of(sqs), "us-east-1", wait_seconds=1)
    handed_back = poller.poll_once()
    assert handed_back.received >= 1 and handed_back.failed == handed_back.received
    waiting = tenant.api.job(job["id"])
    assert waiting["status"] == "queued" and waiting["attempts"][0]["outcome"] == "queued"
    # It came back at once (visibility 0): the next invocation, with time, runs it.
    poller.handler = app.handle_job_messages
    for _ in range(5):
        if poller.poll_once().received == 0 or tenant.api.job(job["id"])["status"] == "completed":
            break
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed" and len(done["attempts"]) == 1
    assert tenant.api.credits() == 9
    check_invariants(tenant)


def test_the_sweeper_and_a_reclaim_racing_on_an_expired_lease_keep_the_live_workers_outcome(
    tenant: Tenant, clip: bytes, worker: Workers, swap: Any
) -> None:
    from chalicelib.processing import sweeper

    worker.stop()
    job = tenant.api.submit(clip)
    repo = repository()
    ref = QueueMessage(job["id"], tenant.workspace_id, 1)
    assert claim(repo, ref, utcnow(), utcnow())  # a worker died: its lease has run out

    class ReclaimWhileSweeping:
        """The sweeper reads the expired job; a redelivery re-claims it before the sweeper writes."""

        def __getattr__(self, name: str) -> Any:
            return getattr(repo, name)

        def jobs_to_sweep(self, status: JobStatus, before: Any, limit: int) -> Any:
            if status is not JobStatus.PROCESSING:
                return []
            found = [j for j in repo.jobs_to_sweep(status, before, limit) if j.id == job["id"]]
            assert found, "the sweeper must see the expired lease"
            live = utcnow()
            assert claim(repo, ref, live, live + timedelta(seconds=900))
            return found

    svc = swap(repo=ReclaimWhileSweeping())
    report = sweeper.sweep(svc)
    assert report.interrupted == 0  # the conditional write lost: the lease is live again
    live = tenant.api.job(job["id"])
    assert (live["status"], live["attempt"]) == ("processing", 1)
    assert complete(repo, ref, "outputs/x.mp4")  # the live worker's outcome stands
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed" and len(done["attempts"]) == 1
    check_invariants(tenant)


# --- helpers -----------------------------------------------------------------------------------------


def _cli(stack: AwsStack, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env, "DEVSTACK_STATE_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _purge(sqs: Any, url: str) -> None:
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


# --- the heartbeat, the wait, the operator's commands ----------------------------------------------


def test_the_watch_keeps_a_transcode_longer_than_its_lease_from_being_taken_for_dead(
    tenant: Tenant, long_clip: bytes, worker: Workers, swap: Any
) -> None:
    from chalicelib.processing import sweeper

    worker.stop()
    real = bootstrap.services()
    short_lease = real.settings.model_copy(update={"claim_lease_seconds": 3, "pulse_seconds": 0.3})
    svc = swap(settings=short_lease)
    job = tenant.api.submit(long_clip)
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    leases = set()
    while runner.is_alive():
        stored = repository().get_job(job["id"])
        if stored is not None and stored.lease_until is not None:
            leases.add(stored.lease_until)
        sweeper.sweep(svc)  # other tests' jobs may be swept; this one must never be
        time.sleep(0.3)
    runner.join()
    done = tenant.api.job(job["id"])
    # An interruption by the sweeper would have recorded WORKER_INTERRUPTED and a second attempt.
    assert done["status"] == "completed" and len(done["attempts"]) == 1, done
    assert done["attempts"][0]["errorCode"] is None
    assert len(leases) >= 3  # renewed while ffmpeg ran, each lease only three seconds long
    check_invariants(tenant)


def test_the_sweeper_does_not_resend_an_automatic_retry_before_it_is_due(tenant: Tenant, swap: Any) -> None:
    from chalicelib.lifecycle import RecordedError, transitions
    from chalicelib.processing import sweeper

    job = tenant.api.submit(b"not a video" * 50)  # no worker: it stays queued
    repo = repository()
    ref = QueueMessage(job["id"], tenant.workspace_id, 1)
    now = utcnow()
    assert claim(repo, ref, now, now + timedelta(seconds=60))
    claimed = repo.get_job(job["id"])
    assert claimed is not None
    due = now + timedelta(seconds=30)
    crashed = RecordedError("FFmpeg stopped unexpectedly", "FFMPEG_CRASHED")
    assert committed(repo, transitions.reschedule(claimed, crashed, now, due))
    sent: list[QueueMessage] = []

    class Recording:
        def send(self, message: QueueMessage, delay_seconds: int = 0) -> None:
            sent.append(message)

    prompt = bootstrap.services().settings.model_copy(update={"sweeper_requeue_after_seconds": 1})
    svc = swap(settings=prompt, queue=Recording())
    svc.clock = lambda: utcnow() + timedelta(seconds=2)  # past the usual wait, long before it is due
    sweeper.sweep(svc)
    assert QueueMessage(job["id"], tenant.workspace_id, 2) not in sent  # due in 30 s: not lost yet
    waiting = tenant.api.job(job["id"])
    assert waiting["status"] == "queued" and waiting["nextAttemptAt"] and waiting["autoAttempts"] == 1
    assert not committed(repo, transitions.reschedule(claimed, crashed, now, due))  # one outcome per attempt
    # Leave nothing queued for other tests' sweeps: the automatic try runs and fails for good.
    second = QueueMessage(job["id"], tenant.workspace_id, 2)
    assert claim(repo, second, utcnow(), utcnow() + timedelta(seconds=60))
    assert fail(repo, second)
    check_invariants(tenant)


def test_cli_pricing_and_reprocess_dry_run_then_free(
    tenant: Tenant, aws_stack: AwsStack, worker: Workers, tmp_path: Path, clip: bytes
) -> None:
    worker.stop()
    job = tenant.api.submit(b"not a video" * 50)
    worker.run_once()
    assert tenant.api.job(job["id"])["errorCode"] == "INVALID_VIDEO"
    assert tenant.api.credits() == 9
    ws = tenant.workspace_id

    shown = _cli(aws_stack, tmp_path, "pricing", "--workspace", ws)
    assert shown.returncode == 0 and "retry pricing full" in shown.stdout, shown.stderr
    changed = _cli(aws_stack, tmp_path, "pricing", "--workspace", ws, "--set", "first_free")
    assert "retry pricing first_free" in changed.stdout
    assert tenant.api.job(job["id"])["retryPrice"] == 0
    assert (
        "retry pricing full"
        in _cli(aws_stack, tmp_path, "pricing", "--workspace", ws, "--set", "default").stdout
    )
    assert _cli(aws_stack, tmp_path, "pricing", "--workspace", "no-such-ws").returncode == 1

    dry = _cli(
        aws_stack, tmp_path, "reprocess", "--workspace", ws, "--error-code", "INVALID_VIDEO", "--dry-run"
    )
    assert dry.returncode == 0 and f"{job['id']}: would be re-queued" in dry.stdout, dry.stderr
    assert dry.stderr.splitlines()[-1] == "reprocess: 1/1 (100%)"  # in a pipe: plain progress lines
    assert tenant.api.job(job["id"])["status"] == "failed"
    none = _cli(aws_stack, tmp_path, "reprocess", "--workspace", ws, "--since", "2999-01-01T00:00:00Z")
    assert "0 failed job(s) matched" in none.stdout
    assert _cli(aws_stack, tmp_path, "reprocess", "--workspace", ws, "--since", "soon").returncode == 1

    aws_stack.client("s3").put_object(Bucket=aws_stack.env["R2_BUCKET"], Key=job["inputFileKey"], Body=clip)
    free = _cli(aws_stack, tmp_path, "reprocess", "--workspace", ws, "--free")
    assert free.returncode == 0 and "re-queued 1; 0 credit(s) charged" in free.stdout, (
        free.stdout + free.stderr
    )
    worker.run_once()
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed" and done["attempts"][1]["trigger"] == "reprocess"
    assert tenant.api.credits() == 9  # the operator paid
    ledger = [(e["delta"], e["reason"]) for e in tenant.api.get("/credits/ledger").json()["entries"]]
    assert ledger[:2] in ([(1, "operator_grant"), (-1, "retry")], [(-1, "retry"), (1, "operator_grant")])
    check_invariants(tenant)


def test_a_reprocess_message_on_the_queue_requeues_and_a_bad_one_goes_to_the_dlq(
    tenant: Tenant, aws_stack: AwsStack, worker: Workers, tmp_path: Path
) -> None:
    worker.stop()
    job = tenant.api.submit(b"not a video" * 50)
    worker.run_once()
    sqs, url = aws_stack.client("sqs"), aws_stack.env["JOBS_QUEUE_URL"]
    _purge(sqs, aws_stack.env["JOBS_DLQ_URL"])
    bad = json.dumps({"type": "reprocess", "workspaceId": tenant.workspace_id, "free": "please"})
    good = json.dumps({"type": "reprocess", "workspaceId": tenant.workspace_id, "errorCode": "INVALID_VIDEO"})
    sqs.send_message(QueueUrl=url, MessageBody=bad)
    sqs.send_message(QueueUrl=url, MessageBody=good)
    worker.run_once()  # the re-queued job fails again (still not a video): one more paid attempt
    detail = tenant.api.job(job["id"])
    assert [a["trigger"] for a in detail["attempts"]] == ["initial", "reprocess"]
    assert tenant.api.credits() == 8
    dead = [json.loads(line)["body"] for line in _cli(aws_stack, tmp_path, "dlq", "list").stdout.splitlines()]
    assert dead == [bad]
    _purge(sqs, aws_stack.env["JOBS_DLQ_URL"])
    check_invariants(tenant)
