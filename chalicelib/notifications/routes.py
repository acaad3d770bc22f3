"""The notification routes, on their own blueprint: email settings, unsubscribe (no sign-in),
webhook endpoints and their delivery log. Each one translates: input model in, one service call,
response model out."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from chalice import Blueprint, Response

from chalicelib.bootstrap import notify_services
from chalicelib.domain import Principal
from chalicelib.errors import DomainError, ValidationError
from chalicelib.handlers.http import error_response, refuse_large_body, route
from chalicelib.handlers.lazy import models
from chalicelib.notifications import preferences, push, webhooks

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import WorkspaceIn
    from chalicelib.notifications.schemas import (
        DeletedOut,
        DeliveryEnvelope,
        DeliveryLogOut,
        DeliveryOut,
        EndpointEnvelope,
        EndpointIn,
        EndpointListOut,
        EndpointOut,
        PublicKeyOut,
        PushSubscriptionEnvelope,
        PushSubscriptionIn,
        PushSubscriptionListOut,
        PushSubscriptionOut,
        RegisteredOut,
        SecretOut,
        SettingsIn,
        SettingsOut,
    )
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(
        models(
            "chalicelib.notifications.schemas",
            "DeletedOut",
            "DeliveryEnvelope",
            "DeliveryLogOut",
            "DeliveryOut",
            "EndpointEnvelope",
            "EndpointIn",
            "EndpointListOut",
            "EndpointOut",
            "PublicKeyOut",
            "PushSubscriptionEnvelope",
            "PushSubscriptionIn",
            "PushSubscriptionListOut",
            "PushSubscriptionOut",
            "RegisteredOut",
            "SecretOut",
            "SettingsIn",
            "SettingsOut",
        )
    )
    globals().update(models("chalicelib.handlers.schemas", "WorkspaceIn"))

blueprint = Blueprint(__name__)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def _id(name: str, value: str) -> str:
    if not _ID.match(value):
        raise ValidationError(f"{name} is not valid")
    return value


@route(
    blueprint,
    "/notifications/settings",
    "GET",
    summary="Your email notification settings",
    query=WorkspaceIn,
    response=SettingsOut,
    errors=(400, 404),
)
def get_settings(principal: Principal, query: WorkspaceIn) -> SettingsOut:
    ctx = notify_services()
    prefs = preferences.preferences(ctx, principal, query.workspace_id)
    return SettingsOut.of(prefs, preferences.threshold_of(ctx, prefs.workspace_id))


@route(
    blueprint,
    "/notifications/settings",
    "PUT",
    summary="Choose which events email you and reach your browsers (owners: the low-credit threshold)",
    body=SettingsIn,
    response=SettingsOut,
    errors=(400, 403, 404),
)
def put_settings(principal: Principal, body: SettingsIn) -> SettingsOut:
    ctx = notify_services()
    prefs = preferences.update(
        ctx, principal, body.workspace_id, body.email_events, body.low_credits_threshold, body.push_events
    )
    return SettingsOut.of(prefs, preferences.threshold_of(ctx, prefs.workspace_id))


# --- unsubscribe: a link in every email, no sign-in ------------------------------------------
def _page(status: int, title: str, text: str, form_token: str | None = None) -> Response:
    form = ""
    if form_token is not None:
        # Relative to this page, so it also works under API Gateway's stage prefix (/api/...).
        action = f"?token={quote(form_token)}"
        form = (
            f'<form method="post" action="{html.escape(action)}">'
            '<button type="submit">Unsubscribe</button></form>'
        )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
    return Response(body=page, status_code=status, headers={"Content-Type": "text/html; charset=utf-8"})


@blueprint.route(
    "/notifications/unsubscribe",
    methods=["GET", "POST"],
    content_types=["application/x-www-form-urlencoded", "application/json", "text/plain"],
)
def unsubscribe() -> Response:
    # GET only asks (mail scanners open links); POST (the page's button) unsubscribes.
    request = blueprint.current_request
    params: dict[str, str] = dict(request.query_params or {})
    token = params.get("token", "")
    try:
        refuse_large_body(request)
    except DomainError as error:
        return error_response(error)
    ctx = notify_services()
    try:
        event = preferences.check_link(ctx, token).event
        if request.method == "GET":
            return _page(200, "Unsubscribe", f"Stop emails about {event.value}?", form_token=token)
        preferences.unsubscribe(ctx, token)
    except ValidationError as error:
        return _page(400, "Link not valid", error.message)
    except DomainError as error:
        return error_response(error)
    return _page(200, "Unsubscribed", f"You will no longer get emails about {event.value}.")


# --- webhooks (owners) -----------------------------------------------------------------------
@route(
    blueprint,
    "/webhooks",
    "POST",
    summary="Register a webhook endpoint (the signing secret is shown once)",
    status=201,
    body=EndpointIn,
    response=RegisteredOut,
    errors=(400, 403, 404),
)
def register_webhook(principal: Principal, body: EndpointIn) -> RegisteredOut:
    done = webhooks.register(
        notify_services(), principal, body.workspace_id, body.url, body.event_types, body.description
    )
    return RegisteredOut(endpoint=EndpointOut.of(done.endpoint), secret=done.secret)


@route(
    blueprint,
    "/webhooks",
    "GET",
    summary="The workspace's webhook endpoints",
    query=WorkspaceIn,
    response=EndpointListOut,
    errors=(400, 403, 404),
)
def list_webhooks(principal: Principal, query: WorkspaceIn) -> EndpointListOut:
    endpoints = webhooks.list_endpoints(notify_services(), principal, query.workspace_id)
    return EndpointListOut(endpoints=[EndpointOut.of(e) for e in endpoints])


@route(
    blueprint,
    "/webhooks/{endpointId}",
    "DELETE",
    summary="Delete a webhook endpoint",
    query=WorkspaceIn,
    response=DeletedOut,
    errors=(400, 403, 404),
)
def delete_webhook(principal: Principal, query: WorkspaceIn, endpointId: str) -> DeletedOut:  # noqa: N803
    webhooks.delete(notify_services(), principal, query.workspace_id, _id("endpointId", endpointId))
    return DeletedOut(deleted=True)


@route(
    blueprint,
    "/webhooks/{endpointId}/rotate",
    "POST",
    summary="A new signing secret (the old one stays valid 24 h)",
    body=WorkspaceIn,
    response=SecretOut,
    errors=(400, 403, 404),
)
def rotate_webhook(principal: Principal, body: WorkspaceIn, endpointId: str) -> SecretOut:  # noqa: N803
    secret, until = webhooks.rotate(
        notify_services(), principal, body.workspace_id, _id("endpointId", endpointId)
    )
    return SecretOut(secret=secret, previous_secret_valid_until=until)


@route(
    blueprint,
    "/webhooks/{endpointId}/enable",
    "POST",
    summary="Enable a disabled endpoint again",
    body=WorkspaceIn,
    response=EndpointEnvelope,
    errors=(400, 403, 404),
)
def enable_webhook(principal: Principal, body: WorkspaceIn, endpointId: str) -> EndpointEnvelope:  # noqa: N803
    endpoint = webhooks.enable(notify_services(), principal, body.workspace_id, _id("endpointId", endpointId))
    return EndpointEnvelope(endpoint=EndpointOut.of(endpoint))


@route(
    blueprint,
    "/webhooks/{endpointId}/deliveries",
    "GET",
    summary="The endpoint's delivery log, newest first",
    query=WorkspaceIn,
    response=DeliveryLogOut,
    errors=(400, 403, 404),
)
def webhook_deliveries(principal: Principal, query: WorkspaceIn, endpointId: str) -> DeliveryLogOut:  # noqa: N803
    endpoint, log = webhooks.deliveries(
        notify_services(), principal, query.workspace_id, _id("endpointId", endpointId)
    )
    return DeliveryLogOut(endpoint=EndpointOut.of(endpoint), deliveries=[DeliveryOut.of(d) for d in log])


@route(
    blueprint,
    "/webhooks/{endpointId}/deliveries/{deliveryId}/resend",
    "POST",
    summary="Deliver this event to the endpoint again",
    status=202,
    body=WorkspaceIn,
    response=DeliveryEnvelope,
    errors=(400, 403, 404, 409),
)
def resend_delivery(
    principal: Principal, body: WorkspaceIn, endpointId: str, deliveryId: str
) -> DeliveryEnvelope:  # noqa: N803
    delivery = webhooks.resend(
        notify_services(),
        principal,
        body.workspace_id,
        _id("endpointId", endpointId),
        _id("deliveryId", deliveryId),
    )
    return DeliveryEnvelope(delivery=DeliveryOut.of(delivery))


# --- Web Push: a person's browsers ---------------------------------------------------------------
@route(
    blueprint,
    "/push/public-key",
    "GET",
    summary="The VAPID public key a browser subscribes with (applicationServerKey)",
    response=PublicKeyOut,
    errors=(503,),
)
def push_public_key(principal: Principal) -> PublicKeyOut:
    return PublicKeyOut(public_key=push.public_key(notify_services()))


@route(
    blueprint,
    "/push/subscriptions",
    "POST",
    summary="Subscribe this browser to push notifications about your jobs",
    status=201,
    body=PushSubscriptionIn,
    response=PushSubscriptionEnvelope,
    errors=(400, 503),
)
def push_subscribe(principal: Principal, body: PushSubscriptionIn) -> PushSubscriptionEnvelope:
    request = blueprint.current_request
    agent = str(request.headers.get("user-agent", "")) if request is not None else ""
    keys = body.keys
    done = push.subscribe(notify_services(), principal, body.endpoint, keys.p256dh, keys.auth, agent)
    return PushSubscriptionEnvelope(subscription=PushSubscriptionOut.of(done))


@route(
    blueprint,
    "/push/subscriptions",
    "GET",
    summary="Your browsers subscribed to push notifications",
    response=PushSubscriptionListOut,
)
def push_list(principal: Principal) -> PushSubscriptionListOut:
    found = push.subscriptions(notify_services(), principal)
    return PushSubscriptionListOut(subscriptions=[PushSubscriptionOut.of(s) for s in found])


@route(
    blueprint,
    "/push/subscriptions/{subscriptionId}",
    "DELETE",
    summary="Stop push notifications to one of your browsers",
    response=DeletedOut,
    errors=(400, 404),
)
def push_unsubscribe(principal: Principal, subscriptionId: str) -> DeletedOut:  # noqa: N803
    push.unsubscribe(notify_services(), principal, _id("subscriptionId", subscriptionId))
    return DeletedOut(deleted=True)
