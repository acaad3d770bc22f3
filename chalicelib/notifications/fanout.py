"""Fan-out: one event becomes the emails its members asked for, the pushes to their browsers
(chalicelib.notifications.push) and one delivery per endpoint.

Each step is idempotent on the event's id, because the queue (like the stream before it)
delivers at least once: an email is claimed per (event, recipient) before it is sent, and a
delivery is created per (endpoint, event) with a condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import Role
from chalicelib.notifications import emails, push
from chalicelib.notifications.domain import (
    PUSHABLE,
    Endpoint,
    EventType,
    MemberAddress,
    WebhookDelivery,
    WebhookDeliveryMessage,
    WebhookDeliveryStatus,
)
from chalicelib.notifications.ports import NotifyServices
from chalicelib.notifications.preferences import unsubscribe_url

EMAIL_MARK_DAYS = 7
DELIVERY_KEEP_DAYS = 30
JOB_EVENTS = (EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_CANCELLED, EventType.JOB_RETRIED)


@dataclass(frozen=True)
class FanOut:
    emails: int
    deliveries: int
    pushes: int = 0


def recipients(ctx: NotifyServices, event: dict[str, Any]) -> list[MemberAddress]:
    """The members this event emails: for a job, the one who started it; else every member;
    in both cases only those whose settings include the event type."""
    kind = EventType(event["type"])
    members = ctx.store.members_of(event["workspaceId"])
    if kind in JOB_EVENTS:
        starter = event["data"].get("startedBy")
        members = [m for m in members if m.user_id == starter]
    elif kind == EventType.WEBHOOK_DISABLED:
        members = [m for m in members if m.role == Role.OWNER]
        return [m for m in members if m.email]
    return [m for m in members if m.email and kind in m.email_events]


def push_recipients(ctx: NotifyServices, event: dict[str, Any]) -> list[MemberAddress]:
    """Whom a job's outcome is pushed to: the member who started the job (their devices)."""
    if EventType(event["type"]) not in PUSHABLE:
        return []
    starter = event["data"].get("startedBy")
    return [m for m in ctx.store.members_of(event["workspaceId"]) if m.user_id == starter]


def email_once(ctx: NotifyServices, event: dict[str, Any], member: MemberAddress) -> bool:
    now = ctx.clock()
    if not ctx.store.claim_email(event["id"], member.user_id, now + timedelta(days=EMAIL_MARK_DAYS)):
        return False
    job = event["data"].get("job") or {}
    link = (
        emails.job_link(ctx.settings.dashboard_url, event["workspaceId"], job["id"])
        if job
        else ctx.settings.dashboard_url
    )
    kind = EventType(event["type"])
    # The disabled-endpoint notice is an owner's duty, not a choice: its link goes to the settings.
    unsubscribe = (
        unsubscribe_url(ctx, member.user_id, event["workspaceId"], kind, member.version)
        if kind != EventType.WEBHOOK_DISABLED
        else f"{ctx.settings.dashboard_url.rstrip('/')}/#notification-settings"
    )
    try:
        ctx.mailer.send(emails.compose(event, member.email, link, unsubscribe))
    except Exception:
        ctx.store.release_email(event["id"], member.user_id)  # the redelivery sends it
        raise
    return True


def subscribed(endpoint: Endpoint, kind: str) -> bool:
    return endpoint.enabled and kind in {e.value for e in endpoint.event_types}


def delivery_id(event: dict[str, Any]) -> str:
    at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    return f"{int(at.timestamp() * 1000):013d}-{event['id']}"


def queue_delivery(ctx: NotifyServices, endpoint: Endpoint, event: dict[str, Any], payload: str) -> bool:
    now = ctx.clock()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        id=delivery_id(event),
        workspace_id=endpoint.workspace_id,
        event_id=event["id"],
        event_type=event["type"],
        payload=payload,
        status=WebhookDeliveryStatus.PENDING,
        first_try_at=now,
        next_try_at=now,
    )
    if not ctx.store.create_delivery(delivery):
        existing = ctx.store.get_delivery(endpoint.id, delivery.id)
        if existing is None or existing.status != WebhookDeliveryStatus.PENDING or existing.attempts:
            return False  # already under way: its own messages carry it
    # Created, or created by a run that died before it sent this: send (a duplicate is a no-op).
    message = WebhookDeliveryMessage(endpoint.workspace_id, endpoint.id, delivery.id, attempt=1)
    ctx.queue.send_delivery(message, delay_seconds=0)
    return True


def fan_out(ctx: NotifyServices, event: dict[str, Any], payload: str) -> FanOut:
    """Email the members who asked for it, and queue a delivery to each subscribed endpoint.

    `payload` is the event's JSON as webhooks receive it, byte for byte on every try.
    """
    sent = sum(1 for member in recipients(ctx, event) if email_once(ctx, event, member))
    pushed = sum(push.push_once(ctx, event, member) for member in push_recipients(ctx, event))
    queued = 0
    if EventType(event["type"]) != EventType.WEBHOOK_DISABLED:
        for endpoint in ctx.store.endpoints_of(event["workspaceId"]):
            if subscribed(endpoint, event["type"]) and queue_delivery(ctx, endpoint, event, payload):
                queued += 1
    return FanOut(emails=sent, deliveries=queued, pushes=pushed)
