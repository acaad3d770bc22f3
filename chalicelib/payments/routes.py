"""The payment routes, on their own blueprint: the packs, a checkout and its state (signed in),
and Stripe's webhook (no sign-in: Stripe's signature instead). Each one translates: input in,
one service call, response model out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.bootstrap import payment_services
from chalicelib.domain import Principal
from chalicelib.handlers.http import route
from chalicelib.handlers.lazy import models
from chalicelib.payments import checkout, webhook

if TYPE_CHECKING:
    from chalicelib.payments.schemas import (
        CheckoutIn,
        CheckoutOut,
        CheckoutQuery,
        CheckoutStatusOut,
        PackOut,
        PacksOut,
        StripeWebhookOut,
    )
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(
        models(
            "chalicelib.payments.schemas",
            "CheckoutIn",
            "CheckoutOut",
            "CheckoutQuery",
            "CheckoutStatusOut",
            "PackOut",
            "PacksOut",
            "StripeWebhookOut",
        )
    )

blueprint = Blueprint(__name__)


@route(blueprint, "/credits/packs", "GET", summary="The credit packs on sale", response=PacksOut)
def packs(principal: Principal) -> PacksOut:
    settings = payment_services().settings
    return PacksOut(
        packs=[PackOut.of(p, settings.credit_currency) for p in settings.credit_packs],
        available=checkout.available(settings),
    )


@route(
    blueprint,
    "/credits/checkout",
    "POST",
    summary="Start buying a pack (owners): a Stripe Checkout page to pay on",
    body=CheckoutIn,
    response=CheckoutOut,
    errors=(400, 403, 404),
)
def start_checkout(principal: Principal, body: CheckoutIn) -> CheckoutOut:
    session = checkout.start(payment_services(), principal, body.workspace_id, body.pack)
    return CheckoutOut(session_id=session.id, url=session.url or "")


@route(
    blueprint,
    "/credits/checkout",
    "GET",
    summary="Where a checkout stands: completed once its credits are added",
    query=CheckoutQuery,
    response=CheckoutStatusOut,
    errors=(400, 403, 404),
)
def checkout_status(principal: Principal, query: CheckoutQuery) -> CheckoutStatusOut:
    done = checkout.status(payment_services(), principal, query.workspace_id, query.session_id)
    return CheckoutStatusOut(
        session_id=done.session_id,
        status=done.state.value,
        pack=done.pack,
        credits=done.credits,
        balance=done.balance,
    )


@route(
    blueprint,
    "/payments/stripe",
    "POST",
    summary="Stripe's webhook (Stripe-Signature); 400 and nothing written when it does not verify",
    response=StripeWebhookOut,
    auth=False,
    errors=(400, 409, 503),
)
def stripe_webhook() -> StripeWebhookOut:
    request = blueprint.current_request
    raw = request.raw_body or b""
    payload = raw if isinstance(raw, bytes) else raw.encode()
    outcome = webhook.handle(payment_services(), payload, request.headers.get("stripe-signature"))
    return StripeWebhookOut(received=True, outcome=outcome.value)
