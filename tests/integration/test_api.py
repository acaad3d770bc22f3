"""The HTTP API through `chalice local`, on DynamoDB Local and the moto server (issue 2, section 6)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests

from tests.support.api import Api, Tenant, new_tenant
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000  # bytes only: these tests never transcode


@pytest.fixture
def tenant(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server)


def error(r: requests.Response) -> tuple[int, str, str]:
    body = r.json()
    assert set(body) == {"code", "message"}, body
    return r.status_code, body["code"], body["message"]


def test_health_needs_no_token(api_server: str) -> None:
    r = requests.get(api_server + "/health", timeout=10)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_me_lists_workspaces_with_balances(tenant: Tenant) -> None:
    body = tenant.api.get("/me").json()
    assert body["user"]["email"] == tenant.email
    assert body["workspaces"] == [
        {"id": tenant.workspace_id, "name": tenant.workspace_id, "role": "owner", "credits": 10}
    ]


def test_create_job_returns_a_presigned_put_signed_for_type_and_length(tenant: Tenant) -> None:
    r = tenant.api.post(
        "/jobs", {"filename": "My Holiday (1).mov", "contentType": "video/quicktime", "size": 1234}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    job, upload = body["job"], body["upload"]
    assert job["status"] == "uploading"
    assert job["originalFilename"] == "My Holiday (1).mov"
    assert job["workspaceId"] == tenant.workspace_id
    assert uuid.UUID(job["id"])
    assert "Holiday" not in job["inputFileKey"] and job["id"] in job["inputFileKey"]
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "video/quicktime", "Content-Length": "1234"}
    assert "X-Amz-Expires=900" in upload["url"]
    assert "content-type" in upload["url"].lower() and "content-length" in upload["url"].lower()
    for key in ("outputFileKey", "error", "errorCode", "completedAt"):
        assert job[key] is None
    assert job["attempt"] == 0


@pytest.mark.parametrize(
    ("payload", "status", "code", "words"),
    [
        (
            {"filename": "a.txt", "contentType": "text/plain", "size": 10},
            400,
            "BAD_REQUEST",
            "Only video files",
        ),
        ({"filename": "a.mp4", "contentType": "video/mp4", "size": 0}, 400, "BAD_REQUEST", "empty"),
        (
            {"filename": "a.mp4", "contentType": "video/mp4", "size": 50 * 1024**3 + 1},
            413,
            "PAYLOAD_TOO_LARGE",
            "50 GiB",
        ),
        ({"filename": "a.mp4", "contentType": "video/mp4"}, 400, "BAD_REQUEST", "size"),
        ({"filename": "a.mp4", "contentType": "video/mp4", "size": "big"}, 400, "BAD_REQUEST", "size"),
        ({"filename": "", "contentType": "video/mp4", "size": 3}, 400, "BAD_REQUEST", "filename"),
        ([1, 2], 400, "BAD_REQUEST", "JSON object"),
    ],
)
def test_create_job_rejects_bad_input_clearly(
    tenant: Tenant, payload: object, status: int, code: str, words: str
) -> None:
    r = tenant.api.post("/jobs", payload)
    got = error(r)
    assert got[:2] == (status, code)
    assert words in got[2]


def test_malformed_json_is_a_400_not_a_500(tenant: Tenant) -> None:
    r = tenant.api.call("POST", "/jobs", data=b"{not json", headers={"Content-Type": "application/json"})
    assert error(r) == (400, "BAD_REQUEST", "The request body is not valid JSON")


def test_start_charges_one_credit_and_queues_with_ledger_and_first_attempt(tenant: Tenant) -> None:
    job = tenant.api.create(VIDEO)
    r = tenant.api.post(f"/jobs/{job['id']}/start")
    assert r.status_code == 202, r.text
    assert r.json()["job"]["status"] == "queued"
    assert tenant.api.credits() == 9
    detail = tenant.api.job(job["id"])
    assert [(a["n"], a["trigger"], a["creditsCharged"], a["outcome"]) for a in detail["attempts"]] == [
        (1, "initial", 1, "queued")
    ]
    ledger = tenant.api.get("/credits/ledger").json()["entries"]
    assert [(e["delta"], e["reason"], e["jobId"]) for e in ledger] == [
        (-1, "job_start", job["id"]),
        (10, "grant", None),
    ]


def test_start_twice_charges_once(tenant: Tenant) -> None:
    job = tenant.api.create(VIDEO)
    assert tenant.api.post(f"/jobs/{job['id']}/start").status_code == 202
    r = tenant.api.post(f"/jobs/{job['id']}/start")
    assert error(r)[:2] == (400, "BAD_REQUEST")
    assert tenant.api.credits() == 9


def test_start_without_the_upload_is_refused_and_charges_nothing(tenant: Tenant) -> None:
    r = tenant.api.post("/jobs", {"filename": "a.mp4", "contentType": "video/mp4", "size": 100})
    job_id = r.json()["job"]["id"]
    got = error(tenant.api.post(f"/jobs/{job_id}/start"))
    assert got[:2] == (400, "BAD_REQUEST") and "upload" in got[2].lower()
    assert tenant.api.credits() == 10


def test_start_with_a_different_size_than_declared_is_refused(tenant: Tenant) -> None:
    r = tenant.api.post("/jobs", {"filename": "a.mp4", "contentType": "video/mp4", "size": 100}).json()
    # The signed Content-Length makes a short body fail at R2 or be stored short: start refuses both.
    requests.put(r["upload"]["url"], data=b"x" * 50, headers={"Content-Type": "video/mp4"}, timeout=10)
    got = error(tenant.api.post(f"/jobs/{r['job']['id']}/start"))
    assert got[:2] == (400, "BAD_REQUEST")
    assert tenant.api.credits() == 10


def test_start_with_zero_credits_is_403_and_balance_unchanged(aws_stack: AwsStack, api_server: str) -> None:
    tenant = new_tenant(aws_stack, api_server, credits=0)
    job = tenant.api.create(VIDEO)
    got = error(tenant.api.post(f"/jobs/{job['id']}/start"))
    assert got == (403, "FORBIDDEN", "Insufficient credits. Please purchase more credits.")
    assert tenant.api.credits() == 0
    assert tenant.api.job(job["id"])["status"] == "uploading"


def test_another_workspaces_job_is_404_exactly_like_a_missing_one(
    aws_stack: AwsStack, api_server: str
) -> None:
    owner, stranger = new_tenant(aws_stack, api_server), new_tenant(aws_stack, api_server)
    job = owner.api.create(VIDEO)
    missing = str(uuid.uuid4())
    for path in ("/jobs/{}", "/jobs/{}/download"):
        assert error(stranger.api.get(path.format(job["id"]))) == (404, "NOT_FOUND", "Job not found")
        assert error(stranger.api.get(path.format(missing))) == (404, "NOT_FOUND", "Job not found")
    for path in ("/jobs/{}/start", "/jobs/{}/retry"):
        assert error(stranger.api.post(path.format(job["id"]))) == (404, "NOT_FOUND", "Job not found")
    assert owner.api.credits() == 10 and stranger.api.credits() == 10


def test_download_is_for_completed_jobs_only(tenant: Tenant) -> None:
    job = tenant.api.create(VIDEO)
    got = error(tenant.api.get(f"/jobs/{job['id']}/download"))
    assert got == (400, "BAD_REQUEST", "Only completed jobs can be downloaded")


def test_jobs_list_newest_first_filters_by_status_and_pages(tenant: Tenant) -> None:
    ids = [tenant.api.create(VIDEO)["id"] for _ in range(5)]
    tenant.api.post(f"/jobs/{ids[1]}/start")
    page1 = tenant.api.get("/jobs?limit=2").json()
    page2 = tenant.api.get(f"/jobs?limit=2&cursor={page1['cursor']}").json()
    page3 = tenant.api.get(f"/jobs?limit=2&cursor={page2['cursor']}").json()
    listed = [j["id"] for j in page1["jobs"] + page2["jobs"] + page3["jobs"]]
    assert listed == list(reversed(ids))
    queued = tenant.api.get("/jobs?status=queued").json()["jobs"]
    assert [j["id"] for j in queued] == [ids[1]]
    assert error(tenant.api.get("/jobs?status=exploded"))[:2] == (400, "BAD_REQUEST")
    assert error(tenant.api.get("/jobs?cursor=%%%"))[:2] == (400, "BAD_REQUEST")


def test_workspace_is_inferred_for_one_and_required_for_several(aws_stack: AwsStack, api_server: str) -> None:
    tenant = new_tenant(aws_stack, api_server)
    second = f"{tenant.workspace_id}-b"
    aws_stack.add_user(tenant.email, second, credits=3)
    api = Api(api_server, aws_stack.token(tenant.email))
    got = error(api.get("/credits"))
    assert got[:2] == (400, "BAD_REQUEST") and "workspaceId" in got[2]
    assert api.get(f"/credits?workspaceId={second}").json() == {"workspaceId": second, "credits": 3}
    assert error(api.get("/credits?workspaceId=somebody-else"))[:2] == (404, "NOT_FOUND")


def test_openapi_describes_every_route(api_server: str) -> None:
    doc = requests.get(api_server + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    routes = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert {
        ("/health", "get"),
        ("/me", "get"),
        ("/jobs", "post"),
        ("/jobs", "get"),
        ("/jobs/{jobId}", "get"),
        ("/jobs/{jobId}/start", "post"),
        ("/jobs/{jobId}/download", "get"),
        ("/jobs/{jobId}/retry", "post"),
        ("/jobs/retry", "post"),
        ("/credits", "get"),
        ("/credits/ledger", "get"),
    } <= routes
    assert "CreateJobIn" in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["JobOut"]["properties"].keys() >= {
        "originalFilename",
        "inputFileKey",
        "errorCode",
    }


def test_cors_allows_only_the_frontend_origin(aws_stack: AwsStack, api_server: str) -> None:
    r = requests.options(
        api_server + "/jobs",
        headers={"Origin": aws_stack.web_origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert r.headers["Access-Control-Allow-Origin"] == aws_stack.web_origin
    assert "Idempotency-Key" in r.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    "forged",
    [{"a": 1}, {"id": {"S": "x"}, "workspaceId": {"S": "someone-else"}, "createdKey": {"S": "k"}}],
    ids=["not-a-key", "another-partition"],
)
def test_a_forged_cursor_is_a_400_not_a_500(tenant: Tenant, forged: dict[str, object]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
    for path in ("/jobs", "/jobs?status=failed", "/credits/ledger"):
        sep = "&" if "?" in path else "?"
        assert error(tenant.api.get(f"{path}{sep}cursor={cursor}")) == (
            400,
            "BAD_REQUEST",
            "The cursor is not valid",
        )
