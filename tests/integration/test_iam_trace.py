"""Each function's IAM role grants exactly the AWS calls its code makes, both ways.

Every path of each of the six functions runs in this process against DynamoDB Local and moto,
with every botocore call recorded (tests/support/aws_calls.py): the API's routes (jobs, credits,
an Idempotency-Key, a send that fails and is refunded, a credit purchase through the Stripe
stand-in with its webhook, a duplicate and a refund, notification settings, webhooks and their
log, a resend, an unsubscribe link), the worker (a transcode that completes, one that fails, a
system failure retried until it is refunded, a poison message), the sweeper (a lost message
re-sent, an expired lease failed for good, uploads deleted under
the retention), the stream's function (a job failed, a retry, a
balance crossing its threshold), the fan-out (an event emailed and delivered, again, and an email
SES refuses) and the webhook function (a delivery, a failed try, a delivery failed for good that
disables its endpoint). The calls become IAM actions per table, queue and secret and are compared
with the roles in infra/chalice-merge.yaml both ways: a call the role lacks fails in production; a
grant no call needs is a door left open.
"""

from __future__ import annotations

import json
import re
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from chalice.test import Client

from chalicelib import bootstrap
from chalicelib.domain import QueueMessage, utcnow
from devstack.lambda_events import LocalLambdaContext, scheduled_event, stream_event
from devstack.stripe_standin import signature_header
from tests.support import aws_calls, sqs_events
from tests.support.lifecycle import claim
from tests.support.media import make_clip
from tests.support.notify import Receiver, sent_mail
from tests.support.push_service import BrowserKeys, PushService
from tests.support.stack import AwsStack
from tests.unit.test_infra import merge_template

pytestmark = pytest.mark.integration

# What Lambda's event source mappings need on a role (they poll, not our code).
EVENT_SOURCE_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}
ROLES = {
    "api": "ApiRole",
    "worker": "WorkerRole",
    "sweeper": "SweeperRole",
    "stream": "StreamRole",
    "fanout": "FanOutRole",
    "webhooks": "WebhookRole",
}
# How the templates name what the calls name (a parameter's ARN: a queue or a secret).
REFS = {
    "JobsQueueArn": "queue:jobs",
    "JobsDeadLetterQueueArn": "queue:jobs-dlq",
    "NotificationsQueueArn": "queue:notifications",
    "WebhookQueueArn": "queue:webhooks",
    "R2SecretArn": "secret:r2",
    "StripeSecretArn": "secret:stripe",
    "NotifySigningSecretArn": "secret:signing",
    "VapidSecretArn": "secret:vapid",
    "PlaybackSigningSecretArn": "secret:playback",
}
ARN = "arn:aws:sqs:us-east-1:123456789012:"


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
            if action.startswith("logs:") or action in EVENT_SOURCE_ACTIONS:
                continue
            for target in targets:
                pairs.add((action, _resource_name(target)))
    return pairs


def _resource_name(target: Any) -> str:
    if isinstance(target, dict) and "Fn::Sub" in target:
        sub = target["Fn::Sub"]
        text = str(sub[0] if isinstance(sub, list) else sub)
        if ":ses:" in text:
            return "ses:identity"
        tail = text.split(":table/${TablePrefix}-", 1)[1]
        return tail.replace("/index/*", "/index")
    ref = target.get("Ref") if isinstance(target, dict) else None
    return REFS.get(str(ref), str(target))


@pytest.fixture(scope="module")
def traced(aws_stack: AwsStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    aws_calls.install()
    tag = uuid.uuid4().hex[:8]
    secrets = aws_stack.client("secretsmanager")
    r2, signing = f"vidproc/test/r2-{tag}", f"vidproc/test/signing-{tag}"
    playback = f"vidproc/test/playback-{tag}"
    keys = {
        "accessKeyId": aws_stack.env["R2_ACCESS_KEY_ID"],
        "secretAccessKey": aws_stack.env["R2_SECRET_ACCESS_KEY"],
    }
    secrets.create_secret(Name=r2, SecretString=json.dumps(keys))
    secrets.create_secret(Name=signing, SecretString=uuid.uuid4().hex + uuid.uuid4().hex)
    secrets.create_secret(Name=playback, SecretString=uuid.uuid4().hex + uuid.uuid4().hex)
    # Queues of this module only: no poller of the test session takes a message from them.
    sqs = aws_stack.client("sqs")
    notifications = sqs.create_queue(QueueName=f"iam-{tag}-notifications")["QueueUrl"]
    webhooks = sqs.create_queue(QueueName=f"iam-{tag}-webhooks")["QueueUrl"]
    media = tmp_path_factory.mktemp("iam")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("R2_SECRET_ID", r2)  # as deployed: the R2 keys come from Secrets Manager
        env.setenv("NOTIFY_SIGNING_SECRET_ID", signing)  # ... and the unsubscribe links' key
        env.setenv("PLAYBACK_SIGNING_SECRET_ID", playback)  # ... and the playback links' key
        env.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_stack.moto_url)
        env.setenv("SWEEPER_REQUEUE_AFTER_SECONDS", "1")
        env.setenv("NOTIFICATIONS_QUEUE_URL", notifications)
        env.setenv("WEBHOOK_QUEUE_URL", webhooks)
        bootstrap.reset()
        warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
        try:
            settings = bootstrap.services().settings
            queues = {
                settings.jobs_queue_url: "jobs",
                settings.jobs_dlq_url: "jobs-dlq",
                settings.jobs_queue_url + "-missing": "jobs",  # the API's send that fails
                notifications: "notifications",
                webhooks: "webhooks",
            }
            result = _run_every_path(aws_stack, media, notifications, webhooks)
            yield {
                **result,
                "prefix": settings.table_prefix,
                "queues": queues,
                "secrets": {
                    r2: "r2",
                    signing: "signing",
                    playback: "playback",
                    settings.stripe_secret_id: "stripe",
                    settings.vapid_secret_id: "vapid",
                },
            }
        finally:
            bootstrap.reset()
            parameters_base.DEFAULT_PROVIDERS.clear()


class _Phases:
    def __init__(self) -> None:
        self.calls: dict[str, list[aws_calls.Call]] = {name: [] for name in ROLES}

    def __call__(self, name: str, action: Any) -> Any:
        bootstrap.reset()  # every phase is a cold function of its own: it builds its own clients
        parameters_base.DEFAULT_PROVIDERS.clear()  # and reads its secrets again
        with aws_calls.record() as rec:
            result = action()
        # This thread and the pools it starts (batch retry, boto3's transfers); not the test
        # stack's background pollers (the local worker and notifier), which other files start.
        self.calls[name] += rec.own()
        return result


def _run_every_path(stack: AwsStack, media: Path, notifications: str, webhooks: str) -> dict[str, Any]:
    import app

    tag = uuid.uuid4().hex[:8]
    email, workspace = f"iam-{tag}@example.com", f"ws-iam-{tag}"
    stack.add_user(email, workspace, credits=20)
    headers = {"Authorization": f"Bearer {stack.token(email)}", "Content-Type": "application/json"}
    clip = make_clip(media / "ok.mp4", seconds=1, width=320, height=240).read_bytes()
    api = _Api(Client(app.app), headers, stack)
    phase = _Phases()

    # --- jobs: the API, the worker, the sweeper ----------------------------------------------
    good, bad = phase("api", lambda: [api.started(clip), api.started(b"not a video")])
    phase("worker", lambda: _deliver(app, [good, bad]))
    broken = phase("api", lambda: api.started(clip))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FFMPEG_PATH", "/nonexistent/ffmpeg")  # a system failure: retried, then refunded
        env.setenv("AUTO_RETRY_BASE_SECONDS", "0")
        for attempt in (1, 2, 3):
            phase("worker", lambda a=attempt: _deliver(app, [{**broken, "attempt": a}]))
    assert api.call("get", f"/jobs/{broken['id']}")["job"]["status"] == "failed"
    phase("worker", lambda: _deliver(app, [], poison=True))  # moved to the DLQ with its reason
    phase("api", lambda: api.browse(good, bad))
    phase("api", api.buy_and_refund)
    phase("api", api.in_parts)  # a multipart upload: signed, listed, refused, aborted
    with pytest.MonkeyPatch.context() as env:
        env.setenv("UPLOAD_MULTIPART_EXPIRY_SECONDS", "1")  # due at once: the sweeper aborts it
        phase("api", api.unfinished)
    phase("api", lambda: api.started(clip))  # its message is "lost": the sweeper re-sends it
    interrupted, expired = phase("api", lambda: [api.started(clip), api.started(clip)])
    _expire_lease(interrupted)

    def sweep() -> Any:
        bootstrap.services().clock = lambda: utcnow() + timedelta(seconds=2)  # past the sweeper's wait
        return app.sweep_stuck_jobs(
            scheduled_event("us-east-1"), LocalLambdaContext("sweeper", region="us-east-1")
        )

    phase("sweeper", sweep)  # the interrupted attempt: retried for free (a new attempt)
    _expire_lease(expired)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAX_AUTO_ATTEMPTS", "1")  # the interrupted attempt was the last: failed, refunded
        phase("sweeper", sweep)
    assert api.call("get", f"/jobs/{expired['id']}")["job"]["status"] == "failed"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JOBS_QUEUE_URL", stack.env["JOBS_QUEUE_URL"] + "-missing")  # every send fails
        phase("api", lambda: api.started(clip, expect=(202, 503)))

    # --- notifications: settings and webhooks through the API, then the notifier's functions ------
    receiver, down = Receiver().start(), Receiver(default=500).start()
    pushes = PushService().start()
    try:
        hook, failing = phase("api", lambda: api.webhooks(receiver.url, down.url))
        records = _stream_records(stack, bad, workspace)
        phase("stream", lambda: _table_changes(app, records))
        event = _event(workspace)
        phase("fanout", lambda: _fan_out(app, [event, event]))  # and again: one delivery
        # Web Push: the outcome of this member's job reaches their browser; a gone one is removed
        laptop, gone = pushes.endpoint(), pushes.endpoint()
        pushes.scripted[gone.removeprefix(pushes.origin)] = [410]
        phase("api", lambda: api.push(laptop, gone))
        failed = _job_failed(workspace, bad, api.me())
        phase("fanout", lambda: _fan_out(app, [failed]))
        assert len(pushes.to(laptop)) == 1 and len(pushes.to(gone)) == 1
        with pytest.MonkeyPatch.context() as env:
            env.setenv("NOTIFY_EMAIL_FROM", f"unverified-{tag}@example.com")  # SES refuses it
            phase("fanout", lambda: _fan_out(app, [_event(workspace)], expect_failure=True))
        # One first try per endpoint (the redelivered event sent each again: the same try)
        first = {json.loads(m["Body"])["endpointId"]: m["Body"] for m in _receive(stack, webhooks)}
        assert len(first) == 2
        with pytest.MonkeyPatch.context() as env:
            env.setenv("WEBHOOK_RETRY_WINDOW_SECONDS", "3600")  # the failure is retried
            phase("webhooks", lambda: _try(app, list(first.values())))  # one delivered, one failed (500)
        second = {**json.loads(first[failing]), "attempt": 2, "notBefore": None}  # its next try, due
        with pytest.MonkeyPatch.context() as env:
            env.setenv("WEBHOOK_RETRY_WINDOW_SECONDS", "0.5")  # this failure is final
            env.setenv("WEBHOOK_DISABLE_AFTER_FAILURES", "1")
            phase("webhooks", lambda: _try(app, [json.dumps(second)]))
        assert [e["enabled"] for e in api.call("get", "/webhooks")["endpoints"] if e["id"] == failing] == [
            False
        ]
        delivered = api.call("get", f"/webhooks/{hook}/deliveries")["deliveries"][0]["id"]
        token = _unsubscribe_token(stack, email)
        phase("api", lambda: api.after_deliveries(hook, failing, delivered, token))
    finally:
        receiver.stop()
        down.stop()
        pushes.stop()
    return {"calls": phase.calls}


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
        auth: bool = True,
    ) -> Any:
        raw = json.dumps(body) if body is not None else None
        extra = {"Idempotency-Key": key} if key else {}
        headers = {**self.headers, **extra} if auth else {"Content-Type": "application/x-www-form-urlencoded"}
        r = getattr(self.client.http, method)(path, headers=headers, body=raw)
        assert r.status_code in expect, (path, r.status_code, r.body[:300])
        try:
            return json.loads(r.body) if r.body else None
        except ValueError:
            return r.body  # the unsubscribe pages are HTML

    def me(self) -> str:
        return str(self.call("get", "/me")["user"]["id"])

    def push(self, *endpoints: str) -> None:
        """The key browsers subscribe with; browsers subscribed (kept: the fan-out pushes to them),
        listed, and one more subscribed and removed."""
        self.call("get", "/push/public-key")
        for endpoint in endpoints:
            self.call("post", "/push/subscriptions", BrowserKeys().subscription(endpoint), expect=(201,))
        self.call("get", "/push/subscriptions")
        body = BrowserKeys().subscription(endpoints[0] + "-old")
        subscribed = self.call("post", "/push/subscriptions", body, expect=(201,))
        self.call("delete", f"/push/subscriptions/{subscribed['subscription']['id']}")

    def buy_and_refund(self) -> None:
        """Packs, a checkout (its state read from Stripe, then from the purchase), the webhook's
        grant, the same event again, a refund, and a request whose signature fails."""
        stripe = self.stack.stripe
        self.call("get", "/credits/packs")
        session_id = self.call("post", "/credits/checkout", {"pack": "small"})["sessionId"]
        self.call("get", f"/credits/checkout?sessionId={session_id}")
        paid = json.dumps(stripe.event("checkout.session.completed", stripe.complete(session_id)))
        for body in (paid, paid):  # granted, then a duplicate
            self.webhook(body)
        self.call("get", f"/credits/checkout?sessionId={session_id}")
        charge = {"object": "charge", "payment_intent": stripe.sessions[session_id]["payment_intent"]}
        self.webhook(json.dumps(stripe.event("charge.refunded", {**charge, "amount_refunded": 500})))
        self.webhook(paid, signature="t=1,v1=00", expect=400)

    def webhook(self, body: str, signature: str | None = None, expect: int = 200) -> None:
        now = int(utcnow().timestamp())
        header = signature or signature_header(body, self.stack.stripe.webhook_secret, now)
        r = self.client.http.post(
            "/payments/stripe",
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            body=body,
        )
        assert r.status_code == expect, r.body[:300]

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
        self.call("get", f"/jobs/{good['id']}/playback")  # its thumbnails' link is signed with the key
        key = uuid.uuid4().hex
        self.call("post", f"/jobs/{bad['id']}/retry", key=key)
        self.call("post", f"/jobs/{bad['id']}/retry", key=key)  # replayed from the idempotency record
        self.call("post", f"/jobs/{good['id']}/retry", expect=(400,), key=uuid.uuid4().hex)
        self.call("post", "/jobs/retry", {"jobIds": [bad["id"]]}, expect=(200, 400))
        self.call("get", "/retention")
        self.call("put", "/retention", {"keepOriginalsDays": 0})  # the sweeper deletes its uploads

    def webhooks(self, url: str, failing_url: str) -> tuple[str, str]:
        self.call("get", "/notifications/settings")
        self.call("put", "/notifications/settings", {"lowCreditsThreshold": 3})
        hook = self.call("post", "/webhooks", {"url": url, "eventTypes": ["credits.low"]}, (201,))
        failing = self.call("post", "/webhooks", {"url": failing_url, "eventTypes": ["credits.low"]}, (201,))
        self.call("get", "/webhooks")
        self.call("post", f"/webhooks/{hook['endpoint']['id']}/rotate")
        return str(hook["endpoint"]["id"]), str(failing["endpoint"]["id"])

    def unfinished(self) -> dict[str, Any]:
        size = bootstrap.services().settings.upload_multipart_threshold_bytes + 1
        body = {"filename": "long.mov", "contentType": "video/quicktime", "size": size}
        created = self.call("post", "/jobs", body, (201,))
        assert created["upload"]["method"] == "MULTIPART"
        return dict(created["job"])

    def in_parts(self) -> None:
        job_id = self.unfinished()["id"]
        self.call("post", f"/jobs/{job_id}/upload/parts", {"partNumbers": [1, 2]})
        self.call("get", f"/jobs/{job_id}/upload/parts")
        self.call("post", f"/jobs/{job_id}/upload/complete", {}, expect=(400,))  # no part stored
        self.call("delete", f"/jobs/{job_id}/upload")

    def after_deliveries(self, hook: str, failing: str, delivered: str, token: str) -> None:
        self.call("get", f"/webhooks/{hook}/deliveries")
        self.call("post", f"/webhooks/{hook}/deliveries/{delivered}/resend", expect=(202,))
        self.call("post", f"/webhooks/{failing}/enable")
        self.call("delete", f"/webhooks/{failing}")
        link = f"/notifications/unsubscribe?token={quote(token)}"
        self.call("get", link, auth=False)
        self.call("post", link, auth=False)
        self.call("put", "/notifications/settings", {"emailEvents": ["job.failed", "credits.low"]})


def _deliver(app: Any, jobs: list[dict[str, Any]], poison: bool = False) -> None:
    bodies = [
        json.dumps({"jobId": j["id"], "workspaceId": j["workspaceId"], "attempt": j["attempt"]}) for j in jobs
    ]
    if poison:
        bodies.append("not one of our messages")
    event = sqs_events.event(
        *(sqs_events.record(body, receipt_handle="r", queue_arn=ARN + "vidproc-jobs") for body in bodies)
    )
    result = app.handle_job_messages(event, LocalLambdaContext("worker", region="us-east-1"))
    assert result == {"batchItemFailures": []}


def _expire_lease(job: dict[str, Any]) -> None:
    now = utcnow()
    ref = QueueMessage(job["id"], job["workspaceId"], job["attempt"])
    assert claim(bootstrap.services().repo, ref, now, now)  # a worker that died at once


def _raw(stack: AwsStack, kind: str, key: dict[str, Any]) -> dict[str, Any]:
    table = f"{bootstrap.services().settings.table_prefix}-{kind}"
    item: dict[str, Any] = stack.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)[
        "Item"
    ]
    return item


def _stream_records(stack: AwsStack, bad: dict[str, Any], workspace: str) -> list[dict[str, Any]]:
    """The three streams' records as Lambda delivers them: a job that failed, its manual retry
    (the event reads the job), a balance that crossed the threshold."""
    prefix = bootstrap.services().settings.table_prefix
    job = _raw(stack, "jobs", {"id": {"S": bad["id"]}})
    attempt = _raw(stack, "attempts", {"jobId": {"S": bad["id"]}, "n": {"N": "2"}})
    balance = _raw(stack, "workspaces", {"id": {"S": workspace}})
    low = {**balance, "credits": {"N": "1"}}

    def record(kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "NewImage": new,
            "SequenceNumber": uuid.uuid4().hex,
            "ApproximateCreationDateTime": time.time(),
        }
        if old is not None:
            body["OldImage"] = old
        arn = f"arn:aws:dynamodb:us-east-1:000000000000:table/{prefix}-{kind}/stream/2026"
        return stream_event(
            [{"eventID": uuid.uuid4().hex, "eventName": "MODIFY", "dynamodb": body}], arn, "us-east-1"
        )["Records"][0]

    return [
        record("jobs", {**job, "status": {"S": "failed"}}, {**job, "status": {"S": "processing"}}),
        record("attempts", attempt, None),
        record("workspaces", low, {**balance, "credits": {"N": "9"}}),
    ]


def _table_changes(app: Any, records: list[dict[str, Any]]) -> None:
    result = app.handle_table_changes({"Records": records}, LocalLambdaContext("stream", region="us-east-1"))
    assert result["events"] == 3, result


def _event(workspace: str) -> dict[str, Any]:
    return {
        "id": "evt_iam" + uuid.uuid4().hex,
        "type": "credits.low",
        "timestamp": "2026-12-01T00:00:00.000Z",
        "workspaceId": workspace,
        "data": {"credits": 1, "threshold": 3},
    }


def _job_failed(workspace: str, job: dict[str, Any], user_id: str) -> dict[str, Any]:
    return {
        "id": "evt_iam" + uuid.uuid4().hex,
        "type": "job.failed",
        "timestamp": "2026-12-01T00:00:00.000Z",
        "workspaceId": workspace,
        "data": {
            "job": job,
            "startedBy": user_id,
            "error": {"code": "INVALID_VIDEO", "message": "Unreadable"},
        },
    }


def _fan_out(app: Any, events: list[dict[str, Any]], expect_failure: bool = False) -> None:
    for event in events:
        body = json.dumps({"kind": "event", "event": event})
        sqs = sqs_events.event(sqs_events.record(body, queue_arn=ARN + "vidproc-notifications"))
        result = app.handle_notifications(sqs, LocalLambdaContext("fanout", region="us-east-1"))
        assert bool(result["batchItemFailures"]) == expect_failure, result


def _receive(stack: AwsStack, url: str) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        )
        messages = got.get("Messages", [])
        if not messages:
            return found
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        found += messages


def _try(app: Any, bodies: list[str]) -> None:
    for body in bodies:
        event = sqs_events.event(sqs_events.record(body, queue_arn=ARN + "vidproc-webhooks"))
        result = app.handle_webhook_deliveries(event, LocalLambdaContext("webhooks", region="us-east-1"))
        assert result == {"batchItemFailures": []}, result


def _unsubscribe_token(stack: AwsStack, email: str) -> str:
    mails = [m for m in sent_mail(stack.moto_url, email) if "unsubscribe" in m["body"]]
    found = re.search(r"unsubscribe\?token=([^\"&<\s]+)", mails[-1]["body"])
    assert found is not None
    return unquote(found.group(1))


def test_each_role_grants_exactly_the_calls_its_function_makes(traced: dict[str, Any]) -> None:
    for function, role in ROLES.items():
        needed = aws_calls.iam_actions(
            traced["calls"][function], traced["prefix"], traced["queues"], traced["secrets"]
        )
        allowed = granted(role)
        assert needed - allowed == set(), f"{role} lacks what {function} calls"
        assert allowed - needed == set(), f"{role} grants what {function} never calls"


def test_no_function_but_the_api_writes_a_member_and_none_puts_a_workspace(traced: dict[str, Any]) -> None:
    # Only the operator CLI adds members and workspaces: a compromised function must not add
    # itself. The API writes a member's own email choices (IAM limits it to those attributes).
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    for function, role in ROLES.items():
        needed = aws_calls.iam_actions(traced["calls"][function], traced["prefix"])
        written = {(a, r) for a, r in needed | granted(role) if r == "members" and a in writes}
        assert written == ({("dynamodb:UpdateItem", "members")} if function == "api" else set()), function
        assert ("dynamodb:PutItem", "workspaces") not in needed | granted(role), function


def test_the_package_keeps_botocores_models_of_exactly_the_services_called(traced: dict[str, Any]) -> None:
    called = {c.service for calls in traced["calls"].values() for c in calls}
    script = (Path(__file__).resolve().parents[2] / "infra" / "package.sh").read_text()
    [kept] = [
        line.split("=", 1)[1].strip('"')
        for line in script.splitlines()
        if line.startswith("BOTOCORE_SERVICES=")
    ]

    assert called == set(kept.split())
