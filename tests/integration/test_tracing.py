"""Traces and logs never hold a secret: the real handlers run with tracing on (as deployed, where
`Tracing: Active`), every segment they emit is read back from a stand-in daemon on 127.0.0.1, and
every line they log is searched.

The webhook secret shown once by `POST /webhooks` and by a rotation, and the presigned URLs, are
answers to their caller only: a trace is readable by anyone in the account with X-Ray read access,
a log by anyone with CloudWatch Logs read access.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from devstack import REPO_ROOT
from tests.support.api import new_tenant
from tests.support.logs import json_lines
from tests.support.stack import AwsStack
from tests.support.traced_flow import EMAIL_ENV, TOKEN_ENV
from tests.support.xray import XRayCollector, names

pytestmark = pytest.mark.integration


@pytest.fixture
def collector() -> Iterator[XRayCollector]:
    running = XRayCollector().start()
    yield running
    running.stop()


def own_queues(stack: AwsStack) -> dict[str, str]:
    """Queues of this run only: no poller of the test session takes its messages."""
    sqs = stack.client("sqs")
    tag = uuid.uuid4().hex[:8]
    return {
        variable: str(sqs.create_queue(QueueName=f"traced-{name}-{tag}")["QueueUrl"])
        for variable, name in (
            ("JOBS_QUEUE_URL", "jobs"),
            ("NOTIFICATIONS_QUEUE_URL", "notifications"),
            ("WEBHOOK_QUEUE_URL", "webhooks"),
        )
    }


def run_traced(
    stack: AwsStack,
    api_server: str,
    collector: XRayCollector,
    steps: list[str],
    extra_env: dict[str, str] | None = None,
) -> tuple[dict[str, str], str]:
    """Run the steps with tracing on: (the secrets they saw, everything they printed)."""
    tenant = new_tenant(stack, api_server, credits=10)
    env = {
        **os.environ,
        **own_queues(stack),
        **(extra_env or {}),
        TOKEN_ENV: str(tenant.api.token),
        EMAIL_ENV: tenant.email,
        # What Lambda sets: the SDK then traces every invocation into the daemon.
        "LAMBDA_TASK_ROOT": str(REPO_ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "vidproc-traced",
        "_X_AMZN_TRACE_ID": "Root=1-6750f3a1-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": collector.address,
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "POWERTOOLS_TRACE_DISABLED": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.traced_flow", *steps],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    *printed, last = done.stdout.rstrip("\n").split("\n")
    secrets: dict[str, str] = json.loads(last)["secrets"]
    secrets["password"] = stack._passwords[tenant.email]
    return secrets, "\n".join(printed) + "\n" + done.stderr


def leaked(secrets: dict[str, str], text: str) -> list[str]:
    return sorted(name for name, value in secrets.items() if len(value) > 8 and value in text)


def test_no_secret_or_presigned_url_reaches_a_trace(
    aws_stack: AwsStack, api_server: str, collector: XRayCollector
) -> None:
    secrets, _ = run_traced(aws_stack, api_server, collector, ["webhook", "upload"])

    segments = collector.segments()
    # The handler was traced (else this proves nothing): its subsegment and the AWS calls.
    assert "## invoke" in names(segments) and "dynamodb" in names(segments), sorted(names(segments))
    assert {"webhook secret", "rotated webhook secret", "presigned upload URL"} <= set(secrets)
    assert leaked(secrets, collector.text()) == []


def test_a_whole_flow_leaves_no_secret_in_any_log_line_or_trace(
    aws_stack: AwsStack, api_server: str, collector: XRayCollector
) -> None:
    # GIVEN the R2 keys and the links' signing key in Secrets Manager, as deployed
    tag = uuid.uuid4().hex
    r2 = {"accessKeyId": f"AKIA{tag[:16].upper()}", "secretAccessKey": f"r2-secret-{tag}"}
    signing = f"signing-key-{uuid.uuid4().hex}"
    client = aws_stack.client("secretsmanager")
    client.create_secret(Name=f"traced/r2-{tag}", SecretString=json.dumps(r2))
    client.create_secret(Name=f"traced/signing-{tag}", SecretString=signing)
    env = {
        "R2_SECRET_ID": f"traced/r2-{tag}",
        "NOTIFY_SIGNING_SECRET_ID": f"traced/signing-{tag}",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws_stack.moto_url,
    }
    # WHEN a job is uploaded, started, transcoded and downloaded, a webhook registered, rotated
    # and delivered, a forged token refused and a sign-in with a wrong password refused
    steps = ["webhook", "upload", "work", "notify", "refused"]
    secrets, printed = run_traced(aws_stack, api_server, collector, steps, env)
    secrets |= {"R2 secret key": r2["secretAccessKey"], "signing key": signing}
    secrets["token signature"] = secrets["token"].rsplit(".", 1)[1]
    # THEN none of them is in a line the functions logged, a trace, or the stack's own logs
    logged = {str(line.get("message")) for line in json_lines(printed)}
    assert {"job started", "job completed", "webhook try"} <= logged  # else this proves nothing
    assert {"## invoke", "dynamodb", "sqs", "s3"} <= names(collector.segments())
    stack_logs = "\n".join(p.read_text(errors="replace") for p in aws_stack.log_dir.rglob("*.log"))
    for where, text in (("logs", printed), ("traces", collector.text()), ("stack logs", stack_logs)):
        assert leaked(secrets, text) == [], where
