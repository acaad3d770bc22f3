"""Each function's IAM role grants exactly the AWS calls its code makes.

Every path of each function runs in this process against DynamoDB Local and moto, with every
botocore call recorded (tests/support/aws_calls.py): the API's routes (success and refusal, an
Idempotency-Key, a send that fails and is refunded), the worker (a transcode that completes, one
that fails), the sweeper (a lost message re-sent, an expired lease, uploads deleted under the
retention). The calls become IAM actions per table and are compared with the roles in
infra/chalice-merge.yaml both ways: a call the role lacks fails in production; a grant no call
needs is a door left open.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from chalice.test import Client

from chalicelib import bootstrap
from chalicelib.domain import QueueMessage, utcnow
from devstack.lambda_events import LocalLambdaContext, scheduled_event
from tests.support import aws_calls, sqs_events
from tests.support.lifecycle import claim
from tests.support.media import make_clip
from tests.support.stack import AwsStack
from tests.unit.test_infra import merge_template

pytestmark = pytest.mark.integration

# What Lambda's SQS event source mapping needs on the worker's role (it polls, not our code).
EVENT_SOURCE_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
}
ROLES = {"api": "ApiRole", "worker": "WorkerRole", "sweeper": "SweeperRole"}
# The job flow's resources: every grant on these must be used by the paths run here. The
# notifier's tables, queue and the API's notification routes are issue 11's, proven by its tests;
# their grants are only checked for what these paths call.
JOB_FLOW = {
    "jobs",
    "jobs/index",
    "attempts",
    "workspaces",
    "members",
    "ledger",
    "idempotency",
    "queue",
    "secret",
}
# Granted for a path these flows do not run: the member's own email preferences (issue 11),
# which IAM limits to that attribute (test_infra checks the condition).
NOT_RUN_HERE = {("dynamodb:UpdateItem", "members")}


def granted(role: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a role's policy allows, resources named as aws_calls names them."""
    pairs: set[tuple[str, str]] = set()
    policy = merge_template()["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        targets = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            if action.startswith(("logs:", *EVENT_SOURCE_ACTIONS)):
                continue
            for target in targets:
                pairs.add((action, _resource_name(target)))
    return pairs


def _resource_name(target: Any) -> str:
    if isinstance(target, dict) and "Fn::Sub" in target:
        tail = str(target["Fn::Sub"]).split(":table/${TablePrefix}-", 1)[1]
        return tail.replace("/index/*", "/index")
    ref = target.get("Ref") if isinstance(target, dict) else None
    return {"JobsQueueArn": "queue", "R2SecretArn": "secret"}.get(str(ref), str(target))


@pytest.fixture(scope="module")
def traced(aws_stack: AwsStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    aws_calls.install()
    secret = f"vidproc/test/r2-{uuid.uuid4().hex[:8]}"
    aws_stack.client("secretsmanager").create_secret(
        Name=secret,
        SecretString=json.dumps(
            {
                "accessKeyId": aws_stack.env["R2_ACCESS_KEY_ID"],
                "secretAccessKey": aws_stack.env["R2_SECRET_ACCESS_KEY"],
            }
        ),
    )
    media = tmp_path_factory.mktemp("iam")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("R2_SECRET_ID", secret)  # as deployed: the R2 keys come from Secrets Manager
        env.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_stack.moto_url)
        env.setenv("SWEEPER_REQUEUE_AFTER_SECONDS", "1")
        bootstrap.reset()
        warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
        try:
            yield _run_every_path(aws_stack, media)
        finally:
            bootstrap.reset()
            parameters_base.DEFAULT_PROVIDERS.clear()


def _run_every_path(stack: AwsStack, media: Path) -> dict[str, Any]:
    import app

    tag = uuid.uuid4().hex[:8]
    email, workspace = f"iam-{tag}@example.com", f"ws-iam-{tag}"
    stack.add_user(email, workspace, credits=20)
    headers = {"Authorization": f"Bearer {stack.token(email)}", "Content-Type": "application/json"}
    clip = make_clip(media / "ok.mp4", seconds=1, width=320, height=240).read_bytes()
    client = Client(app.app)
    api = _Api(client, headers, stack)
    calls: dict[str, list[aws_calls.Call]] = {"api": [], "worker": [], "sweeper": []}

    def phase(name: str, action: Any) -> Any:
        bootstrap.reset()  # every phase is a cold function of its own: it builds its own clients
        parameters_base.DEFAULT_PROVIDERS.clear()  # and reads the R2 secret again
        with aws_calls.record() as rec:
            result = action()
        # This thread and the pools it starts (batch retry, boto3's transfers); not the test
        # stack's background pollers (the local notifier), which other test files start.
        calls[name] += rec.own()
        return result

    good, bad = phase("api", lambda: [api.started(clip), api.started(b"not a video")])
    phase("worker", lambda: _deliver(app, [good, bad]))
    broken = phase("api", lambda: api.started(clip))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FFMPEG_PATH", "/nonexistent/ffmpeg")  # a system failure: retried automatically
        env.setenv("AUTO_RETRY_BASE_SECONDS", "0")
        phase("worker", lambda: _deliver(app, [broken]))
    phase("api", lambda: api.browse(good, bad))
    phase("api", lambda: api.started(clip))  # its message is "lost": the sweeper re-sends it
    expired = phase("api", lambda: api.started(clip))
    _expire_lease(expired)

    def sweep_later() -> Any:
        bootstrap.services().clock = lambda: utcnow() + timedelta(seconds=2)  # past the sweeper's wait
        return app.sweep_stuck_jobs(
            scheduled_event("us-east-1"), LocalLambdaContext("sweeper", region="us-east-1")
        )

    phase("sweeper", sweep_later)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JOBS_QUEUE_URL", stack.env["JOBS_QUEUE_URL"] + "-missing")  # every send fails
        phase("api", lambda: api.started(clip, expect=(202, 503)))
    return {"calls": calls, "prefix": bootstrap.services().settings.table_prefix}


class _Api:
    def __init__(self, client: Client, headers: dict[str, str], stack: AwsStack) -> None:
        self.client, self.headers, self.stack = client, headers, stack

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: tuple[int, ...] = (200,),
        key: str | None = None,
    ) -> Any:
        raw = json.dumps(body) if body is not None else None
        extra = {"Idempotency-Key": key} if key else {}
        r = getattr(self.client.http, method)(path, headers={**self.headers, **extra}, body=raw)
        assert r.status_code in expect, (path, r.status_code, r.body[:300])
        return json.loads(r.body) if r.body else None

    def started(self, data: bytes, expect: tuple[int, ...] = (202,)) -> dict[str, Any]:
        created = self.call(
            "post", "/jobs", {"filename": "clip.mp4", "contentType": "video/mp4", "size": len(data)}, (201,)
        )
        job = created["job"]
        self.stack.client("s3").put_object(
            Bucket=self.stack.env["R2_BUCKET"], Key=job["inputFileKey"], Body=data
        )
        started = self.call("post", f"/jobs/{job['id']}/start", expect=expect)
        return dict(started["job"]) if started and "job" in started else job

    def browse(self, good: dict[str, Any], bad: dict[str, Any]) -> None:
        self.call("get", "/me")
        self.call("get", "/credits")
        self.call("get", "/credits/ledger")
        self.call("get", "/jobs?limit=5")
        self.call("get", "/jobs?status=failed&limit=5")
        self.call("get", f"/jobs/{good['id']}")
        self.call("get", f"/jobs/{good['id']}/download")
        key = uuid.uuid4().hex
        self.call("post", f"/jobs/{bad['id']}/retry", key=key)
        self.call("post", f"/jobs/{bad['id']}/retry", key=key)  # replayed from the idempotency record
        self.call("post", f"/jobs/{good['id']}/retry", expect=(400,), key=uuid.uuid4().hex)
        self.call("post", "/jobs/retry", {"jobIds": [bad["id"]]}, expect=(200, 400))
        self.call("get", "/retention")
        self.call("put", "/retention", {"keepOriginalsDays": 0})  # the sweeper deletes its uploads


def _deliver(app: Any, jobs: list[dict[str, Any]]) -> None:
    event = sqs_events.event(
        *(
            sqs_events.record(
                json.dumps({"jobId": j["id"], "workspaceId": j["workspaceId"], "attempt": j["attempt"]}),
                receipt_handle="r",
                queue_arn="arn:aws:sqs:us-east-1:000000000000:vidproc-jobs",
            )
            for j in jobs
        )
    )
    result = app.handle_job_messages(event, LocalLambdaContext("worker", region="us-east-1"))
    assert result == {"batchItemFailures": []}


def _expire_lease(job: dict[str, Any]) -> None:
    now = utcnow()
    ref = QueueMessage(job["id"], job["workspaceId"], job["attempt"])
    assert claim(bootstrap.services().repo, ref, now, now)  # a worker that died at once


def test_each_role_grants_exactly_the_calls_its_function_makes(traced: dict[str, Any]) -> None:
    for function, role in ROLES.items():
        needed = aws_calls.iam_actions(traced["calls"][function], traced["prefix"])
        allowed = granted(role)
        assert needed - allowed == set(), f"{role} lacks what {function} calls"
        unused = {(a, r) for a, r in allowed - needed if r in JOB_FLOW} - NOT_RUN_HERE
        assert unused == set(), f"{role} grants what {function} never calls"


def test_the_api_never_writes_members_or_puts_workspaces(traced: dict[str, Any]) -> None:
    # Only the operator CLI adds members and workspaces: a compromised API must not add itself.
    needed = aws_calls.iam_actions(traced["calls"]["api"], traced["prefix"])
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    assert {(a, r) for a, r in needed if r == "members" and a in writes} == set()
    assert ("dynamodb:PutItem", "workspaces") not in needed
    granted_writes = {(a, r) for a, r in granted("ApiRole") if r == "members" and a in writes}
    assert granted_writes == {("dynamodb:UpdateItem", "members")}  # emailEvents only (see test_infra)


def test_the_package_keeps_botocores_models_of_exactly_the_services_called(traced: dict[str, Any]) -> None:
    called = {c.service for calls in traced["calls"].values() for c in calls}
    script = (Path(__file__).resolve().parents[2] / "infra" / "package.sh").read_text()
    [kept] = [
        line.split("=", 1)[1].strip('"')
        for line in script.splitlines()
        if line.startswith("BOTOCORE_SERVICES=")
    ]

    assert called <= set(kept.split())
    assert set(kept.split()) - called <= {"sesv2"}  # the notifier's mailer, not run in these paths
