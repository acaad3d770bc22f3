"""Logs are JSON with job and workspace ids, metrics are EMF, and no secret is ever logged."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.api import new_tenant
from tests.support.logs import json_lines
from tests.support.media import make_clip
from tests.support.stack import AwsStack, Workers

pytestmark = pytest.mark.integration


def test_a_full_flow_logs_ids_and_metrics_but_no_secret(
    aws_stack: AwsStack, api_server: str, worker: Workers, tmp_path: Path
) -> None:
    # The worker runs as its own process here, as on Lambda, so its whole output is in its log file.
    worker.stop()
    process = worker.start_process()
    tenant = new_tenant(aws_stack, api_server)
    password = aws_stack._passwords[tenant.email]
    token = str(tenant.api.token)
    clip = make_clip(tmp_path / "c.mp4", seconds=1, width=320, height=240).read_bytes()
    job = tenant.api.submit(clip)
    done = tenant.api.wait_for(job["id"], "completed", "failed")
    assert done["status"] == "completed"
    url = tenant.api.get(f"/jobs/{job['id']}/download").json()["url"]
    requests.get(api_server + "/me", headers={"Authorization": "Bearer " + token[:-4] + "AAAA"}, timeout=10)
    tenant.api.post(f"/jobs/{job['id']}/retry", headers={"Idempotency-Key": "obs-key-1"})

    worker.stop()
    assert process.log_path is not None
    worker_log = process.log_path.read_text()
    api_log = (aws_stack.log_dir / "chalice-local.log").read_text()
    everything = worker_log + api_log

    secrets = {
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "password": password,
        "presigned signature": url.split("X-Amz-Signature=")[1][:32],
        "R2 secret key": aws_stack.env.get("R2_SECRET_ACCESS_KEY", "") or "<unset>",
    }
    leaked = [name for name, value in secrets.items() if len(value) > 6 and value in everything]
    assert leaked == []

    records = json_lines(worker_log)
    mine = [r for r in records if r.get("job_id") == job["id"]]
    assert mine and all(r.get("workspace_id") == tenant.workspace_id for r in mine)
    assert {"attempt claimed", "job completed"} <= {str(r.get("message")) for r in mine}
    metrics = [r for r in records if "_aws" in r]
    names = {m["Name"] for r in metrics for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}  # type: ignore[index]
    assert {"JobsCompleted", "TranscodeSeconds"} <= names
    api_records = json_lines(api_log)
    assert any(r.get("message") == "job started" and r.get("job_id") == job["id"] for r in api_records)
    assert any("JobsStarted" in r for r in api_records)


def test_every_log_line_of_a_request_carries_the_id_it_answers_with(
    aws_stack: AwsStack, api_server: str
) -> None:
    tenant = new_tenant(aws_stack, api_server)
    job = tenant.api.create(b"not a video" * 20)
    started = tenant.api.post(f"/jobs/{job['id']}/start")
    refused = tenant.api.post(f"/jobs/{job['id']}/start")  # already started: an error answer has one too
    ids = [r.headers.get("X-Request-Id") for r in (started, refused)]
    assert all(ids) and len(set(ids)) == 2
    api_log = (aws_stack.log_dir / "chalice-local.log").read_text()
    lines = [r for r in json_lines(api_log) if r.get("job_id") == job["id"] and "message" in r]
    assert [r["message"] for r in lines] == ["job started"]
    assert all(r.get("correlation_id") == ids[0] for r in lines)
    assert lines[0].get("function_request_id") and "cold_start" in lines[0]  # inject_lambda_context


def test_the_dashboard_can_read_the_request_id(aws_stack: AwsStack, api_server: str) -> None:
    r = requests.get(api_server + "/health", headers={"Origin": aws_stack.web_origin}, timeout=10)
    assert r.headers.get("X-Request-Id")
    assert "X-Request-Id" in r.headers.get("Access-Control-Expose-Headers", "")
