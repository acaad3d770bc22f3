"""The notification nouns: event types, member preferences, webhook endpoints and deliveries.

Plain data, no I/O (like chalicelib.domain, kept apart so the job nouns stay readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain import Role

DEFAULT_LOW_CREDITS_THRESHOLD = 2
MAX_LOW_CREDITS_THRESHOLD = 1_000_000


class EventType(StrEnum):
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_RETRIED = "job.retried"
    CREDITS_LOW = "credits.low"
    # Not a workspace event a receiver subscribes to: the email owners get when an endpoint stops.
    WEBHOOK_DISABLED = "webhook.disabled"


SUBSCRIBABLE = (
    EventType.JOB_COMPLETED,
    EventType.JOB_FAILED,
    EventType.JOB_CANCELLED,
    EventType.JOB_RETRIED,
    EventType.CREDITS_LOW,
)
# What a push notification can be about: a job of yours that finished.
PUSHABLE = (EventType.JOB_COMPLETED, EventType.JOB_FAILED)


def default_email_events(role: Role) -> frozenset[EventType]:
    """What a member gets by email until they choose: their jobs' outcomes; owners also credits.low."""
    base = {EventType.JOB_COMPLETED, EventType.JOB_FAILED}
    if role == Role.OWNER:
        base.add(EventType.CREDITS_LOW)
    return frozenset(base)


@dataclass(frozen=True)
class Event:
    """One notification event, as receivers get it (`payload` is its JSON object)."""

    id: str
    type: EventType
    timestamp: datetime
    workspace_id: str
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "timestamp": self.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "workspaceId": self.workspace_id,
            "data": self.data,
        }


@dataclass
class Preferences:
    user_id: str
    workspace_id: str
    role: Role
    email: str
    email_events: frozenset[EventType]
    chosen: bool  # False: the defaults for the role apply
    version: int = 0  # how often the choice changed (an unsubscribe link is bound to one)
    push_events: frozenset[EventType] = frozenset(PUSHABLE)


@dataclass(frozen=True)
class PushSubscription:
    """One browser (device) of a person: where its push service takes messages for it, and the
    keys that encrypt them (RFC 8291). The id is derived from the endpoint: subscribing the same
    browser again replaces it."""

    user_id: str
    id: str
    endpoint: str
    p256dh: str  # the browser's public key, base64url
    auth: str  # the shared authentication secret, base64url
    created_at: datetime
    user_agent: str = ""


@dataclass
class Endpoint:
    workspace_id: str
    id: str
    url: str
    event_types: list[EventType]
    secret: str
    created_at: datetime
    description: str = ""
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    failed_streak: int = 0
    created_by: str = ""

    def secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with: the current one, and the previous one while it is still valid."""
        keys = [self.secret]
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            keys.append(self.previous_secret)
        return keys


class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class WebhookDelivery:
    endpoint_id: str
    id: str
    workspace_id: str
    event_id: str
    event_type: str
    payload: str
    status: WebhookDeliveryStatus
    first_try_at: datetime
    attempts: int = 0
    next_try_at: datetime | None = None
    last_try_at: datetime | None = None
    last_response_code: int | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class WebhookDeliveryMessage:
    """What the notifications queue carries for one webhook try."""

    workspace_id: str
    endpoint_id: str
    delivery_id: str
    attempt: int  # the try this message is for (1 = the first)
    not_before: datetime | None = None  # a wait longer than one SQS delay: hop until then


@dataclass(frozen=True)
class PostResult:
    """What an endpoint answered: a status code, or why there was none (timeout, refused...)."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class MemberAddress:
    """A member as notifications see them; `chosen` None: the defaults for the role."""

    user_id: str
    email: str
    role: Role
    chosen: frozenset[EventType] | None = None
    version: int = 0  # how often the choice changed
    push_chosen: frozenset[EventType] | None = None  # None: both job events

    @property
    def email_events(self) -> frozenset[EventType]:
        return self.chosen if self.chosen is not None else default_email_events(self.role)

    @property
    def push_events(self) -> frozenset[EventType]:
        return self.push_chosen if self.push_chosen is not None else frozenset(PUSHABLE)
