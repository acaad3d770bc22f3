"""What the notification use cases need from the outside world, and the context they run with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain import Job, Membership, utcnow
from chalicelib.notifications.domain import (
    Endpoint,
    Mail,
    MemberAddress,
    PostResult,
    PushSubscription,
    WebhookDelivery,
    WebhookDeliveryMessage,
)

if TYPE_CHECKING:
    from chalicelib.config import Settings


class NotificationStore(Protocol):
    """DynamoDB: preferences, endpoints, deliveries, sent-email marks. Outages: ServiceUnavailableError."""

    def get_job(self, job_id: str) -> Job | None: ...
    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None: ...
    def memberships_of(self, user_id: str) -> list[Membership]: ...
    def members_of(self, workspace_id: str) -> list[MemberAddress]: ...
    def set_email_events(
        self,
        user_id: str,
        workspace_id: str,
        events: Sequence[str] | None,
        expected_version: int | None = None,
    ) -> bool:
        """The member's choice (None: back to the defaults), its version counted up. With
        `expected_version`: only if the choice is still at that version (False when it moved on).
        NotFoundError when not a member."""
        ...

    def get_low_credits_threshold(self, workspace_id: str) -> int | None: ...
    def set_low_credits_threshold(self, workspace_id: str, threshold: int) -> None: ...

    def put_endpoint(self, endpoint: Endpoint) -> None: ...
    def get_endpoint(self, workspace_id: str, endpoint_id: str) -> Endpoint | None: ...
    def endpoints_of(self, workspace_id: str) -> list[Endpoint]: ...
    def delete_endpoint(self, workspace_id: str, endpoint_id: str) -> bool: ...
    def rotate_secret(
        self, workspace_id: str, endpoint_id: str, secret: str, old_until: datetime
    ) -> bool: ...
    def set_endpoint_enabled(
        self, workspace_id: str, endpoint_id: str, enabled: bool, reason: str | None
    ) -> bool:
        """Enable (streak reset) or disable; False when it was already so (or is gone)."""
        ...

    def count_failed_delivery(self, workspace_id: str, endpoint_id: str) -> int:
        """One more delivery in a row ended failed: the new streak."""
        ...

    def reset_failed_streak(self, workspace_id: str, endpoint_id: str) -> None: ...

    def create_delivery(self, delivery: WebhookDelivery) -> bool:
        """False when this event already has a delivery for this endpoint (a redelivered event)."""
        ...

    def get_delivery(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None: ...
    def deliveries_of(self, endpoint_id: str, limit: int) -> list[WebhookDelivery]: ...
    def record_try(self, delivery: WebhookDelivery, expected_attempts: int) -> bool:
        """Save the outcome of a try, if no other try was recorded since (attempts = expected)."""
        ...

    def restart_delivery(self, endpoint_id: str, delivery_id: str, now: datetime) -> WebhookDelivery | None:
        """A finished delivery back to pending (resend); None when it is still pending or missing."""
        ...

    def claim_try_slot(
        self, workspace_id: str, holder: str, now: datetime, until: datetime, slots: int
    ) -> str | None:
        """One of the workspace's `slots` webhook try slots, held by `holder` until `until` (a
        slot whose holder died frees itself then); None when every one is held."""
        ...

    def free_try_slot(self, slot: str, holder: str) -> None:
        """Give the slot back (if `holder` still holds it)."""
        ...

    def claim_email(self, event_id: str, recipient: str, expires: datetime) -> bool:
        """Mark (event, recipient) as mailed; False when it already was."""
        ...

    def release_email(self, event_id: str, recipient: str) -> None: ...

    def set_push_events(self, user_id: str, workspace_id: str, events: Sequence[str] | None) -> None:
        """The member's push choice (None: the defaults). NotFoundError when not a member."""
        ...

    def put_push_subscription(self, subscription: PushSubscription) -> None: ...
    def push_subscriptions_of(self, user_id: str) -> list[PushSubscription]: ...
    def delete_push_subscription(self, user_id: str, subscription_id: str) -> bool:
        """False when there was none."""
        ...


class Mailer(Protocol):
    """SES. Raises ServiceUnavailableError when the mail could not be handed over."""

    def send(self, mail: Mail) -> None: ...


class WebhookSender(Protocol):
    """POSTs one signed event body. Never raises for what the endpoint does: PostResult says it."""

    def post(
        self,
        url: str,
        addresses: Sequence[str],
        message_id: str,
        body: str,
        secrets: Sequence[str],
        at: datetime,
    ) -> PostResult:
        """POST to `url`, connecting to one of `addresses` (the ones checked), no redirects."""
        ...


class PushSender(Protocol):
    """Web Push (RFC 8030) with VAPID (RFC 8292) and an encrypted payload (RFC 8291). Never
    raises for what the push service does: PostResult says it (404/410: the subscription is gone)."""

    def public_key(self) -> str:
        """The VAPID public key (base64url, uncompressed P-256 point): the browser's
        applicationServerKey. ServiceUnavailableError when push is not configured."""
        ...

    def push(
        self, subscription: PushSubscription, addresses: Sequence[str], payload: bytes
    ) -> PostResult: ...


class NotificationQueue(Protocol):
    """The two notification queues on SQS: events (to fan out) and webhook tries. Raises
    QueueSendError when a message could not be sent."""

    def send_event(self, payload: dict[str, Any]) -> None: ...
    def send_delivery(self, message: WebhookDeliveryMessage, delay_seconds: int) -> None: ...


Resolver = Callable[[str], list[str]]  # host name -> its addresses (ValidationError if none)


@dataclass
class NotifyServices:
    settings: Settings
    store: NotificationStore
    mailer: Mailer
    sender: WebhookSender
    queue: NotificationQueue
    resolve: Resolver
    clock: Callable[[], datetime] = field(default=utcnow)
    random: Callable[[], float] = field(default=lambda: 0.5)  # jitter in [0, 1)
    # The unsubscribe links' key, read when a link is made or checked (deployed: a secret);
    # None: NOTIFY_SIGNING_KEY from the settings.
    signing_key: Callable[[], str] | None = None
    pusher: PushSender | None = None  # None: no Web Push (its routes answer 503)
