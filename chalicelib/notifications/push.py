"""Web Push: notifications about a person's jobs that reach their browser with no page open.

The dashboard registers a service worker and, after the person opts in on a device, subscribes
with the VAPID public key; the subscription (the push service's endpoint URL and the browser's
keys) is stored for the person. When one of their jobs completes or fails, and that event is in
their push choice, the notifier sends a small encrypted payload to each of their subscriptions.
A push service that answers 404 or 410 has dropped the subscription: it is removed. Anything
else that fails is logged and not retried (a notification hours late is worse than none).

The endpoint is a URL the browser chose, so it is checked like a webhook URL (SSRF: https to
public addresses only, the checked address connected to) at subscription and before each push.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

from chalicelib.domain import Principal
from chalicelib.errors import NotFoundError, ServiceUnavailableError, ValidationError
from chalicelib.notifications import emails
from chalicelib.notifications.domain import EventType, MemberAddress, PushSubscription
from chalicelib.notifications.endpoint_urls import check_url
from chalicelib.notifications.ports import NotifyServices, PushSender
from chalicelib.observability import logger

GONE = (404, 410)  # RFC 8030: the subscription expired or was unsubscribed
MARK_DAYS = 7


class PushSubscriptionNotFoundError(NotFoundError):
    default_message = "Push subscription not found"


class PushNotConfiguredError(ServiceUnavailableError):
    default_message = "Push notifications are not configured here (VAPID_SECRET_ID)"


def _sender(ctx: NotifyServices) -> PushSender:
    if ctx.pusher is None:
        raise PushNotConfiguredError()
    return ctx.pusher


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(name: str, value: str, size: int) -> str:
    try:
        raw = _unb64(value)
    except ValueError as exc:
        raise ValidationError(f"keys.{name} is not base64url") from exc
    if len(raw) != size or (name == "p256dh" and raw[0] != 4):
        raise ValidationError(f"keys.{name} is not a valid key")
    return value.rstrip("=")


def public_key(ctx: NotifyServices) -> str:
    return _sender(ctx).public_key()


def subscription_id(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()[:32]


def subscribe(
    ctx: NotifyServices, principal: Principal, endpoint: str, p256dh: str, auth: str, user_agent: str = ""
) -> PushSubscription:
    """Store this browser's subscription for the person (the same endpoint again replaces it)."""
    _sender(ctx)
    check_url(endpoint, ctx.resolve, ctx.settings.webhook_allow_local)
    subscription = PushSubscription(
        user_id=principal.user_id,
        id=subscription_id(endpoint),
        endpoint=endpoint,
        p256dh=_key("p256dh", p256dh, 65),
        auth=_key("auth", auth, 16),
        created_at=ctx.clock(),
        user_agent=user_agent[:200],
    )
    existing = {s.id for s in ctx.store.push_subscriptions_of(principal.user_id)}
    if subscription.id not in existing and len(existing) >= ctx.settings.push_max_subscriptions:
        raise ValidationError(
            f"You have {len(existing)} devices subscribed, the most allowed: remove one first"
        )
    ctx.store.put_push_subscription(subscription)
    return subscription


def subscriptions(ctx: NotifyServices, principal: Principal) -> list[PushSubscription]:
    return ctx.store.push_subscriptions_of(principal.user_id)


def unsubscribe(ctx: NotifyServices, principal: Principal, subscription: str) -> None:
    if not ctx.store.delete_push_subscription(principal.user_id, subscription):
        raise PushSubscriptionNotFoundError()


def payload(ctx: NotifyServices, event: dict[str, Any]) -> bytes:
    """What the service worker shows: a title, a line, and the job card's link."""
    job = event["data"]["job"]
    name = job.get("originalFilename") or "Your video"
    if event["type"] == EventType.JOB_COMPLETED:
        title, body = f"Ready: {name}", "Your video is ready to download."
    else:
        error = event["data"].get("error") or {}
        title = f"Failed: {name}"
        body = " ".join(filter(None, [error.get("message") or job.get("error"), error.get("suggestion")]))
    message = {
        "type": event["type"],
        "eventId": event["id"],
        "jobId": job["id"],
        "workspaceId": event["workspaceId"],
        "title": title,
        "body": body or "Processing failed.",
        "url": emails.job_link(ctx.settings.dashboard_url, event["workspaceId"], job["id"]),
        "tag": f"job-{job['id']}",
    }
    return json.dumps(message, separators=(",", ":")).encode()


def push_once(ctx: NotifyServices, event: dict[str, Any], member: MemberAddress) -> int:
    """Push this job event to each of the member's subscriptions, once per subscription (the
    event may be delivered again); returns how many push services accepted it."""
    if ctx.pusher is None or EventType(event["type"]) not in member.push_events:
        return 0
    body = payload(ctx, event)
    accepted = 0
    for subscription in ctx.store.push_subscriptions_of(member.user_id):
        mark = f"push:{subscription.id}"
        if not ctx.store.claim_email(event["id"], mark, ctx.clock() + timedelta(days=MARK_DAYS)):
            continue
        try:
            accepted += _send(ctx, subscription, body)
        except Exception:  # never the event's other channels' problem (webhooks come after this)
            logger().exception("push failed", extra={"subscription_id": subscription.id})
    return accepted


def _send(ctx: NotifyServices, subscription: PushSubscription, body: bytes) -> int:
    assert ctx.pusher is not None
    extra = {"user_id": subscription.user_id, "subscription_id": subscription.id}
    try:
        addresses = check_url(subscription.endpoint, ctx.resolve, ctx.settings.webhook_allow_local)
    except ValidationError as refused:  # its host now resolves somewhere it may not go
        logger().warning("push endpoint refused", extra={**extra, "reason": refused.message})
        return 0
    result = ctx.pusher.push(subscription, addresses, body)
    if result.ok:
        return 1
    if result.status in GONE:
        ctx.store.delete_push_subscription(subscription.user_id, subscription.id)
        logger().info("push subscription gone: removed", extra={**extra, "status": result.status})
        return 0
    logger().warning("push not accepted", extra={**extra, "status": result.status, "error": result.error})
    return 0
