"""One intent, one charge, one true answer, on DynamoDB Local through the routes (in-process, so
that a dependency can fail at exactly the wrong moment).

The Idempotency-Key's answer is written by the charge's own transaction; nothing after the commit
turns a committed charge into an error answer; a refund that cannot be written is reported as
what it is (the job stays queued and the sweeper sends it).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import uuid
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.domain import QueueMessage, RetryPricing, Trigger, utcnow
from chalicelib.errors import QueueSendError, ServiceUnavailableError
from chalicelib.lifecycle import Move, PricingBasis, Transition, transitions
from tests.support import lifecycle
from tests.support.api import Tenant, new_tenant, repository
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration

NOT_A_VIDEO = b"this is not a video at all" * 40


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=10)


class Wrapped:
    """The real repository, with some methods replaced."""

    def __init__(self, real: Any, **overrides: Any) -> None:
        self._real, self._overrides = real, overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name) or getattr(self._real, name)


class QueueFailingFor:
    def __init__(self, *job_ids: str) -> None:
        self.refused, self.real = set(job_ids), bootstrap.services().queue

    def send(self, message: QueueMessage) -> None:
        if message.job_id in self.refused:
            raise QueueSendError()
        self.real.send(message)


def fail(job: dict[str, Any], attempt: int | None = None) -> None:
    repo = repository()
    ref = QueueMessage(job["id"], job["workspaceId"], attempt or job["attempt"])
    assert lifecycle.claim(repo, ref, utcnow(), utcnow())
    assert lifecycle.fail(repo, ref)


def headers(tenant: Tenant, key: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {tenant.api.token}", "Content-Type": "application/json"}
    return h | ({"Idempotency-Key": key} if key else {})


def test_a_batch_whose_balance_read_fails_after_the_commit_answers_200_and_its_key_never_charges_again(
    tenant: Tenant, in_process: Any
) -> None:
    jobs = [tenant.api.submit(NOT_A_VIDEO) for _ in range(2)]
    for job in jobs:
        fail(job)
    real = bootstrap.services().repo
    committed: list[bool] = []

    def commit(transition: Transition) -> None:
        real.commit(transition)
        committed.append(transition.move is Move.RETRY)

    def get_workspace(workspace_id: str) -> Any:
        if any(committed):  # DynamoDB throttles right after the retry's commit
            raise ServiceUnavailableError()
        return real.get_workspace(workspace_id)

    client = in_process(repo=Wrapped(real, commit=commit, get_workspace=get_workspace))
    key, body = str(uuid.uuid4()), json.dumps({"jobIds": [j["id"] for j in jobs]})
    first = client.http.post("/jobs/retry", headers=headers(tenant, key), body=body)
    assert first.status_code == 200, first.body
    assert json.loads(first.body)["creditsCharged"] == 2 and json.loads(first.body)["credits"] is None
    for job in jobs:  # the retries fail again before the client repeats its request
        fail(job, attempt=2)
    again = client.http.post("/jobs/retry", headers=headers(tenant, key), body=body)
    assert again.status_code == 200
    assert json.loads(again.body)["creditsCharged"] == 2
    bootstrap.override(None)
    assert tenant.api.credits() == 10 - 2 - 2  # two starts, one batch: never charged twice


def test_start_with_a_key_twice_charges_once_and_answers_the_same(tenant: Tenant) -> None:
    job = tenant.api.create(NOT_A_VIDEO)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = tenant.api.post(f"/jobs/{job['id']}/start", headers=key)
    second = tenant.api.post(f"/jobs/{job['id']}/start", headers=key)
    assert first.status_code == second.status_code == 202, second.text
    assert first.json() == second.json()
    assert tenant.api.credits() == 9


def test_concurrent_starts_in_one_workspace_all_succeed_under_contention(tenant: Tenant) -> None:
    created = [tenant.api.create(NOT_A_VIDEO) for _ in range(8)]
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda c: tenant.api.post(f"/jobs/{c['id']}/start"), created))
    assert [r.status_code for r in answers] == [202] * 8, [r.text for r in answers if r.status_code != 202]
    assert tenant.api.credits() == 2


def test_a_refunded_retry_frees_its_key(tenant: Tenant, in_process: Any) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    fail(job)
    key = str(uuid.uuid4())
    client = in_process(queue=QueueFailingFor(job["id"]))
    refused = client.http.post(f"/jobs/{job['id']}/retry", headers=headers(tenant, key), body="{}")
    assert refused.status_code == 503
    bootstrap.override(None)
    assert tenant.api.credits() == 9
    again = tenant.api.post(f"/jobs/{job['id']}/retry", headers={"Idempotency-Key": key})
    assert again.status_code == 200 and tenant.api.credits() == 8


def test_a_batch_replay_reports_the_jobs_refunded_after_the_commit(tenant: Tenant, in_process: Any) -> None:
    ok, refused = tenant.api.submit(NOT_A_VIDEO), tenant.api.submit(NOT_A_VIDEO)
    fail(ok)
    fail(refused)
    key, body = str(uuid.uuid4()), json.dumps({"jobIds": [ok["id"], refused["id"]]})
    client = in_process(queue=QueueFailingFor(refused["id"]))
    first = json.loads(client.http.post("/jobs/retry", headers=headers(tenant, key), body=body).body)
    replay = json.loads(client.http.post("/jobs/retry", headers=headers(tenant, key), body=body).body)
    bootstrap.override(None)
    assert first["creditsCharged"] == replay["creditsCharged"] == 1
    assert first["results"] == replay["results"]
    assert [r["success"] for r in replay["results"]] == [True, False]
    assert tenant.api.credits() == 10 - 2 - 1


def test_a_batch_replay_equals_the_first_answer_when_a_free_job_in_it_was_rolled_back(
    tenant: Tenant, in_process: Any
) -> None:
    repo = repository()
    repo.commit(transitions.set_pricing(tenant.workspace_id, RetryPricing.FIRST_FREE, utcnow()))
    free, paid = tenant.api.submit(NOT_A_VIDEO), tenant.api.submit(NOT_A_VIDEO)
    fail(free)
    fail(paid)
    spent = PricingBasis.read(repo.get_workspace(tenant.workspace_id), RetryPricing.FULL)  # type: ignore[arg-type]
    job = repo.get_job(paid["id"])
    assert job is not None
    repo.commit(transitions.retry([job], spent, Trigger.MANUAL, "u", None, utcnow()))  # its free retry ...
    fail(paid, attempt=2)  # ... failed for the input: the next one costs 1
    key, body = str(uuid.uuid4()), json.dumps({"jobIds": [free["id"], paid["id"]]})
    client = in_process(queue=QueueFailingFor(free["id"]))  # the free job's send fails: rolled back
    first = json.loads(client.http.post("/jobs/retry", headers=headers(tenant, key), body=body).body)
    replay = json.loads(client.http.post("/jobs/retry", headers=headers(tenant, key), body=body).body)
    bootstrap.override(None)
    assert first["creditsCharged"] == replay["creditsCharged"] == 1
    assert first["results"] == replay["results"] and [r["success"] for r in replay["results"]] == [
        False,
        True,
    ]
    assert tenant.api.credits() == 10 - 2 - 1
    debits = [e for e in tenant.api.get("/credits/ledger").json()["entries"] if e["reason"] == "retry"]
    assert sum(-e["delta"] for e in debits) == 1  # the real debit


def test_when_the_send_and_the_refund_fail_the_answer_says_deferred(tenant: Tenant, in_process: Any) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    fail(job)
    real = bootstrap.services().repo

    def commit(transition: Transition) -> None:
        if transition.move is Move.UNDO:
            raise ServiceUnavailableError()
        real.commit(transition)

    client = in_process(repo=Wrapped(real, commit=commit), queue=QueueFailingFor(job["id"]))
    r = client.http.post(f"/jobs/{job['id']}/retry", headers=headers(tenant), body="{}")
    bootstrap.override(None)
    assert r.status_code == 200
    assert json.loads(r.body) == {
        "success": True,
        "jobId": job["id"],
        "creditsCharged": 1,
        "delivery": "deferred",
    }
    assert tenant.api.job(job["id"])["status"] == "queued"  # charged and queued: the sweeper sends it
    assert tenant.api.credits() == 8
    fail(job, attempt=2)  # (not left for the sweeper passes of other tests)
