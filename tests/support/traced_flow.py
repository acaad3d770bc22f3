"""The real handlers, run as Lambda runs them with X-Ray tracing on, in a process of their own.

`python -m tests.support.traced_flow STEP...` (from the repository root), with the local stack's
environment plus what Lambda sets for tracing (LAMBDA_TASK_ROOT, _X_AMZN_TRACE_ID, the daemon's
address: tests/support/xray.py listens there). The X-Ray SDK decides at import whether it runs in
Lambda, so this cannot run inside the test process.

Each step drives the app as API Gateway and the event sources would (chalice's test client for
HTTP, real-shaped SQS events for the queues). The last line printed is a JSON object of every
secret value the steps saw (tokens, secrets, presigned URLs): the test searches every log line
and every trace segment for them. Steps:

- `webhook`: register a webhook (its secret is shown once), then rotate it;
- `upload`: create a job (a presigned PUT comes back), upload a clip, start it;
- `work`: run the worker on the started job's message; then ask for the download URL;
- `notify`: an event fanned out and its webhook delivered to a receiver on 127.0.0.1;
- `refused`: a forged token, and a sign-in with a wrong password.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests
from chalice.test import Client

from devstack.lambda_events import LocalLambdaContext, sqs_event

TOKEN_ENV = "TRACED_FLOW_TOKEN"
EMAIL_ENV = "TRACED_FLOW_EMAIL"


class Flow:
    def __init__(self) -> None:
        import app

        self.app = app
        self.client = Client(app.app)
        self.token = os.environ[TOKEN_ENV]
        self.seen: dict[str, str] = {"token": self.token}
        self.job: dict[str, Any] | None = None
        self.endpoint: str | None = None

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}", "Content-Type": "application/json"}
        raw = json.dumps(body) if body is not None else None
        answer = getattr(self.client.http, method)(path, headers=headers, body=raw)
        return answer.status_code, (json.loads(answer.body) if answer.body else None)

    # --- steps --------------------------------------------------------------------------------
    def webhook(self) -> None:
        from tests.support.notify import Receiver

        receiver = Receiver().start()  # answers 200; kept running for `notify`
        self.receiver = receiver
        status, body = self.call("post", "/webhooks", {"url": receiver.url, "eventTypes": ["job.completed"]})
        assert status == 201, body
        self.endpoint = body["endpoint"]["id"]
        self.seen["webhook secret"] = body["secret"]
        status, rotated = self.call("post", f"/webhooks/{self.endpoint}/rotate")
        assert status == 200, rotated
        self.seen["rotated webhook secret"] = rotated["secret"]

    def upload(self) -> None:
        from tests.support.media import make_clip

        data = make_clip(Path(tempfile.mkdtemp()) / "c.mp4", seconds=1, width=160, height=120).read_bytes()
        status, created = self.call(
            "post", "/jobs", {"filename": "c.mp4", "contentType": "video/mp4", "size": len(data)}
        )
        assert status == 201, created
        upload = created["upload"]
        self.seen["presigned upload URL"] = upload["url"]
        self.seen["presigned upload signature"] = upload["url"].split("X-Amz-Signature=")[1][:40]
        put = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30)
        assert put.status_code == 200, put.text
        status, started = self.call("post", f"/jobs/{created['job']['id']}/start")
        assert status == 202, started
        self.job = started["job"]

    def work(self) -> None:
        assert self.job is not None
        received = _receive(os.environ["JOBS_QUEUE_URL"])
        arn = "arn:aws:sqs:us-east-1:123456789012:vidproc-jobs"
        result = self.app.handle_job_messages(
            sqs_event(received, arn, "us-east-1"), LocalLambdaContext("vidproc-worker")
        )
        assert result == {"batchItemFailures": []}, result
        status, answer = self.call("get", f"/jobs/{self.job['id']}/download")
        assert status == 200, answer
        self.seen["presigned download URL"] = answer["url"]
        self.seen["presigned download signature"] = answer["url"].split("X-Amz-Signature=")[1][:40]

    def notify(self) -> None:
        assert self.endpoint is not None and self.job is not None
        from chalicelib.bootstrap import notify_services

        event = {
            "id": "evt_tracedflow" + self.job["id"].replace("-", ""),
            "type": "job.completed",
            "timestamp": "2026-12-01T00:00:00.000Z",
            "workspaceId": self.job["workspaceId"],
            "data": {"job": self.job, "startedBy": ""},
        }
        notify_services().queue.send_event(event)
        for queue, handler in _notification_queues(self.app):
            messages = _receive(queue)
            if messages:
                arn = "arn:aws:sqs:us-east-1:123456789012:" + queue.rsplit("/", 1)[1]
                context = LocalLambdaContext("vidproc-notifier")
                result = handler(sqs_event(messages, arn, "us-east-1"), context)
                assert result == {"batchItemFailures": []}, result
        assert self.receiver.received, "the webhook was not delivered"
        self.seen["webhook signature"] = self.receiver.received[0].headers["webhook-signature"]

    def refused(self) -> None:
        forged = self.token[:-6] + "AAAAAA"
        status, _ = self.call("get", "/me", token=forged)
        assert status == 401
        from chalicelib.adapters.cognito import CognitoUsers
        from chalicelib.errors import UnauthorizedError

        wrong = "Wrong-password-" + os.urandom(6).hex()
        self.seen["wrong password"] = wrong
        try:
            CognitoUsers().sign_in(os.environ[EMAIL_ENV], wrong)
        except UnauthorizedError:
            pass
        else:
            raise AssertionError("a wrong password signed in")


def _receive(queue_url: str) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.session.Session().client("sqs", region_name="us-east-1")
    answer = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2, AttributeNames=["All"]
    )
    messages = list(answer.get("Messages", []))
    for m in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return messages


def _notification_queues(app: Any) -> list[tuple[str, Any]]:
    """Each notifications queue with its handler, in the order an event goes through them."""
    queues = [(os.environ["NOTIFICATIONS_QUEUE_URL"], app.handle_notifications)]
    deliveries = os.environ.get("WEBHOOK_QUEUE_URL")
    if deliveries and hasattr(app, "handle_webhook_deliveries"):
        queues.append((deliveries, app.handle_webhook_deliveries))
    return queues


def main(steps: list[str]) -> None:
    flow = Flow()
    for step in steps:
        getattr(flow, step)()
    print(json.dumps({"secrets": flow.seen}))
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
