"""The notifications queue on SQS: events to fan out, and webhook tries (with their delay).

Two message kinds in one queue: {"kind": "event", "event": {...}} and
{"kind": "delivery", "workspaceId", "endpointId", "deliveryId", "attempt", "notBefore"}.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings
from chalicelib.errors import QueueSendError, ValidationError
from chalicelib.notifications.domain import WebhookDeliveryMessage


def encode_delivery(message: WebhookDeliveryMessage) -> str:
    return json.dumps(
        {
            "kind": "delivery",
            "workspaceId": message.workspace_id,
            "endpointId": message.endpoint_id,
            "deliveryId": message.delivery_id,
            "attempt": message.attempt,
            "notBefore": message.not_before.isoformat() if message.not_before else None,
        },
        separators=(",", ":"),
    )


def decode(body: str) -> dict[str, Any] | WebhookDeliveryMessage:
    """An event (its JSON object) or a delivery message; ValidationError for anything else."""
    try:
        data = json.loads(body)
        if data["kind"] == "event":
            event = data["event"]
            if not isinstance(event, dict) or not {"id", "type", "workspaceId", "data"} <= event.keys():
                raise ValueError("not an event")
            return event
        not_before = data.get("notBefore")
        return WebhookDeliveryMessage(
            workspace_id=str(data["workspaceId"]),
            endpoint_id=str(data["endpointId"]),
            delivery_id=str(data["deliveryId"]),
            attempt=int(data["attempt"]),
            not_before=datetime.fromisoformat(not_before) if not_before else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError("Not a notifications message") from exc


class SqsNotificationQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsNotificationQueue:
        client = boto3.session.Session().client(
            "sqs",
            region_name=settings.aws_region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10
            ),
        )
        url = settings.notifications_queue_url
        if not url:
            try:
                url = client.get_queue_url(QueueName=settings.notifications_queue_name)["QueueUrl"]
            except (ClientError, BotoCoreError) as exc:
                raise QueueSendError("The notifications queue is unavailable") from exc
        return cls(client, url)

    def _send(self, body: str, delay: int) -> None:
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay)
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not queue the notification") from exc

    def send_event(self, payload: dict[str, Any]) -> None:
        self._send(json.dumps({"kind": "event", "event": payload}, separators=(",", ":")), 0)

    def send_delivery(self, message: WebhookDeliveryMessage, delay_seconds: int) -> None:
        self._send(encode_delivery(message), max(0, min(900, delay_seconds)))
