"""Request and response bodies of the notification routes (settings, webhooks, deliveries)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from chalicelib.handlers.schemas import Schema, WholeNumber, WorkspaceIn
from chalicelib.notifications.domain import (
    MAX_LOW_CREDITS_THRESHOLD,
    PUSHABLE,
    SUBSCRIBABLE,
    Endpoint,
    Preferences,
    PushSubscription,
    WebhookDelivery,
)

# An event type a list may name, documented (the service refuses others in its own words).
EventName = Annotated[str, WithJsonSchema({"type": "string", "enum": [e.value for e in SUBSCRIBABLE]})]
PushEventName = Annotated[str, WithJsonSchema({"type": "string", "enum": [e.value for e in PUSHABLE]})]
# A whole number (not `false`, not "3") within the bounds the service holds it to.
Threshold = Annotated[
    WholeNumber,
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_LOW_CREDITS_THRESHOLD}),
]


class SettingsIn(WorkspaceIn):
    email_events: list[EventName] | None = Field(default=None, max_length=len(SUBSCRIBABLE))
    low_credits_threshold: Threshold | None = None
    push_events: list[PushEventName] | None = Field(default=None, max_length=len(PUSHABLE))


class SettingsOut(Schema):
    workspace_id: str
    role: str
    email: str
    email_events: list[str]
    customized: bool  # False: the defaults for the role
    low_credits_threshold: int
    event_types: list[str]
    push_events: list[str]  # what this member's browsers get (Web Push)
    push_event_types: list[str]

    @classmethod
    def of(cls, p: Preferences, threshold: int) -> SettingsOut:
        return cls(
            workspace_id=p.workspace_id,
            role=p.role.value,
            email=p.email,
            email_events=sorted(e.value for e in p.email_events),
            customized=p.chosen,
            low_credits_threshold=threshold,
            event_types=[e.value for e in SUBSCRIBABLE],
            push_events=sorted(e.value for e in p.push_events),
            push_event_types=[e.value for e in PUSHABLE],
        )


class EndpointIn(WorkspaceIn):
    url: str = Field(min_length=1, max_length=2048)
    event_types: list[EventName] = Field(min_length=1, max_length=len(SUBSCRIBABLE))
    description: str = Field(default="", max_length=200)


class EndpointOut(Schema):
    id: str
    workspace_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    failed_streak: int
    created_at: datetime
    previous_secret_valid_until: datetime | None

    @classmethod
    def of(cls, e: Endpoint) -> EndpointOut:
        return cls(
            id=e.id,
            workspace_id=e.workspace_id,
            url=e.url,
            event_types=[t.value for t in e.event_types],
            description=e.description,
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            failed_streak=e.failed_streak,
            created_at=e.created_at,
            previous_secret_valid_until=e.previous_secret_until if e.previous_secret else None,
        )


class RegisteredOut(Schema):
    endpoint: EndpointOut
    secret: str  # shown once: only this answer and a rotation's carry it


class EndpointEnvelope(Schema):
    endpoint: EndpointOut


class EndpointListOut(Schema):
    endpoints: list[EndpointOut]


class SecretOut(Schema):
    secret: str
    previous_secret_valid_until: datetime | None


class DeletedOut(Schema):
    deleted: bool


class DeliveryOut(Schema):
    id: str
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_response_code: int | None
    last_error: str | None
    first_try_at: datetime
    last_try_at: datetime | None
    next_try_at: datetime | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            status=d.status.value,
            attempts=d.attempts,
            last_response_code=d.last_response_code,
            last_error=d.last_error,
            first_try_at=d.first_try_at,
            last_try_at=d.last_try_at,
            next_try_at=d.next_try_at,
        )


class DeliveryLogOut(Schema):
    endpoint: EndpointOut
    deliveries: list[DeliveryOut]


class DeliveryEnvelope(Schema):
    delivery: DeliveryOut


# --- Web Push -------------------------------------------------------------------------------------
class PublicKeyOut(Schema):
    public_key: str  # the VAPID public key: the browser's applicationServerKey (base64url)


class PushKeysIn(Schema):
    p256dh: str = Field(min_length=1, max_length=200)
    auth: str = Field(min_length=1, max_length=100)


class PushSubscriptionIn(Schema):
    """What the browser's PushSubscription.toJSON() gives (expirationTime is ignored)."""

    endpoint: str = Field(min_length=1, max_length=2048)
    keys: PushKeysIn
    expiration_time: int | None = None


class PushSubscriptionOut(Schema):
    id: str
    endpoint: str
    created_at: datetime
    user_agent: str

    @classmethod
    def of(cls, s: PushSubscription) -> PushSubscriptionOut:
        return cls(id=s.id, endpoint=s.endpoint, created_at=s.created_at, user_agent=s.user_agent)


class PushSubscriptionEnvelope(Schema):
    subscription: PushSubscriptionOut


class PushSubscriptionListOut(Schema):
    subscriptions: list[PushSubscriptionOut]
