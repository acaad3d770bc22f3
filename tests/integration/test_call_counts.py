"""How many AWS calls each hot route makes, counted with botocore event hooks (a count is
deterministic, unlike a time). The routes run in-process (Chalice's test client) on the real
local stack, so every call of the route's code is seen."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import bootstrap
from chalicelib.domain import QueueMessage, utcnow
from chalicelib.errors import InvalidVideoError
from chalicelib.processing import worker
from chalicelib.processing.context import Services
from tests.support.api import Tenant, new_tenant, repository
from tests.support.aws_calls import counting
from tests.support.fakes import ScriptedTranscoder
from tests.support.lifecycle import claim, fail
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration

NOT_A_VIDEO = b"this is not a video at all" * 40


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=20)


@pytest.fixture(scope="module")
def client(aws_stack: AwsStack) -> Client:
    import app

    return Client(app.app)


def calls(
    client: Client, tenant: Tenant, method: str, path: str, body: Any = None, **headers: str
) -> Counter[str]:
    h = {"Authorization": f"Bearer {tenant.api.token}", "Content-Type": "application/json", **headers}
    with counting(bootstrap.services()) as seen:
        if method == "GET":
            r = client.http.get(path, headers=h)
        else:
            r = client.http.post(path, headers=h, body=json.dumps(body or {}))
    assert r.status_code < 300, r.body
    return seen


def failed(tenant: Tenant) -> dict[str, Any]:
    job = tenant.api.submit(NOT_A_VIDEO)
    ref = QueueMessage(job["id"], job["workspaceId"], job["attempt"])
    assert claim(repository(), ref, utcnow(), utcnow())
    assert fail(repository(), ref, "bad")
    return job


ONE_CHARGE = Counter(
    {"ddb:GetItem": 1, "s3:HeadObject": 1, "ddb:TransactWriteItems": 1, "sqs:SendMessage": 1}
)


def test_start_makes_four_calls(client: Client, tenant: Tenant) -> None:
    job = tenant.api.create(NOT_A_VIDEO)
    assert calls(client, tenant, "POST", f"/jobs/{job['id']}/start") == ONE_CHARGE


# A retry decides its price under the deployment's RETRY_PRICING, and its transaction requires
# the workspace to have no other override: no read of the workspace on the way to success.
PRICED = ONE_CHARGE


def test_retry_makes_four_calls(client: Client, tenant: Tenant) -> None:
    job = failed(tenant)
    assert calls(client, tenant, "POST", f"/jobs/{job['id']}/retry") == PRICED


def test_a_key_adds_one_read_of_its_answer(client: Client, tenant: Tenant) -> None:
    job = failed(tenant)
    seen = calls(client, tenant, "POST", f"/jobs/{job['id']}/retry", **{"Idempotency-Key": str(uuid.uuid4())})
    assert seen == PRICED + Counter({"ddb:GetItem": 1})


def test_a_batch_reads_its_jobs_in_one_call(client: Client, tenant: Tenant) -> None:
    jobs = [failed(tenant) for _ in range(5)]
    seen = calls(client, tenant, "POST", "/jobs/retry", {"jobIds": [j["id"] for j in jobs]})
    assert seen == Counter(
        {
            "ddb:Query": 1,  # the caller's workspace
            "ddb:BatchGetItem": 1,  # the jobs
            "s3:HeadObject": 5,
            "ddb:TransactWriteItems": 1,
            "sqs:SendMessage": 5,
            "ddb:GetItem": 2,  # the workspace's pricing; the balance for the answer (best effort)
        }
    )


def test_me_reads_the_workspaces_in_one_call(client: Client, tenant: Tenant) -> None:
    assert calls(client, tenant, "GET", "/me") == Counter({"ddb:Query": 1, "ddb:BatchGetItem": 1})


class Refusing:
    def render(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidVideoError()


def worker_services(transcoder: Any, tmp_path: Path) -> Services:
    real = bootstrap.services()
    settings = real.settings.model_copy(update={"work_dir": str(tmp_path)})
    return Services(settings, real.repo, real.store, real.queue, transcoder)


def test_the_worker_does_not_read_the_job_after_its_claim(tenant: Tenant, tmp_path: Path) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    svc = worker_services(ScriptedTranscoder(), tmp_path)
    with counting(svc) as seen:
        assert worker.process(svc, QueueMessage(job["id"], job["workspaceId"], 1)) == worker.Handled.COMPLETED
    # claim, HEAD of the input (its key comes from the message), the uploads (the output, the
    # poster, the thumbnail sheet and its WebVTT index; issue 16), complete. With
    # TRANSCODE_INPUT=stream the input's bytes are fetched as the transcoder reads them: this one
    # reads none, so there is no GET
    assert seen == Counter({"ddb:TransactWriteItems": 2, "s3:HeadObject": 1, "s3:PutObject": 4})


def test_only_a_failure_reads_the_job(tenant: Tenant, tmp_path: Path) -> None:
    job = tenant.api.submit(NOT_A_VIDEO)
    svc = worker_services(Refusing(), tmp_path)
    with counting(svc) as seen:
        assert worker.process(svc, QueueMessage(job["id"], job["workspaceId"], 1)) == worker.Handled.FAILED
    assert seen == Counter({"ddb:TransactWriteItems": 2, "s3:HeadObject": 1, "ddb:GetItem": 1})
