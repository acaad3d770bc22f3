"""The jobs queue on SQS. One message = one attempt of one job."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings, get_settings
from chalicelib.domain import QueueMessage
from chalicelib.errors import QueueSendError, ValidationError


def encode(message: QueueMessage) -> str:
    body: dict[str, object] = {
        "jobId": message.job_id,
        "workspaceId": message.workspace_id,
        "attempt": message.attempt,
    }
    if message.task is not None:
        body["task"] = message.task
    return json.dumps(body, separators=(",", ":"))


def decode(body: str) -> QueueMessage:
    """Parse a message body; ValidationError for anything that is not one of ours."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        task = data.get("task")
        return QueueMessage(
            job_id=str(data["jobId"]),
            workspace_id=str(data["workspaceId"]),
            attempt=int(data["attempt"]),
            task=int(task) if task is not None else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("Not a job message") from exc


class SqsJobQueue:
    """The JobQueue port on SQS."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsJobQueue:
        client = boto3.session.Session().client(
            "sqs",
            region_name=settings.aws_region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10
            ),
        )
        url = settings.jobs_queue_url or client.get_queue_url(QueueName=settings.jobs_queue_name)["QueueUrl"]
        return cls(client, url)

    def send(self, message: QueueMessage) -> None:
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=encode(message))
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError() from exc


@cache
def default_queue() -> SqsJobQueue:
    return SqsJobQueue.from_settings(get_settings())
