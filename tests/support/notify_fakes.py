"""In-memory stand-ins for the notification ports, with the adapters' conditional behaviour."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain import Job, Membership, Role
from chalicelib.errors import NotFoundError
from chalicelib.notifications.domain import (
    Endpoint,
    EventType,
    Mail,
    MemberAddress,
    PostResult,
    PushSubscription,
    WebhookDelivery,
    WebhookDeliveryMessage,
    WebhookDeliveryStatus,
)
from chalicelib.notifications.ports import NotifyServices


class FakeStore:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.members: dict[tuple[str, str], Membership] = {}
        self.choices: dict[tuple[str, str], list[str] | None] = {}
        self.versions: dict[tuple[str, str], int] = {}
        self.thresholds: dict[str, int] = {}
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.deliveries: dict[tuple[str, str], WebhookDelivery] = {}
        self.emailed: set[tuple[str, str]] = set()
        self.slots: dict[str, tuple[str, datetime]] = {}  # slot -> (holder, until)
        self.push_choices: dict[tuple[str, str], list[str] | None] = {}
        self.subscriptions: dict[tuple[str, str], PushSubscription] = {}

    def add_member(self, user_id: str, workspace_id: str, role: Role = Role.OWNER, email: str = "") -> None:
        self.members[(user_id, workspace_id)] = Membership(
            user_id, workspace_id, role, email or f"{user_id}@x.test"
        )

    def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        return self.members.get((user_id, workspace_id))

    def memberships_of(self, user_id: str) -> list[Membership]:
        return [m for (u, _), m in self.members.items() if u == user_id]

    def members_of(self, workspace_id: str) -> list[MemberAddress]:
        found = []
        for (user, ws), m in self.members.items():
            if ws == workspace_id:
                chosen, pushed = self.choices.get((user, ws)), self.push_choices.get((user, ws))
                events = frozenset(EventType(e) for e in chosen) if chosen is not None else None
                push = frozenset(EventType(e) for e in pushed) if pushed is not None else None
                found.append(
                    MemberAddress(user, m.email, m.role, events, self.versions.get((user, ws), 0), push)
                )
        return found

    def set_email_events(
        self,
        user_id: str,
        workspace_id: str,
        events: Sequence[str] | None,
        expected_version: int | None = None,
    ) -> bool:
        key = (user_id, workspace_id)
        if key not in self.members:
            raise NotFoundError("Workspace not found")
        if expected_version is not None and self.versions.get(key, 0) != expected_version:
            return False
        self.choices[key] = list(events) if events is not None else None
        self.versions[key] = self.versions.get(key, 0) + 1
        return True

    def get_low_credits_threshold(self, workspace_id: str) -> int | None:
        return self.thresholds.get(workspace_id)

    def set_low_credits_threshold(self, workspace_id: str, threshold: int) -> None:
        self.thresholds[workspace_id] = threshold

    def put_endpoint(self, endpoint: Endpoint) -> None:
        self.endpoints[(endpoint.workspace_id, endpoint.id)] = dataclasses.replace(endpoint)

    def get_endpoint(self, workspace_id: str, endpoint_id: str) -> Endpoint | None:
        found = self.endpoints.get((workspace_id, endpoint_id))
        return dataclasses.replace(found) if found else None

    def endpoints_of(self, workspace_id: str) -> list[Endpoint]:
        return [dataclasses.replace(e) for (ws, _), e in self.endpoints.items() if ws == workspace_id]

    def delete_endpoint(self, workspace_id: str, endpoint_id: str) -> bool:
        return self.endpoints.pop((workspace_id, endpoint_id), None) is not None

    def rotate_secret(self, workspace_id: str, endpoint_id: str, secret: str, old_until: datetime) -> bool:
        e = self.endpoints.get((workspace_id, endpoint_id))
        if e is None:
            return False
        e.previous_secret, e.previous_secret_until, e.secret = e.secret, old_until, secret
        return True

    def set_endpoint_enabled(
        self, workspace_id: str, endpoint_id: str, enabled: bool, reason: str | None
    ) -> bool:
        e = self.endpoints.get((workspace_id, endpoint_id))
        if e is None or e.enabled == enabled:
            return False
        e.enabled = enabled
        e.disabled_reason = None if enabled else (reason or "disabled")
        if enabled:
            e.failed_streak = 0
        return True

    def count_failed_delivery(self, workspace_id: str, endpoint_id: str) -> int:
        e = self.endpoints.get((workspace_id, endpoint_id))
        if e is None:
            return 0
        e.failed_streak += 1
        return e.failed_streak

    def reset_failed_streak(self, workspace_id: str, endpoint_id: str) -> None:
        e = self.endpoints.get((workspace_id, endpoint_id))
        if e is not None:
            e.failed_streak = 0

    def create_delivery(self, delivery: WebhookDelivery) -> bool:
        key = (delivery.endpoint_id, delivery.id)
        if key in self.deliveries:
            return False
        self.deliveries[key] = dataclasses.replace(delivery)
        return True

    def get_delivery(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
        found = self.deliveries.get((endpoint_id, delivery_id))
        return dataclasses.replace(found) if found else None

    def deliveries_of(self, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
        mine = sorted((d for (e, _), d in self.deliveries.items() if e == endpoint_id), key=lambda d: d.id)
        return [dataclasses.replace(d) for d in reversed(mine)][:limit]

    def record_try(self, delivery: WebhookDelivery, expected_attempts: int) -> bool:
        key = (delivery.endpoint_id, delivery.id)
        current = self.deliveries.get(key)
        if (
            current is None
            or current.attempts != expected_attempts
            or current.status != WebhookDeliveryStatus.PENDING
        ):
            return False
        self.deliveries[key] = dataclasses.replace(delivery)
        return True

    def restart_delivery(self, endpoint_id: str, delivery_id: str, now: datetime) -> WebhookDelivery | None:
        current = self.deliveries.get((endpoint_id, delivery_id))
        if current is None or current.status == WebhookDeliveryStatus.PENDING:
            return None
        current.status, current.first_try_at, current.next_try_at = WebhookDeliveryStatus.PENDING, now, now
        return dataclasses.replace(current)

    def claim_try_slot(
        self, workspace_id: str, holder: str, now: datetime, until: datetime, slots: int
    ) -> str | None:
        for n in range(slots):
            slot = f"tries#{workspace_id}#{n}"
            held = self.slots.get(slot)
            if held is None or held[1] < now:
                self.slots[slot] = (holder, until)
                return slot
        return None

    def free_try_slot(self, slot: str, holder: str) -> None:
        if self.slots.get(slot, ("", None))[0] == holder:
            del self.slots[slot]

    def claim_email(self, event_id: str, recipient: str, expires: datetime) -> bool:
        if (event_id, recipient) in self.emailed:
            return False
        self.emailed.add((event_id, recipient))
        return True

    def release_email(self, event_id: str, recipient: str) -> None:
        self.emailed.discard((event_id, recipient))

    def set_push_events(self, user_id: str, workspace_id: str, events: Sequence[str] | None) -> None:
        if (user_id, workspace_id) not in self.members:
            raise NotFoundError("Workspace not found")
        self.push_choices[(user_id, workspace_id)] = list(events) if events is not None else None

    def put_push_subscription(self, subscription: PushSubscription) -> None:
        self.subscriptions[(subscription.user_id, subscription.id)] = subscription

    def push_subscriptions_of(self, user_id: str) -> list[PushSubscription]:
        return [s for (u, _), s in sorted(self.subscriptions.items()) if u == user_id]

    def delete_push_subscription(self, user_id: str, subscription_id: str) -> bool:
        return self.subscriptions.pop((user_id, subscription_id), None) is not None


class FakePusher:
    """Answers each push with the next scripted result (then 201); records what it was given."""

    def __init__(self, *results: PostResult) -> None:
        self.results = list(results)
        self.pushed: list[tuple[PushSubscription, bytes]] = []

    def public_key(self) -> str:
        return "BPublicKey"

    def push(self, subscription: PushSubscription, addresses: Sequence[str], payload: bytes) -> PostResult:
        self.pushed.append((subscription, payload))
        return self.results.pop(0) if self.results else PostResult(201)


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.fail = False

    def send(self, mail: Mail) -> None:
        if self.fail:
            from chalicelib.errors import ServiceUnavailableError

            raise ServiceUnavailableError("Could not send the email")
        self.sent.append(mail)


class FakeSender:
    """Answers with the next scripted result (then 200); records what was posted."""

    def __init__(self, *results: PostResult) -> None:
        self.results = list(results)
        self.posts: list[dict[str, Any]] = []

    def post(
        self,
        url: str,
        addresses: Sequence[str],
        message_id: str,
        body: str,
        secrets: Sequence[str],
        at: datetime,
    ) -> PostResult:
        self.posts.append(
            {
                "url": url,
                "addresses": list(addresses),
                "id": message_id,
                "body": body,
                "secrets": list(secrets),
            }
        )
        return self.results.pop(0) if self.results else PostResult(200)


class FakeQueue:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[tuple[WebhookDeliveryMessage, int]] = []

    def send_event(self, payload: dict[str, Any]) -> None:
        self.events.append(payload)

    def send_delivery(self, message: WebhookDeliveryMessage, delay_seconds: int) -> None:
        self.deliveries.append((message, delay_seconds))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def public_resolver(host: str) -> list[str]:
    """A name-resolution stub: no lookup leaves the process."""
    table = {
        "hooks.example.com": ["93.184.216.34"],
        "internal.example.com": ["10.0.0.7"],
        "metadata.example.com": ["169.254.169.254"],
        "mixed.example.com": ["93.184.216.34", "192.168.1.2"],
        "localhost": ["127.0.0.1"],
    }
    import ipaddress

    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return table[host]


def notify_context(
    **settings: Any,
) -> tuple[NotifyServices, FakeStore, FakeMailer, FakeSender, FakeQueue, Clock]:
    store, mailer, sender, queue, clock = FakeStore(), FakeMailer(), FakeSender(), FakeQueue(), Clock()
    base = {
        "notify_signing_key": "k" * 32,
        "dashboard_url": "https://app.test",
        "public_api_url": "https://api.test",
    }
    ctx = NotifyServices(
        settings=Settings(**{**base, **settings}),
        store=store,
        mailer=mailer,
        sender=sender,
        queue=queue,
        resolve=public_resolver,
        clock=clock,
        random=lambda: 0.0,
    )
    return ctx, store, mailer, sender, queue, clock
