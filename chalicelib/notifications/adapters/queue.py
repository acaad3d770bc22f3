"""The notification queues on SQS: events to fan out, and webhook tries (with their delay).

The notifications queue carries events, {"kind": "event", "event": {...}}; the webhook queue
carries tries, {"kind": "delivery", "workspaceId", "endpointId", "deliveryId", "attempt",
"notBefore"}. Before the two were separated one queue carried both: a try found on the
notifications queue is forwarded to the webhook queue, not tried there.
"""

from __future__ import annotations

import json
import threading
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
    """Both queues on one client. A queue's URL is looked up by name only when it is not set and
    the queue is used (the stream's function, say, never sends a webhook try)."""

    def __init__(self, client: Any, events: str | None, webhooks: str | None, settings: Settings) -> None:
        self._client = client
        self._urls = {"events": events, "webhooks": webhooks}
        self._names = {
            "events": settings.notifications_queue_name,
            "webhooks": settings.webhook_queue_name,
        }
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsNotificationQueue:
        client = boto3.session.Session().client(
            "sqs",
            region_name=settings.aws_region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10
            ),
        )
        return cls(
            client, settings.notifications_queue_url or None, settings.webhook_queue_url or None, settings
        )

    def _url(self, queue: str) -> str:
        with self._lock:
            url = self._urls[queue]
            if url is None:
                try:
                    url = str(self._client.get_queue_url(QueueName=self._names[queue])["QueueUrl"])
                except (ClientError, BotoCoreError) as exc:
                    raise QueueSendError("The notifications queue is unavailable") from exc
                self._urls[queue] = url
            return url

    def _send(self, queue: str, body: str, delay: int) -> None:
        try:
            self._client.send_message(QueueUrl=self._url(queue), MessageBody=body, DelaySeconds=delay)
        except (ClientError, BotoCoreError) as exc:
            raise QueueSendError("Could not queue the notification") from exc

    def send_event(self, payload: dict[str, Any]) -> None:
        self._send("events", json.dumps({"kind": "event", "event": payload}, separators=(",", ":")), 0)

    def send_delivery(self, message: WebhookDeliveryMessage, delay_seconds: int) -> None:
        self._send("webhooks", encode_delivery(message), max(0, min(900, delay_seconds)))
