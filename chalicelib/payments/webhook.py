"""Stripe's webhook: every verified event makes at most one credit change, and makes it once.

- `checkout.session.completed` (and `checkout.session.async_payment_succeeded`, for payment
  methods that settle later) with `payment_status: paid` grants the pack's credits: the
  `purchase` transition records the event and the purchase (by Checkout session and by payment)
  in the same transaction as the credits, so the same event again, another event for the same
  session, or two deliveries at once grant nothing more.
- `charge.refunded` and `charge.dispute.created` take credits back (`purchase_reversal`): a
  refund as much of the pack as the amount refunded so far paid for (rounded up: a partial
  refund of a pack takes back its share), a dispute whatever of the pack is not back yet (the
  disputed money is withheld). Never more than the pack in all. The balance may go below 0: the
  workspace owes credits, and no start or retry passes until it is settled.
- Any other event type is answered 200 and ignored (Stripe stops sending it). So is an event
  that is not about one of this service's purchases (another product on the same account).

The signature is checked first, by Stripe's own library (tolerance 5 minutes): a request that
fails it writes nothing and is answered 400.
"""

from __future__ import annotations

import functools
from datetime import datetime
from enum import StrEnum
from typing import Any

from chalicelib.domain import PaymentEvent, Purchase
from chalicelib.errors import (
    PaymentAppliedError,
    TransactionConflictError,
    TransitionRefusedError,
    WorkspaceNotFoundError,
)
from chalicelib.lifecycle import transitions
from chalicelib.observability import logger
from chalicelib.payments.ports import PaymentServices, ProviderEvent
from chalicelib.processing.contention import with_contention

GRANTING = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
REFUNDED = "charge.refunded"
DISPUTED = "charge.dispute.created"
HANDLED = GRANTING | {REFUNDED, DISPUTED}  # the event types the Stripe endpoint subscribes to
REVERSAL_TRIES = 5  # another reversal of the same purchase moved it on: read it again


class Outcome(StrEnum):
    GRANTED = "granted"
    REVERSED = "reversed"
    DUPLICATE = "duplicate"  # applied already (this event, another for its session, or all it asks)
    IGNORED = "ignored"  # changes no credits: another type, not paid, not one of our purchases


def handle(ctx: PaymentServices, payload: bytes, signature: str | None) -> Outcome:
    """Verify the event, then apply it (WebhookRejectedError, before anything is written, when
    the signature, its timestamp or the body does not verify)."""
    event = ctx.provider.verify_event(payload, signature)
    if event.type in GRANTING:
        outcome = _grant(ctx, event)
    elif event.type in (REFUNDED, DISPUTED):
        outcome = _reverse(ctx, event)
    else:
        outcome = Outcome.IGNORED
    logger().info("stripe event", extra={"event_id": event.id, "event_type": event.type, "outcome": outcome})
    return outcome


def _grant(ctx: PaymentServices, event: ProviderEvent) -> Outcome:
    session = event.object
    if session.get("object") != "checkout.session" or session.get("payment_status") != "paid":
        return Outcome.IGNORED  # not paid yet (an asynchronous method): its success event follows
    bought = purchase_of(session, event.id, ctx.clock())
    if bought is None:
        logger().warning(
            "a paid Checkout session that is not a credit purchase", extra={"event_id": event.id}
        )
        return Outcome.IGNORED
    grant = transitions.purchase(bought, _recorded(event), ctx.clock())
    try:
        with_contention(functools.partial(ctx.repo.commit, grant))
    except PaymentAppliedError:
        return Outcome.DUPLICATE
    except WorkspaceNotFoundError:
        logger().error("a purchase for a workspace that does not exist", extra={"event_id": event.id})
        return Outcome.IGNORED
    return Outcome.GRANTED


def _reverse(ctx: PaymentServices, event: ProviderEvent) -> Outcome:
    payment_id = _id_of(event.object.get("payment_intent"))
    if payment_id is None:
        return Outcome.IGNORED
    for _ in range(REVERSAL_TRIES):
        bought = ctx.records.purchase_paid_by(payment_id)
        if bought is None:
            logger().warning(
                "a refund or dispute of a payment that bought no credits", extra={"event_id": event.id}
            )
            return Outcome.IGNORED
        target = reversed_to(bought, event.type, event.object)
        if target <= bought.reversed_credits:
            return Outcome.DUPLICATE
        reversal = transitions.purchase_reversal(bought, _recorded(event), target, ctx.clock())
        try:
            with_contention(functools.partial(ctx.repo.commit, reversal))
        except PaymentAppliedError:
            return Outcome.DUPLICATE
        except TransitionRefusedError:
            continue
        return Outcome.REVERSED
    raise TransactionConflictError()


def reversed_to(bought: Purchase, event_type: str, obj: Any) -> int:
    """The credits a purchase has had taken back once this refund or dispute is applied."""
    if event_type == REFUNDED:  # amount_refunded: everything refunded so far
        return max(bought.reversed_credits, _paid_for(bought, int(obj.get("amount_refunded") or 0)))
    return bought.credits  # a dispute withholds the charge: the whole pack comes back


def _paid_for(bought: Purchase, money: int) -> int:
    """The credits `money` (of what the purchase cost) paid for, rounded up, at most the pack."""
    if bought.amount <= 0:
        return bought.credits
    return min(bought.credits, -(-bought.credits * max(money, 0) // bought.amount))


def purchase_of(session: Any, event_id: str, now: datetime) -> Purchase | None:
    """The purchase a paid Checkout session made, from the metadata the checkout gave it; None
    when the session is not one of this service's credit purchases."""
    metadata = session.get("metadata") or {}
    try:
        credits = int(metadata.get("credits", ""))
        amount = int(session.get("amount_total") or 0)
    except (TypeError, ValueError):
        return None
    workspace_id, session_id = metadata.get("workspace_id"), session.get("id")
    if not workspace_id or not session_id or credits <= 0:
        return None
    return Purchase(
        session_id=str(session_id),
        workspace_id=str(workspace_id),
        pack=str(metadata.get("pack", "")),
        credits=credits,
        amount=amount,
        currency=str(session.get("currency") or ""),
        payment_id=_id_of(session.get("payment_intent")),
        buyer=str(metadata.get("buyer", "")),
        event_id=event_id,
        created_at=now,
    )


def _recorded(event: ProviderEvent) -> PaymentEvent:
    return PaymentEvent(event.id, event.type, event.created_at)


def _id_of(value: Any) -> str | None:
    """An id Stripe sends as a string, or as the expanded object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None
