"""Webhook endpoints: registration by owners, and delivery with retries (Standard Webhooks).

Delivery is at least once. Each try POSTs the same body, signed with the endpoint's secret (and
with the previous secret too for a day after a rotation). A 2xx answer delivers it; anything
else (another status, a timeout, a refused connection) schedules the next try after an
exponential backoff with jitter: base * 2^(try-1), at most WEBHOOK_RETRY_MAX_DELAY_SECONDS,
times a random factor in [0.5, 1). SQS delays a message at most 15 minutes, so a longer wait
is made of hops: the message comes back, sees it is early, and goes back for the rest.
When the next try would start more than WEBHOOK_RETRY_WINDOW_SECONDS (24 h) after the first,
the delivery is failed instead; WEBHOOK_DISABLE_AFTER_FAILURES failed deliveries in a row
disable the endpoint and email the workspace's owners (the notice is an event like any other).

Tenants cannot slow each other down: a try has one deadline (WEBHOOK_TIMEOUT_SECONDS, however
slowly the endpoint answers), runs in the webhook function (never beside a fan-out), and holds
one of its workspace's WEBHOOK_MAX_CONCURRENT_TRIES slots while it runs. A try that finds every
slot held goes back to the queue for a moment without counting as a try, so one workspace's slow
endpoints occupy at most that many of the function's (reserved) concurrent runs.
"""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chalicelib.domain import Principal, Role, new_id
from chalicelib.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from chalicelib.notifications.domain import (
    Endpoint,
    EventType,
    PostResult,
    WebhookDelivery,
    WebhookDeliveryMessage,
    WebhookDeliveryStatus,
)
from chalicelib.notifications.endpoint_urls import check_url, normalized
from chalicelib.notifications.ports import NotifyServices
from chalicelib.notifications.preferences import parse_events
from chalicelib.processing.access import resolve_workspace

SQS_MAX_DELAY = 900
MAX_DESCRIPTION = 200
DELIVERY_LOG_LIMIT = 50
SLOT_MARGIN_SECONDS = 30  # a slot outlives its try by this much (then a dead holder's slot frees itself)


class EndpointNotFoundError(NotFoundError):
    default_message = "Webhook endpoint not found"


class WebhookDeliveryNotFoundError(NotFoundError):
    default_message = "Delivery not found"


@dataclass(frozen=True)
class Registered:
    endpoint: Endpoint
    secret: str  # shown once


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _owner_workspace(ctx: NotifyServices, principal: Principal, workspace_id: str | None) -> str:
    membership = resolve_workspace(ctx.store, principal, workspace_id)
    if membership.role != Role.OWNER:
        raise ForbiddenError("Only workspace owners can manage webhooks")
    return membership.workspace_id


def _endpoint(ctx: NotifyServices, workspace_id: str, endpoint_id: str) -> Endpoint:
    endpoint = ctx.store.get_endpoint(workspace_id, endpoint_id)
    if endpoint is None:
        raise EndpointNotFoundError()
    return endpoint


def register(
    ctx: NotifyServices,
    principal: Principal,
    workspace_id: str | None,
    url: str,
    event_types: Sequence[str],
    description: str = "",
) -> Registered:
    """Check everything first (nothing is stored for a refused registration), then store it."""
    ws = _owner_workspace(ctx, principal, workspace_id)
    if not event_types:
        raise ValidationError("eventTypes must name at least one event type")
    events = parse_events(event_types)
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(f"description is longer than {MAX_DESCRIPTION} characters")
    url = normalized(url)  # stored and sent in ASCII (an IDNA host, a percent-encoded path)
    check_url(url, ctx.resolve, ctx.settings.webhook_allow_local)
    if len(ctx.store.endpoints_of(ws)) >= ctx.settings.webhook_max_endpoints:
        raise ValidationError(f"A workspace can have at most {ctx.settings.webhook_max_endpoints} endpoints")
    secret = new_secret()
    endpoint = Endpoint(
        workspace_id=ws,
        id=new_id(),
        url=url,
        event_types=list(events),
        secret=secret,
        created_at=ctx.clock(),
        description=description,
        created_by=principal.user_id,
    )
    ctx.store.put_endpoint(endpoint)
    return Registered(endpoint, secret)


def list_endpoints(ctx: NotifyServices, principal: Principal, workspace_id: str | None) -> list[Endpoint]:
    return ctx.store.endpoints_of(_owner_workspace(ctx, principal, workspace_id))


def delete(ctx: NotifyServices, principal: Principal, workspace_id: str | None, endpoint_id: str) -> None:
    if not ctx.store.delete_endpoint(_owner_workspace(ctx, principal, workspace_id), endpoint_id):
        raise EndpointNotFoundError()


def rotate(
    ctx: NotifyServices, principal: Principal, workspace_id: str | None, endpoint_id: str
) -> tuple[str, datetime]:
    """A new secret; the old one keeps signing (beside it) until the time returned."""
    ws = _owner_workspace(ctx, principal, workspace_id)
    _endpoint(ctx, ws, endpoint_id)
    secret = new_secret()
    until = ctx.clock() + timedelta(seconds=ctx.settings.webhook_secret_overlap_seconds)
    if not ctx.store.rotate_secret(ws, endpoint_id, secret, until):
        raise EndpointNotFoundError()
    return secret, until


def enable(ctx: NotifyServices, principal: Principal, workspace_id: str | None, endpoint_id: str) -> Endpoint:
    ws = _owner_workspace(ctx, principal, workspace_id)
    endpoint = _endpoint(ctx, ws, endpoint_id)
    check_url(endpoint.url, ctx.resolve, ctx.settings.webhook_allow_local)
    ctx.store.set_endpoint_enabled(ws, endpoint_id, True, None)
    return _endpoint(ctx, ws, endpoint_id)


def deliveries(
    ctx: NotifyServices, principal: Principal, workspace_id: str | None, endpoint_id: str
) -> tuple[Endpoint, list[WebhookDelivery]]:
    ws = _owner_workspace(ctx, principal, workspace_id)
    endpoint = _endpoint(ctx, ws, endpoint_id)
    return endpoint, ctx.store.deliveries_of(endpoint_id, DELIVERY_LOG_LIMIT)


def resend(
    ctx: NotifyServices, principal: Principal, workspace_id: str | None, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    """Try a finished delivery again, as a new series of tries (409 while one is under way)."""
    ws = _owner_workspace(ctx, principal, workspace_id)
    _endpoint(ctx, ws, endpoint_id)
    if ctx.store.get_delivery(endpoint_id, delivery_id) is None:
        raise WebhookDeliveryNotFoundError()
    restarted = ctx.store.restart_delivery(endpoint_id, delivery_id, ctx.clock())
    if restarted is None:
        raise ConflictError("This delivery is still being tried")
    message = WebhookDeliveryMessage(ws, endpoint_id, delivery_id, attempt=restarted.attempts + 1)
    ctx.queue.send_delivery(message, delay_seconds=0)
    return restarted


# --- delivery ---------------------------------------------------------------------------------
def backoff_seconds(ctx: NotifyServices, tries: int) -> float:
    """The wait after the `tries`-th failed try: exponential, capped, with jitter in [0.5, 1)."""
    s = ctx.settings
    ceiling = min(s.webhook_retry_max_delay_seconds, s.webhook_retry_base_seconds * 2 ** (tries - 1))
    return ceiling * (0.5 + ctx.random() / 2)


def hop_delay(until: datetime, now: datetime) -> int:
    """The SQS delay of the next hop toward `until` (whole seconds, at most 15 minutes)."""
    remaining = (until - now).total_seconds()
    return max(0, min(SQS_MAX_DELAY, int(remaining + 0.999)))


def busy_delay(ctx: NotifyServices) -> int:
    """How long a try that found its workspace's slots held waits: about one try's deadline."""
    return max(1, math.ceil(ctx.settings.webhook_timeout_seconds * (0.5 + ctx.random() / 2)))


def deliver(ctx: NotifyServices, message: WebhookDeliveryMessage) -> str:
    """One try of one delivery (or one hop of a long wait, or a turn waited for a slot).
    Returns what happened, for the logs."""
    delivery = ctx.store.get_delivery(message.endpoint_id, message.delivery_id)
    if (
        delivery is None
        or delivery.status != WebhookDeliveryStatus.PENDING
        or delivery.attempts != message.attempt - 1
    ):
        return "stale"  # done already, or another message carries this delivery
    now = ctx.clock()
    if message.not_before is not None and now < message.not_before:
        ctx.queue.send_delivery(message, hop_delay(message.not_before, now))
        return "waiting"
    endpoint = ctx.store.get_endpoint(message.workspace_id, message.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        reason = "The endpoint was deleted" if endpoint is None else "The endpoint is disabled"
        _finish(ctx, delivery, PostResult(None, reason), WebhookDeliveryStatus.FAILED, now)
        return "endpoint gone"
    holder = new_id()
    lease = now + timedelta(seconds=ctx.settings.webhook_timeout_seconds + SLOT_MARGIN_SECONDS)
    slot = ctx.store.claim_try_slot(
        endpoint.workspace_id, holder, now, lease, ctx.settings.webhook_max_concurrent_tries
    )
    if slot is None:
        ctx.queue.send_delivery(message, busy_delay(ctx))  # the same try, a moment later
        return "busy"
    try:
        result = _post(ctx, endpoint, delivery, now)
    finally:
        ctx.store.free_try_slot(slot, holder)
    if result.ok:
        if _finish(ctx, delivery, result, WebhookDeliveryStatus.DELIVERED, now):
            ctx.store.reset_failed_streak(endpoint.workspace_id, endpoint.id)
        return "delivered"
    return _after_failure(ctx, endpoint, delivery, message, result, now)


def _post(ctx: NotifyServices, endpoint: Endpoint, delivery: WebhookDelivery, now: datetime) -> PostResult:
    try:
        addresses = check_url(endpoint.url, ctx.resolve, ctx.settings.webhook_allow_local)
    except ValidationError as exc:
        return PostResult(None, exc.message)
    body, secrets_now = delivery.payload, endpoint.secrets(now)
    try:
        return ctx.sender.post(endpoint.url, addresses, delivery.event_id, body, secrets_now, now)
    except Exception as exc:  # whatever a try raises is a failed try, recorded (never a stuck delivery)
        return PostResult(None, f"Could not send: {type(exc).__name__}")


def _finish(
    ctx: NotifyServices,
    delivery: WebhookDelivery,
    result: PostResult,
    status: WebhookDeliveryStatus,
    now: datetime,
) -> bool:
    done = replace(
        delivery,
        status=status,
        attempts=delivery.attempts + 1,
        last_try_at=now,
        next_try_at=None,
        last_response_code=result.status,
        last_error=result.error,
    )
    return ctx.store.record_try(done, expected_attempts=delivery.attempts)


def _after_failure(
    ctx: NotifyServices,
    endpoint: Endpoint,
    delivery: WebhookDelivery,
    message: WebhookDeliveryMessage,
    result: PostResult,
    now: datetime,
) -> str:
    next_at = now + timedelta(seconds=backoff_seconds(ctx, delivery.attempts + 1))
    window = timedelta(seconds=ctx.settings.webhook_retry_window_seconds)
    if next_at - delivery.first_try_at > window:
        if _finish(ctx, delivery, result, WebhookDeliveryStatus.FAILED, now):
            _count_failure(ctx, endpoint, delivery)
        return "failed"
    pending = replace(
        delivery,
        attempts=delivery.attempts + 1,
        last_try_at=now,
        next_try_at=next_at,
        last_response_code=result.status,
        last_error=result.error,
    )
    if ctx.store.record_try(pending, expected_attempts=delivery.attempts):
        follow = WebhookDeliveryMessage(
            message.workspace_id, message.endpoint_id, message.delivery_id, message.attempt + 1, next_at
        )
        ctx.queue.send_delivery(follow, hop_delay(next_at, now))
    return "retrying"


def _count_failure(ctx: NotifyServices, endpoint: Endpoint, delivery: WebhookDelivery) -> None:
    streak = ctx.store.count_failed_delivery(endpoint.workspace_id, endpoint.id)
    if streak < ctx.settings.webhook_disable_after_failures:
        return
    reason = f"{streak} deliveries in a row failed"
    if not ctx.store.set_endpoint_enabled(endpoint.workspace_id, endpoint.id, False, reason):
        return  # disabled already: the owners were told then
    notice = {
        "id": f"whd_{endpoint.id}_{delivery.id}",
        "type": EventType.WEBHOOK_DISABLED.value,
        "timestamp": ctx.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workspaceId": endpoint.workspace_id,
        "data": {"endpointId": endpoint.id, "url": endpoint.url, "reason": reason},
    }
    # Emailed by the fan-out, like any event: the webhook function sends no email.
    ctx.queue.send_event(notice)
