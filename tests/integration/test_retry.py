"""Retrying failed jobs (issue 3) on DynamoDB Local, through the HTTP API and Chalice's test client."""

from __future__ import annotations

import concurrent.futures as cf
import json
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import requests

from chalicelib import bootstrap
from chalicelib.domain import QueueMessage, utcnow
from chalicelib.errors import QueueSendError
from chalicelib.processing import accounts
from chalicelib.processing.context import Services
from devstack.lambda_events import scheduled_event
from tests.support.api import Api, Tenant, new_tenant, repository
from tests.support.fakes import Clock
from tests.support.lifecycle import claim, fail
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration

SCHEDULED = scheduled_event("vidproc-sweep")
NOT_A_VIDEO = b"this is not a video at all" * 40
FAILED_ERROR = "The file is not a readable video"


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=10)


def fail_job(job: dict[str, Any], error: str = FAILED_ERROR) -> None:
    """What the worker does on failure, without running it: claim the attempt, record the failure."""
    repo = repository()
    ref = QueueMessage(job["id"], job["workspaceId"], job["attempt"])
    assert claim(repo, ref, utcnow(), utcnow())
    assert fail(repo, ref, error, "INVALID_VIDEO", "ffmpeg said no")


def failed_jobs(tenant: Tenant, count: int, data: bytes = NOT_A_VIDEO) -> list[dict[str, Any]]:
    jobs = []
    for _ in range(count):
        job = tenant.api.submit(data)
        fail_job(job)
        jobs.append(job)
    return jobs


def put_object(stack: AwsStack, key: str, data: bytes) -> None:
    stack.client("s3").put_object(Bucket=stack.env["R2_BUCKET"], Key=key, Body=data, ContentType="video/mp4")


def ledger(api: Api) -> list[tuple[int, str]]:
    return [(e["delta"], e["reason"]) for e in api.get("/credits/ledger").json()["entries"]]


def err(r: requests.Response) -> tuple[int, str, str]:
    body = r.json()
    return r.status_code, body["code"], body["message"]


# --- the seed's test cases -------------------------------------------------------------------


def test_case_1_successful_retry_requeues_and_costs_one_credit(tenant: Tenant) -> None:
    [job] = failed_jobs(tenant, 1)
    before = tenant.api.credits()
    r = tenant.api.post(f"/jobs/{job['id']}/retry")
    assert (r.status_code, r.json()) == (200, {"success": True, "jobId": job["id"], "creditsCharged": 1})
    after = tenant.api.job(job["id"])
    assert after["status"] == "queued"
    assert tenant.api.credits() == before - 1
    # the seed's reset: cleared...
    assert after["error"] is None and after["errorCode"] is None
    assert after["completedAt"] is None and after["outputFileKey"] is None
    # ...and preserved
    for kept in ("inputFileKey", "originalFilename", "createdAt"):
        assert after[kept] == job[kept]
    assert (after["attempt"], after["retryCount"]) == (2, 1)
    attempts = after["attempts"]
    assert [(a["n"], a["trigger"], a["creditsCharged"], a["outcome"]) for a in attempts] == [
        (1, "initial", 1, "failed"),
        (2, "manual", 1, "queued"),
    ]
    assert attempts[0]["error"] == FAILED_ERROR  # the earlier attempt keeps its error
    assert ledger(tenant.api)[0] == (-1, "retry")


def test_case_2_insufficient_credits(tenant: Tenant) -> None:
    [job] = failed_jobs(tenant, 1)
    accounts.set_credits(repository(), tenant.workspace_id, 0)
    r = tenant.api.post(f"/jobs/{job['id']}/retry")
    assert err(r) == (403, "FORBIDDEN", "Insufficient credits. Please purchase more credits to retry.")
    assert tenant.api.credits() == 0
    assert tenant.api.job(job["id"])["status"] == "failed"


def test_case_3_only_failed_jobs_can_be_retried(tenant: Tenant) -> None:
    uploading = tenant.api.create(NOT_A_VIDEO)
    queued = tenant.api.submit(NOT_A_VIDEO)
    for job in (uploading, queued):
        r = tenant.api.post(f"/jobs/{job['id']}/retry")
        assert err(r) == (400, "BAD_REQUEST", "Only failed jobs can be retried")
    assert tenant.api.credits() == 9


def test_case_3_a_completed_job_cannot_be_retried(tenant: Tenant, clip: bytes, worker: Workers) -> None:
    job = tenant.api.submit(clip)
    assert tenant.api.wait_for(job["id"], "completed", "failed")["status"] == "completed"
    assert err(tenant.api.post(f"/jobs/{job['id']}/retry")) == (
        400,
        "BAD_REQUEST",
        "Only failed jobs can be retried",
    )
    assert tenant.api.credits() == 9


def test_case_4_a_retried_job_that_fails_again_can_be_retried_again(tenant: Tenant, worker: Workers) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    assert tenant.api.wait_for(job["id"], "failed")["error"] == FAILED_ERROR
    for expected_balance in (8, 7):
        assert tenant.api.post(f"/jobs/{job['id']}/retry").status_code == 200
        again = tenant.api.wait_for(job["id"], "failed")
        assert again["error"] == FAILED_ERROR
        assert tenant.api.credits() == expected_balance
    final = tenant.api.job(job["id"])
    assert final["retryCount"] == 2
    assert [(a["n"], a["trigger"], a["outcome"]) for a in final["attempts"]] == [
        (1, "initial", "failed"),
        (2, "manual", "failed"),
        (3, "manual", "failed"),
    ]
    assert all(a["error"] == FAILED_ERROR and a["finishedAt"] for a in final["attempts"])


def test_a_failed_job_retried_after_a_fix_completes(
    tenant: Tenant, clip: bytes, worker: Workers, aws_stack: AwsStack
) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    assert tenant.api.wait_for(job["id"], "failed")["status"] == "failed"
    put_object(aws_stack, job["inputFileKey"], clip)  # e.g. the transient cause went away
    assert tenant.api.post(f"/jobs/{job['id']}/retry").status_code == 200
    done = tenant.api.wait_for(job["id"], "completed", "failed")
    assert done["status"] == "completed" and done["outputFileKey"].endswith("attempt-2.mp4")
    assert tenant.api.credits() == 8


# --- validations -----------------------------------------------------------------------------


def test_retry_validations_answer_with_the_seeds_status_code_and_message(
    aws_stack: AwsStack, tenant: Tenant
) -> None:
    [job] = failed_jobs(tenant, 1)
    stranger = new_tenant(aws_stack, tenant.api.base)
    assert err(stranger.api.post(f"/jobs/{job['id']}/retry")) == (404, "NOT_FOUND", "Job not found")
    assert err(tenant.api.post(f"/jobs/{uuid.uuid4()}/retry")) == (404, "NOT_FOUND", "Job not found")
    code, name, message = err(tenant.api.post("/jobs/not-a-uuid/retry"))
    assert (code, name) == (400, "BAD_REQUEST") and "UUID" in message
    r = requests.post(f"{tenant.api.base}/jobs/{job['id']}/retry", timeout=10)
    assert err(r)[:2] == (401, "UNAUTHORIZED")
    aws_stack.client("s3").delete_object(Bucket=aws_stack.env["R2_BUCKET"], Key=job["inputFileKey"])
    assert err(tenant.api.post(f"/jobs/{job['id']}/retry")) == (
        409,
        "CONFLICT",
        "The original upload no longer exists. Please upload the video again.",
    )
    assert tenant.api.credits() == 9 and stranger.api.credits() == 10
    assert tenant.api.job(job["id"])["status"] == "failed"


def test_retry_with_the_workspace_named_in_the_body(tenant: Tenant) -> None:
    [job] = failed_jobs(tenant, 1)
    assert tenant.api.post(f"/jobs/{job['id']}/retry", {"workspaceId": "another"}).status_code == 404
    assert (
        tenant.api.post(f"/jobs/{job['id']}/retry", {"workspaceId": tenant.workspace_id}).status_code == 200
    )


# --- concurrency ---------------------------------------------------------------------------------


def test_50_concurrent_retries_of_one_job_charge_exactly_once(tenant: Tenant) -> None:
    [job] = failed_jobs(tenant, 1)
    before = tenant.api.credits()
    with cf.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: tenant.api.post(f"/jobs/{job['id']}/retry"), range(50)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 400: 49}, statuses
    assert {r.json()["message"] for r in responses if r.status_code == 400} == {
        "Only failed jobs can be retried"
    }
    assert tenant.api.credits() == before - 1
    assert [a["n"] for a in tenant.api.job(job["id"])["attempts"]] == [1, 2]


def test_100_concurrent_retries_over_40_jobs_with_10_credits(tenant: Tenant, aws_stack: AwsStack) -> None:
    accounts.add_credits(repository(), tenant.workspace_id, 40)
    jobs = failed_jobs(tenant, 40)
    accounts.set_credits(repository(), tenant.workspace_id, 10)
    targets = [jobs[i % 40]["id"] for i in range(100)]
    with cf.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda jid: (jid, tenant.api.post(f"/jobs/{jid}/retry")), targets))
    winners = [jid for jid, r in responses if r.status_code == 200]
    assert len(winners) == 10 and len(set(winners)) == 10  # no job queued twice
    losers = Counter((r.status_code, r.json()["code"]) for _, r in responses if r.status_code != 200)
    assert set(losers) <= {(400, "BAD_REQUEST"), (403, "FORBIDDEN")}, losers
    assert tenant.api.credits() == 0
    queued = tenant.api.get("/jobs?status=queued&limit=100").json()["jobs"]
    assert sorted(j["id"] for j in queued) == sorted(winners)
    retry_entries = [e for e in ledger(tenant.api) if e[1] == "retry"]
    assert len(retry_entries) == 10


# --- idempotency ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_twice_charges_once_and_answers_the_same(tenant: Tenant) -> None:
    [job] = failed_jobs(tenant, 1)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = tenant.api.post(f"/jobs/{job['id']}/retry", headers=headers)
    second = tenant.api.post(f"/jobs/{job['id']}/retry", headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"success": True, "jobId": job["id"], "creditsCharged": 1}
    assert tenant.api.credits() == 8
    # a new key is a new request: the job is queued now, so it is refused
    third = tenant.api.post(f"/jobs/{job['id']}/retry", headers={"Idempotency-Key": str(uuid.uuid4())})
    assert third.status_code == 400


def test_concurrent_requests_with_one_idempotency_key_charge_once(tenant: Tenant) -> None:
    [job] = failed_jobs(tenant, 1)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    with cf.ThreadPoolExecutor(10) as pool:
        responses = list(
            pool.map(lambda _: tenant.api.post(f"/jobs/{job['id']}/retry", headers=headers), range(10))
        )
    # the key's answer is written by the charge's transaction: the others replay it, none waits
    assert [r.status_code for r in responses] == [200] * 10
    assert all(r.json() == {"success": True, "jobId": job["id"], "creditsCharged": 1} for r in responses)
    assert tenant.api.credits() == 8


def test_a_key_reused_for_another_job_is_refused(tenant: Tenant) -> None:
    one, two = failed_jobs(tenant, 2)
    headers = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
    assert tenant.api.post(f"/jobs/{one['id']}/retry", headers=headers).status_code == 200
    r = tenant.api.post(f"/jobs/{two['id']}/retry", headers=headers)
    assert err(r)[:2] == (400, "BAD_REQUEST")
    assert tenant.api.job(two["id"])["status"] == "failed"


# --- queueing failures: nothing lost, nothing stuck ------------------------------------------------


class FailingQueue:
    def send(self, message: QueueMessage) -> None:
        raise QueueSendError()


class Crash(BaseException):
    """The process dies between the commit and the send (not an Exception: nothing catches it)."""


class CrashingQueue:
    def send(self, message: QueueMessage) -> None:
        raise Crash()


def test_a_failed_send_refunds_the_credit_and_leaves_the_job_retryable(
    tenant: Tenant, in_process: Any
) -> None:
    [job] = failed_jobs(tenant, 1)
    client = in_process(queue=FailingQueue())
    headers = {"Authorization": f"Bearer {tenant.api.token}", "Content-Type": "application/json"}
    r = client.http.post(f"/jobs/{job['id']}/retry", headers=headers, body="{}")
    assert r.status_code == 503
    assert json.loads(r.body) == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "Could not queue the retry. Your credit was refunded.",
    }
    bootstrap.override(None)
    after = tenant.api.job(job["id"])
    assert after["status"] == "failed"
    assert after["error"] == "Could not queue the retry. Your credit was refunded."
    assert tenant.api.credits() == 9
    assert ledger(tenant.api)[:2] in (
        [(1, "retry_refund"), (-1, "retry")],
        [(-1, "retry"), (1, "retry_refund")],
    )
    assert tenant.api.post(f"/jobs/{job['id']}/retry").status_code == 200  # and it can be retried
    assert tenant.api.credits() == 8


def test_a_crash_after_the_commit_is_requeued_by_the_sweeper_and_completes_once(
    tenant: Tenant, in_process: Any, worker: Workers, aws_stack: AwsStack, clip: bytes
) -> None:
    worker.stop()
    [job] = failed_jobs(tenant, 1)
    put_object(aws_stack, job["inputFileKey"], clip)
    client = in_process(queue=CrashingQueue())
    headers = {"Authorization": f"Bearer {tenant.api.token}", "Content-Type": "application/json"}
    with pytest.raises(Crash):
        client.http.post(f"/jobs/{job['id']}/retry", headers=headers, body="{}")
    bootstrap.override(None)
    assert tenant.api.job(job["id"])["status"] == "queued"  # committed and charged, never sent
    assert tenant.api.credits() == 8
    worker.run_once()  # no message was sent: nothing picks the job up
    assert tenant.api.job(job["id"])["status"] == "queued"

    import app

    real = bootstrap.services()
    transcodes = []

    class Counting:
        def render(self, *args: Any, **kwargs: Any) -> Any:
            transcodes.append(1)
            return real.transcoder.render(*args, **kwargs)  # type: ignore[union-attr]

    prompt = real.settings.model_copy(update={"sweeper_requeue_after_seconds": 1})
    later = Services(prompt, real.repo, real.store, real.queue, Counting())
    later.clock = lambda: utcnow() + timedelta(seconds=2)  # past the sweeper's wait
    bootstrap.override(later)
    try:
        swept = app.sweep_stuck_jobs(SCHEDULED, None)
        assert (swept["requeued"], swept["interrupted"]) == (1, 0)
        worker.run_once()
        app.sweep_stuck_jobs(SCHEDULED, None)
        worker.run_once()
    finally:
        bootstrap.override(None)
    done = tenant.api.job(job["id"])
    assert done["status"] == "completed"
    assert len(transcodes) == 1
    assert tenant.api.credits() == 8


def test_a_worker_that_died_mid_job_is_retried_automatically_by_the_sweeper(
    tenant: Tenant, in_process: Any
) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    repo = repository()
    ref = QueueMessage(job["id"], job["workspaceId"], 1)
    assert claim(repo, ref, utcnow(), utcnow())  # a lease that has already run out
    import app

    assert app.sweep_stuck_jobs(SCHEDULED, None)["interrupted"] >= 1
    after = tenant.api.job(job["id"])
    assert (after["status"], after["attempt"]) == ("queued", 2)
    assert after["attempts"][0]["errorCode"] == "WORKER_INTERRUPTED"
    assert (after["attempts"][1]["trigger"], after["attempts"][1]["creditsCharged"]) == ("auto", 0)
    assert tenant.api.credits() == 9


# --- batch retry ---------------------------------------------------------------------------------


def test_batch_retry_charges_exactly_for_the_jobs_it_requeues(
    tenant: Tenant, clip: bytes, worker: Workers
) -> None:
    completed = tenant.api.submit(clip)
    assert tenant.api.wait_for(completed["id"], "completed", "failed")["status"] == "completed"
    worker.stop()
    failed = failed_jobs(tenant, 3)
    unknown = str(uuid.uuid4())
    ids = [failed[0]["id"], completed["id"], failed[1]["id"], unknown, failed[2]["id"]]
    before = tenant.api.credits()
    r = tenant.api.post("/jobs/retry", {"jobIds": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["creditsCharged"] == 3 and body["credits"] == before - 3 == tenant.api.credits()
    outcome = {x["jobId"]: (x["success"], x.get("code"), x.get("message")) for x in body["results"]}
    assert all(
        x == {"jobId": x["jobId"], "success": True, "creditsCharged": 1}
        for x in body["results"]
        if x["success"]
    )
    assert [x["jobId"] for x in body["results"]] == ids
    assert outcome[completed["id"]] == (False, "BAD_REQUEST", "Only failed jobs can be retried")
    assert outcome[unknown] == (False, "NOT_FOUND", "Job not found")
    for job in failed:
        assert outcome[job["id"]][0] is True
        detail = tenant.api.job(job["id"])
        assert detail["status"] == "queued" and detail["attempts"][-1]["trigger"] == "batch"


def test_batch_retry_without_enough_credits_retries_nothing(tenant: Tenant) -> None:
    failed = failed_jobs(tenant, 3)
    accounts.set_credits(repository(), tenant.workspace_id, 2)
    r = tenant.api.post("/jobs/retry", {"jobIds": [j["id"] for j in failed]})
    assert err(r) == (403, "FORBIDDEN", "Insufficient credits. Please purchase more credits to retry.")
    assert tenant.api.credits() == 2
    assert all(tenant.api.job(j["id"])["status"] == "failed" for j in failed)


@pytest.mark.parametrize(
    ("ids", "words"),
    [([], "at least one"), ([str(uuid.uuid4()) for _ in range(26)], "At most 25"), (["nope"], "UUID")],
)
def test_batch_retry_rejects_bad_lists(tenant: Tenant, ids: list[str], words: str) -> None:
    code, name, message = err(tenant.api.post("/jobs/retry", {"jobIds": ids}))
    assert (code, name) == (400, "BAD_REQUEST") and words in message


def test_batch_retry_is_idempotent_with_a_key(tenant: Tenant) -> None:
    failed = failed_jobs(tenant, 2)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    payload = {"jobIds": [j["id"] for j in failed]}
    first = tenant.api.post("/jobs/retry", payload, headers=headers)
    second = tenant.api.post("/jobs/retry", payload, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert tenant.api.credits() == 6


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[QueueMessage] = []

    def send(self, message: QueueMessage, delay_seconds: int = 0) -> None:
        self.sent.append(message)

    def extend_visibility(self, receipt_handle: str, seconds: int) -> None:
        pass

    def dead_letter(self, body: str, reason: str) -> None:
        pass


def test_the_sweeper_backs_off_between_resends_of_a_job_nobody_claims(tenant: Tenant) -> None:
    from chalicelib.processing.sweeper import sweep

    job = tenant.api.submit(NOT_A_VIDEO)  # queued; no worker runs in this test
    real = bootstrap.services()
    queue, clock = RecordingQueue(), Clock()
    svc = Services(
        real.settings.model_copy(update={"sweeper_requeue_after_seconds": 1}),
        real.repo,
        real.store,
        queue,
        clock=clock,
    )
    mine = QueueMessage(job["id"], tenant.workspace_id, 1)

    def resent_now() -> bool:
        before = queue.sent.count(mine)
        sweep(svc)
        return queue.sent.count(mine) > before

    clock.advance(1.1)
    assert resent_now()  # the usual wait (1 s) has passed
    clock.advance(1.1)
    assert not resent_now()  # now it waits 2 s
    clock.advance(1.0)
    assert resent_now()
    stored = repository().get_job(job["id"])
    assert stored is not None and stored.resends == 2 and stored.status.value == "queued"
