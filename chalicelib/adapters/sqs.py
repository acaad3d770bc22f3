"""The jobs queue on SQS and its dead-letter queue.

Two message types (the README documents both):
- a job message `{"jobId", "workspaceId", "attempt"}` (optionally `"type": "job"`): one attempt;
- a reprocess request `{"type": "reprocess", "workspaceId", "errorCode"?, "since"?, "free"?,
  "dryRun"?, "requestId"?}`: re-queue a workspace's failed jobs, as `python -m cli reprocess` does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings, get_settings
from chalicelib.domain import AUDIO_TASK, QueueMessage, ReprocessRequest
from chalicelib.errors import QueueSendError, ServiceUnavailableError, ValidationError

_REPROCESS_KEYS = {"type", "workspaceId", "errorCode", "since", "free", "dryRun", "requestId"}


def encode(message: QueueMessage) -> str:
    body: dict[str, object] = {
        "jobId": message.job_id,
        "workspaceId": message.workspace_id,
        "attempt": message.attempt,
    }
    if message.task is not None:
        body["task"] = message.task
    return json.dumps(body, separators=(",", ":"))


def decode(body: str) -> QueueMessage | ReprocessRequest:
    """Parse a message body; ValidationError for anything that is not one of ours."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValidationError("Not a job message: not JSON") from exc
    if not isinstance(data, dict):
        raise ValidationError("Not a job message: not a JSON object")
    kind = data.get("type", "job")
    if kind == "reprocess":
        return _reprocess(data)
    if kind != "job":
        raise ValidationError(f"Unknown message type {kind!r}")
    try:
        message = QueueMessage(
            job_id=_text(data["jobId"]),
            workspace_id=_text(data["workspaceId"]),
            attempt=int(data["attempt"]),
            task=_task(data.get("task")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("Not a job message") from exc
    if message.attempt < 1 or isinstance(data["attempt"], bool):
        raise ValidationError("Not a job message: attempt must be a positive integer")
    return message


def encode_reprocess(request: ReprocessRequest) -> str:
    data: dict[str, Any] = {"type": "reprocess", "workspaceId": request.workspace_id}
    if request.error_code:
        data["errorCode"] = request.error_code
    if request.since:
        data["since"] = request.since.isoformat()
    if request.free:
        data["free"] = True
    if request.dry_run:
        data["dryRun"] = True
    if request.request_id:
        data["requestId"] = request.request_id
    return json.dumps(data, separators=(",", ":"))


def _reprocess(data: dict[str, Any]) -> ReprocessRequest:
    unknown = set(data) - _REPROCESS_KEYS
    if unknown:
        raise ValidationError(f"Unknown fields in a reprocess message: {sorted(unknown)}")
    try:
        workspace_id = _text(data["workspaceId"])
    except (KeyError, TypeError) as exc:
        raise ValidationError("A reprocess message needs a workspaceId") from exc
    error_code = data.get("errorCode")
    if error_code is not None and not (isinstance(error_code, str) and error_code):
        raise ValidationError("errorCode must be a non-empty string")
    for flag in ("free", "dryRun"):
        if not isinstance(data.get(flag, False), bool):
            raise ValidationError(f"{flag} must be true or false")
    request_id = data.get("requestId", "")
    if not (isinstance(request_id, str) and len(request_id) <= 128):
        raise ValidationError("requestId must be a string of at most 128 characters")
    return ReprocessRequest(
        workspace_id=workspace_id,
        error_code=error_code,
        since=parse_since(data.get("since")),
        free=bool(data.get("free", False)),
        dry_run=bool(data.get("dryRun", False)),
        request_id=request_id,
    )


def parse_since(value: Any) -> datetime | None:
    """An ISO 8601 time (naive means UTC); ValidationError otherwise."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(f"since must be an ISO 8601 time (got {value!r})") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _task(value: Any) -> int | None:
    """A segment task's number (from 0, or AUDIO_TASK); None for the attempt itself."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < AUDIO_TASK:
        raise TypeError("task must be an integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError("expected a non-empty string")
    return value


class SqsJobQueue:
    """The JobQueue port on SQS."""

    def __init__(self, client: Any, queue_url: str, dlq_url: str = "") -> None:
        self._client = client
        self._queue_url = queue_url
        self._dlq_url = dlq_url

    @property
    def client(self) -> Any:
        """The boto3 client (instrumentation registers botocore event hooks on it)."""
        return self._client

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsJobQueue:
        client = boto3.session.Session().client(
            "sqs",
            region_name=settings.aws_region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10
            ),
        )
        if settings.jobs_queue_url:
            return cls(client, settings.jobs_queue_url, settings.jobs_dlq_url)
        try:
            url = client.get_queue_url(QueueName=settings.jobs_queue_name)["QueueUrl"]
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailableError("The jobs queue could not be found") from exc
        return cls(client, str(url), settings.jobs_dlq_url)

    @property
    def queue_url(self) -> str:
        return self._queue_url

    def dlq_url(self) -> str:
        """The dead-letter queue's URL: JOBS_DLQ_URL, else the one the redrive policy names."""
        if not self._dlq_url:
            try:
                attributes = self._client.get_queue_attributes(
                    QueueUrl=self._queue_url, AttributeNames=["RedrivePolicy"]
                )["Attributes"]
                arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
                self._dlq_url = self._client.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
            except (ClientError, BotoCoreError, KeyError, ValueError) as exc:
                raise QueueSendError("The jobs queue has no dead-letter queue") from exc
        return self._dlq_url

    def send(self, message: QueueMessage, delay_seconds: int = 0) -> None:
        try:
            self._client.send_message(
                QueueUrl=self._queue_url,
                MessageBody=encode(message),
                DelaySeconds=max(0, min(900, int(delay_seconds))),
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError() from exc

    def send_body(self, body: str) -> None:
        """Any body, as it is (the reprocess message's sender; tests of the worker's validation)."""
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError() from exc

    def extend_visibility(self, receipt_handle: str, seconds: int) -> None:
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not change the message's visibility") from exc

    def dead_letter(self, body: str, reason: str) -> None:
        try:
            self._client.send_message(
                QueueUrl=self.dlq_url(),
                MessageBody=body,
                MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not move the message to the dead-letter queue") from exc


@cache
def default_queue() -> SqsJobQueue:
    return SqsJobQueue.from_settings(get_settings())


class DeadLetters:
    """The operator's view of the dead-letter queue: list, and move back to the jobs queue."""

    def __init__(self, queue: SqsJobQueue, client: Any) -> None:
        self._queue = queue
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadLetters:
        queue = SqsJobQueue.from_settings(settings)
        return cls(queue, queue._client)

    def peek(self, limit: int = 100) -> list[dict[str, Any]]:
        """Up to `limit` messages (id, receive count, sent time, reason, body), left in the DLQ.

        SQS has no peek: they are received (hidden 30 s so each is seen once), then released.
        """
        dlq = self._queue.dlq_url()
        seen: dict[str, dict[str, Any]] = {}
        handles: list[str] = []
        try:
            while len(seen) < limit:
                batch = self._receive(dlq, min(10, limit - len(seen)), visibility=30)
                if not batch:
                    break
                for m in batch:
                    handles.append(m["ReceiptHandle"])
                    seen.setdefault(m["MessageId"], _summary(m))
            for handle in handles:
                self._client.change_message_visibility(
                    QueueUrl=dlq, ReceiptHandle=handle, VisibilityTimeout=0
                )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not read the dead-letter queue") from exc
        return list(seen.values())

    def depth(self) -> int:
        """About how many messages the DLQ holds (SQS's ApproximateNumberOfMessages)."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self._queue.dlq_url(), AttributeNames=["ApproximateNumberOfMessages"]
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not read the dead-letter queue") from exc
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def redrive(
        self, limit: int | None = None, each: Callable[[], None] | None = None
    ) -> tuple[str, int | None]:
        """Move messages back to the jobs queue: ("move-task", None) when SQS runs the move
        (StartMessageMoveTask, all of them), else ("copied", n) after receive/send/delete,
        calling `each()` after every message moved."""
        dlq = self._queue.dlq_url()
        try:
            if limit is None:
                with contextlib.suppress(ClientError):  # not supported here (moto): copy instead
                    self._client.start_message_move_task(
                        SourceArn=self._arn(dlq), DestinationArn=self._arn(self._queue.queue_url)
                    )
                    return "move-task", None
            return "copied", self._copy_back(dlq, limit, each)
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not redrive the dead-letter queue") from exc

    def _copy_back(self, dlq: str, limit: int | None, each: Callable[[], None] | None) -> int:
        moved = 0
        while limit is None or moved < limit:
            want = 10 if limit is None else min(10, limit - moved)
            batch = self._receive(dlq, want, visibility=60)
            if not batch:
                return moved
            for m in batch:
                self._client.send_message(QueueUrl=self._queue.queue_url, MessageBody=m["Body"])
                self._client.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
                moved += 1
                if each is not None:
                    each()
        return moved

    def _receive(self, url: str, n: int, visibility: int) -> list[dict[str, Any]]:
        response = self._client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=n,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _arn(self, url: str) -> str:
        attributes = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue")
    sent = attributes.get("SentTimestamp")
    return {
        "messageId": message["MessageId"],
        "receiveCount": int(attributes.get("ApproximateReceiveCount", 0)),
        "sentAt": datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat() if sent else None,
        "reason": reason,
        "body": message["Body"],
    }
