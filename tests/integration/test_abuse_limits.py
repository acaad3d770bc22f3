"""Abuse limits on the real local stack: the per-workspace cap on jobs queued or processing
(MAX_ACTIVE_JOBS), the per-user rate limit on creating jobs, and the request body limit.

The cap is part of the charge's own transaction (a counter on the workspace item, guarded), so it
holds under concurrency: proven here on DynamoDB Local with many starts and retries at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import uuid
from collections import Counter
from typing import Any

import pytest
import requests

from chalicelib.config import Settings
from chalicelib.domain import (
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    QueueMessage,
    Role,
    Trigger,
    Workspace,
    utcnow,
)
from chalicelib.errors import ActiveJobsLimitError
from chalicelib.lifecycle import PricingBasis, transitions
from chalicelib.processing.contention import with_contention
from tests.support.api import Tenant, new_tenant, repository
from tests.support.lifecycle import claim, claim_and_fail, complete
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration
NOT_A_VIDEO = b"this is not a video at all" * 40
USER = "cap-user"


def _workspace(credits: int) -> str:
    ws, now = f"ws-cap-{uuid.uuid4().hex[:8]}", utcnow()
    repo = repository()
    repo.commit(
        transitions.open_workspace(
            Workspace(ws, ws, credits), LedgerEntry(ws, credits, LedgerReason.GRANT), now
        )
    )
    repo.commit(transitions.add_member(Membership(USER, ws, Role.OWNER), now))
    return ws


def _uploading(ws: str) -> Job:
    now, job_id = utcnow(), str(uuid.uuid4())
    job = Job(job_id, ws, JobStatus.UPLOADING, "a.mp4", "video/mp4", 10, f"k/{job_id}", now, now)
    repository().commit(transitions.create_job(job))
    return job


def _outcome(action: Any) -> str:
    try:
        with_contention(action)
    except ActiveJobsLimitError:
        return "cap"
    return "queued"


def test_starts_and_retries_at_once_never_pass_the_cap(aws_stack: AwsStack) -> None:
    # GIVEN a workspace with 6 failed jobs and 14 uploaded ones, and a cap of 8
    repo, cap = repository(), 8
    ws = _workspace(credits=100)
    failed = []
    for _ in range(6):
        job = _uploading(ws)
        repo.commit(transitions.start(job, USER, utcnow()))
        claim_and_fail(repo, QueueMessage(job.id, ws, 1))
        stored = repo.get_job(job.id)
        assert stored is not None
        failed.append(stored)
    waiting = [_uploading(ws) for _ in range(14)]
    before = repo.get_workspace(ws)
    assert before is not None and before.active_jobs == 0
    # WHEN all 20 are started or retried at the same moment
    basis = PricingBasis.assumed(Settings().retry_pricing)

    def start(job: Job) -> str:
        return _outcome(lambda: repo.commit(transitions.start(job, USER, utcnow(), cap=cap)))

    def retry(job: Job) -> str:
        t = transitions.retry([job], basis, Trigger.MANUAL, USER, USER, utcnow(), cap=cap)
        return _outcome(lambda: repo.commit(t))

    with cf.ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(start, j) for j in waiting] + [pool.submit(retry, j) for j in failed]
        outcomes = Counter(f.result() for f in futures)
    # THEN exactly the cap's worth were queued, and only they were charged
    assert outcomes == {"queued": cap, "cap": 20 - cap}
    after = repo.get_workspace(ws)
    assert after is not None and after.active_jobs == cap
    assert after.credits == before.credits - cap == repo.ledger_sum(ws)
    queued = [j for j in (repo.get_job(x.id) for x in waiting + failed) if j and j.status == JobStatus.QUEUED]
    assert len(queued) == cap


# --- through the API ------------------------------------------------------------------------------
@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=10)


def _call(client: Any, tenant: Tenant, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {tenant.api.token}", "Content-Type": "application/json"}
    return getattr(client.http, method)(path, headers=headers, body=json.dumps(body or {}))


def _created(client: Any, tenant: Tenant) -> dict[str, Any]:
    r = _call(
        client,
        tenant,
        "post",
        "/jobs",
        {"filename": "a.mp4", "contentType": "video/mp4", "size": len(NOT_A_VIDEO)},
    )
    assert r.status_code == 201, r.body
    created = json.loads(r.body)
    put = requests.put(
        created["upload"]["url"], data=NOT_A_VIDEO, headers=created["upload"]["headers"], timeout=30
    )
    assert put.status_code == 200
    return dict(created["job"])


def test_past_the_cap_start_and_retry_answer_429_with_retry_after_and_charge_nothing(
    tenant: Tenant, in_process: Any
) -> None:
    client = in_process(settings=Settings(max_active_jobs=2))
    jobs = [_created(client, tenant) for _ in range(3)]
    assert [_call(client, tenant, "post", f"/jobs/{j['id']}/start").status_code for j in jobs[:2]] == [
        202,
        202,
    ]
    before = tenant.api.credits()

    refused = _call(client, tenant, "post", f"/jobs/{jobs[2]['id']}/start")
    assert refused.status_code == 429, refused.body
    assert json.loads(refused.body)["code"] == "TOO_MANY_REQUESTS"
    assert refused.headers["Retry-After"] == "60"
    assert tenant.api.credits() == before and tenant.api.job(jobs[2]["id"])["status"] == "uploading"

    # One of the two fails (it leaves the active jobs): the third starts; retrying the failed one
    # would make three: 429, nothing charged.
    repo = repository()
    claim_and_fail(repo, QueueMessage(jobs[0]["id"], tenant.workspace_id, 1))
    assert _call(client, tenant, "post", f"/jobs/{jobs[2]['id']}/start").status_code == 202
    before = tenant.api.credits()
    again = _call(client, tenant, "post", f"/jobs/{jobs[0]['id']}/retry")
    assert again.status_code == 429 and "Retry-After" in again.headers
    assert tenant.api.credits() == before and tenant.api.job(jobs[0]["id"])["status"] == "failed"
    # Completed: the slot is free again and the retry goes through.
    assert claim(repo, QueueMessage(jobs[1]["id"], tenant.workspace_id, 1))
    assert complete(repo, QueueMessage(jobs[1]["id"], tenant.workspace_id, 1))
    assert _call(client, tenant, "post", f"/jobs/{jobs[0]['id']}/retry").status_code == 200


def test_a_batch_retry_queues_what_fits_under_the_cap_and_reports_the_rest(
    tenant: Tenant, in_process: Any
) -> None:
    client = in_process(settings=Settings(max_active_jobs=2))
    repo, failed = repository(), []
    for _ in range(3):
        job = _created(client, tenant)
        assert _call(client, tenant, "post", f"/jobs/{job['id']}/start").status_code == 202
        claim_and_fail(repo, QueueMessage(job["id"], tenant.workspace_id, 1))
        failed.append(job["id"])
    _call(client, tenant, "post", f"/jobs/{_created(client, tenant)['id']}/start")  # 1 of 2 in use
    before = tenant.api.credits()

    r = _call(client, tenant, "post", "/jobs/retry", {"jobIds": failed})

    assert r.status_code == 200, r.body
    body = json.loads(r.body)
    assert [x["success"] for x in body["results"]] == [True, False, False]
    assert {x["code"] for x in body["results"][1:]} == {"TOO_MANY_REQUESTS"}
    assert body["creditsCharged"] == 1 and tenant.api.credits() == before - 1
    assert [tenant.api.job(j)["status"] for j in failed] == ["queued", "failed", "failed"]


def test_creating_jobs_is_rate_limited_per_user(
    aws_stack: AwsStack, api_server: str, in_process: Any
) -> None:
    one, two = new_tenant(aws_stack, api_server), new_tenant(aws_stack, api_server)
    client = in_process(settings=Settings(rate_limit_requests=2, rate_limit_window_seconds=3600))
    body = {"filename": "a.mp4", "contentType": "video/mp4", "size": 10}
    answers = [_call(client, one, "post", "/jobs", body) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert json.loads(answers[2].body)["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 3600
    assert _call(client, two, "post", "/jobs", body).status_code == 201  # another user: their own count
    jobs = one.api.get("/jobs").json()["jobs"]
    assert len(jobs) == 2  # the refused one made nothing


def test_a_body_over_the_limit_is_413_before_any_work(api_server: str) -> None:
    big = b'{"filename": "' + b"a" * (70 * 1024) + b'"}'
    for path in ("/jobs", "/webhooks", "/notifications/unsubscribe?token=x"):
        # no token: nothing is checked before the size (a 401 would mean the token was)
        r = requests.post(
            api_server + path, data=big, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert r.status_code == 413, (path, r.status_code, r.text[:200])
        assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
