"""Buying credits on the fakes: the checkout's rules and the webhook's, event by event.

The same transitions commit on DynamoDB Local in tests/integration/test_contract.py; the real
signature scheme, the stand-in and concurrent deliveries are in tests/integration/test_payments.py.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import pytest

from chalicelib.domain import LedgerReason, Membership, Principal, Role, utcnow
from chalicelib.errors import (
    CheckoutNotFoundError,
    ForbiddenError,
    PaymentsUnavailableError,
    UnknownPackError,
    WebhookRejectedError,
)
from chalicelib.lifecycle import transitions
from chalicelib.payments import checkout, webhook
from chalicelib.payments.checkout import CheckoutState
from chalicelib.payments.ports import PaymentServices
from chalicelib.payments.webhook import Outcome
from tests.support.fakes import (
    ALICE,
    FakePaymentProvider,
    FakeRepository,
    make_payment_services,
    make_services,
)

CAROL = Principal(user_id="carol-sub", email="carol@example.com")  # a member of ws-a, not an owner


@pytest.fixture
def ctx() -> PaymentServices:
    svc = make_services(credits=0)
    svc.repo.commit(transitions.add_member(Membership(CAROL.user_id, "ws-a", Role.MEMBER), utcnow()))
    return make_payment_services(svc)


def repo_of(ctx: PaymentServices) -> FakeRepository:
    assert isinstance(ctx.repo, FakeRepository)
    return ctx.repo


def provider_of(ctx: PaymentServices) -> FakePaymentProvider:
    assert isinstance(ctx.provider, FakePaymentProvider)
    return ctx.provider


def balance(ctx: PaymentServices, ws: str = "ws-a") -> int:
    workspace = ctx.repo.get_workspace(ws)
    assert workspace is not None
    assert workspace.credits == ctx.repo.ledger_sum(ws)  # the ledger is the truth
    return workspace.credits


def body(kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    event = {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": kind, "data": {"object": obj}}
    return json.dumps(event).encode()


def paid_session(
    session_id: str = "cs_1", credits: int = 10, amount: int = 500, ws: str = "ws-a", **more: Any
) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "amount_total": amount,
        "currency": "usd",
        "payment_intent": f"pi_{session_id}",
        "metadata": {"workspace_id": ws, "pack": "small", "credits": str(credits), "buyer": ALICE.user_id},
        **more,
    }


def deliver(ctx: PaymentServices, payload: bytes) -> Outcome:
    return webhook.handle(ctx, payload, FakePaymentProvider.SIGNED)


# --- the grant -----------------------------------------------------------------------------------
def test_a_paid_session_grants_its_pack_once_whatever_is_delivered_again(ctx: PaymentServices) -> None:
    completed = body("checkout.session.completed", paid_session(), "evt_once")

    assert deliver(ctx, completed) == Outcome.GRANTED
    assert deliver(ctx, completed) == Outcome.DUPLICATE  # the same event again
    again = body("checkout.session.async_payment_succeeded", paid_session())
    assert deliver(ctx, again) == Outcome.DUPLICATE  # another event for the same session

    assert balance(ctx) == 10
    [entry] = [e for e in repo_of(ctx).entries if e.reason == LedgerReason.PURCHASE]
    assert (entry.delta, entry.session_id, entry.payment_id, entry.actor) == (
        10,
        "cs_1",
        "pi_cs_1",
        ALICE.user_id,
    )
    purchase = ctx.records.get_purchase("cs_1")
    assert purchase is not None and purchase.event_id == "evt_once"


@pytest.mark.parametrize(
    "session",
    [
        paid_session(payment_status="unpaid"),  # an asynchronous method: its success event follows
        paid_session(metadata={}),  # another product's checkout on the same account
        paid_session(metadata={"workspace_id": "ws-a", "credits": "many"}),
        paid_session(ws="ws-nowhere"),  # no such workspace
        {**paid_session(), "object": "payment_intent"},
    ],
    ids=["unpaid", "not-ours", "bad-credits", "no-workspace", "not-a-session"],
)
def test_what_is_not_a_paid_purchase_is_ignored(ctx: PaymentServices, session: dict[str, Any]) -> None:
    assert deliver(ctx, body("checkout.session.completed", session)) == Outcome.IGNORED
    assert balance(ctx) == 0 and not repo_of(ctx).purchases


def test_an_unknown_event_type_is_ignored_and_a_bad_signature_writes_nothing(ctx: PaymentServices) -> None:
    before = len(repo_of(ctx).committed)
    assert deliver(ctx, body("customer.created", {"id": "cus_1"})) == Outcome.IGNORED
    with pytest.raises(WebhookRejectedError):
        webhook.handle(ctx, body("checkout.session.completed", paid_session()), "forged")
    assert balance(ctx) == 0 and len(repo_of(ctx).committed) == before


# --- reversals -----------------------------------------------------------------------------------
def refund(amount_refunded: int, session_id: str = "cs_1") -> bytes:
    charge = {"id": "ch_1", "object": "charge", "amount": 500, "amount_refunded": amount_refunded}
    return body("charge.refunded", {**charge, "payment_intent": f"pi_{session_id}"})


def dispute(amount: int, session_id: str = "cs_1") -> bytes:
    return body(
        "charge.dispute.created", {"id": "dp_1", "amount": amount, "payment_intent": f"pi_{session_id}"}
    )


def test_a_full_refund_takes_the_pack_back_and_may_leave_the_workspace_owing(ctx: PaymentServices) -> None:
    deliver(ctx, body("checkout.session.completed", paid_session()))
    repo_of(ctx).commit(
        transitions.change_credits(dataclasses.replace(repo_of(ctx).entries[-1], delta=-4, id="spent"))
    )  # 4 credits spent meanwhile
    assert balance(ctx) == 6

    assert deliver(ctx, refund(500)) == Outcome.REVERSED
    assert balance(ctx) == -4  # owed
    assert deliver(ctx, refund(500)) == Outcome.DUPLICATE
    assert deliver(ctx, dispute(500)) == Outcome.DUPLICATE  # nothing left to take back
    assert balance(ctx) == -4


def test_partial_refunds_take_back_what_the_money_paid_for_rounded_up_and_a_dispute_the_rest(
    ctx: PaymentServices,
) -> None:
    deliver(ctx, body("checkout.session.completed", paid_session(credits=10, amount=500)))

    assert deliver(ctx, refund(100)) == Outcome.REVERSED  # a fifth of the money: 2 credits
    assert balance(ctx) == 8
    assert deliver(ctx, refund(101)) == Outcome.REVERSED  # 2.02 credits so far: 3, rounded up
    assert balance(ctx) == 7
    assert deliver(ctx, dispute(299)) == Outcome.REVERSED  # the rest of the pack
    assert balance(ctx) == 0
    purchase = ctx.records.get_purchase("cs_1")
    assert purchase is not None and purchase.reversed_credits == 10


def test_a_refund_of_a_payment_that_bought_no_credits_is_ignored(ctx: PaymentServices) -> None:
    assert deliver(ctx, refund(500, session_id="cs_unknown")) == Outcome.IGNORED
    assert deliver(ctx, body("charge.refunded", {"id": "ch_2", "amount_refunded": 5})) == Outcome.IGNORED
    assert balance(ctx) == 0


# --- the checkout --------------------------------------------------------------------------------
def test_an_owner_gets_a_checkout_that_comes_back_to_the_dashboard_in_the_workspace(
    ctx: PaymentServices,
) -> None:
    session = checkout.start(ctx, ALICE, None, "medium")

    [request] = provider_of(ctx).requests
    assert (request.workspace_id, request.pack.credits, request.pack.price, request.currency) == (
        "ws-a",
        50,
        2000,
        "usd",
    )
    back = f"{ctx.settings.dashboard_url}/?workspace=ws-a"  # DASHBOARD_URL
    assert request.success_url == f"{back}&purchase=success&session_id={{CHECKOUT_SESSION_ID}}"
    assert request.cancel_url == f"{back}&purchase=cancelled"
    assert session.url and request.buyer == ALICE.user_id and request.email == ALICE.email


def test_members_unknown_packs_and_a_deployment_without_keys_get_no_checkout(ctx: PaymentServices) -> None:
    with pytest.raises(ForbiddenError):
        checkout.start(ctx, CAROL, "ws-a", "small")
    with pytest.raises(UnknownPackError, match="Choose one of: small, medium, large"):
        checkout.start(ctx, ALICE, "ws-a", "huge")
    ctx.settings = ctx.settings.model_copy(update={"stripe_secret_id": ""})
    with pytest.raises(PaymentsUnavailableError):
        checkout.start(ctx, ALICE, "ws-a", "small")
    assert provider_of(ctx).requests == []


def test_the_return_page_sees_open_then_paid_then_completed_with_the_balance(ctx: PaymentServices) -> None:
    session = checkout.start(ctx, ALICE, "ws-a", "small")
    assert checkout.status(ctx, CAROL, "ws-a", session.id).state == CheckoutState.OPEN

    sessions = provider_of(ctx).sessions
    sessions[session.id] = dataclasses.replace(sessions[session.id], status="complete", payment_status="paid")
    assert checkout.status(ctx, ALICE, None, session.id).state == CheckoutState.PAID  # the webhook is late

    deliver(ctx, body("checkout.session.completed", paid_session(session.id)))
    done = checkout.status(ctx, ALICE, None, session.id)
    assert (done.state, done.credits, done.balance) == (CheckoutState.COMPLETED, 10, 10)

    sessions["cs_old"] = dataclasses.replace(
        sessions[session.id], id="cs_old", status="expired", payment_status="unpaid"
    )
    assert checkout.status(ctx, ALICE, None, "cs_old").state == CheckoutState.EXPIRED


def test_a_checkout_of_another_workspace_or_none_at_all_is_not_found(ctx: PaymentServices) -> None:
    bobs = paid_session("cs_bob", ws="ws-b")
    deliver(ctx, body("checkout.session.completed", bobs))
    for session_id in ("cs_bob", "cs_nowhere"):
        with pytest.raises(CheckoutNotFoundError):
            checkout.status(ctx, ALICE, "ws-a", session_id)
