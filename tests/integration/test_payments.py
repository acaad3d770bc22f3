"""Buying credits end to end over HTTP: the API (`chalice local`), Stripe's own library in it, the
Stripe stand-in (its two API calls and its webhook sender, signing with the real scheme), and
DynamoDB Local. After each test the ledger sums to the balance (the autouse check)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import requests

from chalicelib.payments.adapters.dynamodb import DynamoPurchaseRecords
from devstack.stripe_standin import StripeStandIn
from tests.support.api import Api, Tenant, new_tenant
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


@pytest.fixture
def stripe(aws_stack: AwsStack) -> StripeStandIn:
    return aws_stack.stripe


@pytest.fixture
def owner(aws_stack: AwsStack, api_server: str) -> Tenant:
    return new_tenant(aws_stack, api_server, credits=0)


def checkout(api: Api, pack: str = "small") -> dict[str, Any]:
    r = api.post("/credits/checkout", {"pack": pack})
    assert r.status_code == 200, r.text
    return dict(r.json())


def state(api: Api, session_id: str) -> dict[str, Any]:
    r = api.get("/credits/checkout", params={"sessionId": session_id})
    assert r.status_code == 200, r.text
    return dict(r.json())


def bought(api: Api, stripe: StripeStandIn, pack: str = "small") -> str:
    """A pack bought and granted; its session id."""
    session_id = str(checkout(api, pack)["sessionId"])
    assert stripe.pay(session_id).status == 200
    return session_id


def ledger(api: Api) -> list[dict[str, Any]]:
    r = api.get("/credits/ledger")
    assert r.status_code == 200, r.text
    return list(r.json()["entries"])


def outcome(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


# --- a purchase ----------------------------------------------------------------------------------
def test_a_checkout_paid_on_the_stand_in_grants_its_pack_once(owner: Tenant, stripe: StripeStandIn) -> None:
    started = checkout(owner.api, "medium")
    assert started["url"] == f"{stripe.url}/pay/{started['sessionId']}"
    session_id = started["sessionId"]
    assert state(owner.api, session_id)["status"] == "open"  # retrieved from the provider

    delivery = stripe.pay(session_id)

    assert delivery.status == 200 and owner.api.credits() == 50
    done = state(owner.api, session_id)
    assert (done["status"], done["credits"], done["balance"], done["pack"]) == ("completed", 50, 50, "medium")
    [entry] = ledger(owner.api)
    paid = stripe.sessions[session_id]
    assert (entry["delta"], entry["reason"], entry["sessionId"], entry["paymentId"]) == (
        50,
        "purchase",
        session_id,
        paid["payment_intent"],
    )
    # The same event again, and another event for the same session: nothing more.
    assert outcome(stripe.post(json.dumps(delivery.event))) == "duplicate"
    again = stripe.send("checkout.session.async_payment_succeeded", stripe.complete(session_id))
    assert again.status == 200 and owner.api.credits() == 50 and len(ledger(owner.api)) == 1


def test_the_provider_says_paid_before_the_webhook_lands(owner: Tenant, stripe: StripeStandIn) -> None:
    session_id = checkout(owner.api)["sessionId"]
    stripe.hold_webhooks()
    try:
        stripe.pay(session_id)
        waiting = state(owner.api, session_id)
        assert (waiting["status"], waiting["balance"]) == ("paid", 0)
    finally:
        [released] = stripe.release_webhooks()
    assert released.status == 200 and state(owner.api, session_id)["status"] == "completed"


def test_concurrent_deliveries_of_one_payment_grant_once(owner: Tenant, stripe: StripeStandIn) -> None:
    session_id = checkout(owner.api)["sessionId"]
    paid = stripe.complete(session_id)
    same = json.dumps(stripe.event("checkout.session.completed", paid))
    others = [json.dumps(stripe.event("checkout.session.async_payment_succeeded", paid)) for _ in range(6)]
    bodies = [same] * 12 + others
    outcomes: list[str] = []
    gate = threading.Barrier(len(bodies))

    def deliver(body: str) -> None:
        gate.wait()
        outcomes.append(outcome(stripe.post(body)))

    threads = [threading.Thread(target=deliver, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert Counter(outcomes) == {"granted": 1, "duplicate": len(bodies) - 1}
    assert owner.api.credits() == 10
    assert [e["reason"] for e in ledger(owner.api)] == ["purchase"]


# --- what the signature check refuses ---------------------------------------------------------------
def test_a_bad_signature_an_expired_timestamp_or_a_malformed_body_writes_nothing(
    owner: Tenant, stripe: StripeStandIn, api_server: str
) -> None:
    session_id = checkout(owner.api)["sessionId"]
    event = stripe.event("checkout.session.completed", stripe.complete(session_id))
    body = json.dumps(event)
    refused = [
        stripe.post(body, secret="whsec_not_the_endpoints"),
        stripe.post(body, timestamp=int(time.time()) - 301),  # older than the 5-minute tolerance
        stripe.post(body[:-1]),  # signed, but not JSON
        stripe.post("[]"),  # signed JSON, not an event
        stripe.post(json.dumps({"id": "evt_x", "type": "checkout.session.completed"})),
        requests.post(f"{api_server}/payments/stripe", data=body, timeout=10),  # no Stripe-Signature
        requests.post(
            f"{api_server}/payments/stripe",
            data=body,
            headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"},
            timeout=10,
        ),
    ]

    assert [r.status_code for r in refused] == [400] * len(refused)
    assert all(r.json()["code"] == "BAD_REQUEST" for r in refused)
    records = DynamoPurchaseRecords()
    assert not records.event_applied(event["id"]) and records.get_purchase(session_id) is None
    assert owner.api.credits() == 0 and ledger(owner.api) == []
    # within the tolerance the same event is good, and grants
    assert outcome(stripe.post(body, timestamp=int(time.time()) - 240)) == "granted"
    assert owner.api.credits() == 10


def test_an_event_type_the_service_does_not_handle_is_answered_200_and_ignored(
    owner: Tenant, stripe: StripeStandIn
) -> None:
    delivery = stripe.send("customer.created", {"id": "cus_1", "object": "customer"})
    assert delivery.status == 200 and outcome(stripe.post(json.dumps(delivery.event))) == "ignored"


# --- reversals ---------------------------------------------------------------------------------------
def test_a_refund_takes_the_pack_back_the_balance_owed_blocks_a_start_until_a_new_purchase(
    owner: Tenant, stripe: StripeStandIn, aws_stack: AwsStack
) -> None:
    session_id = bought(owner.api, stripe)
    owner.api.submit(b"any bytes: a start checks only the upload", "spent.mp4")  # 1 credit spent
    assert owner.api.credits() == 9

    assert stripe.refund(session_id).status == 200

    assert owner.api.credits() == -1  # owed
    entry = ledger(owner.api)[0]
    assert (entry["delta"], entry["reason"], entry["sessionId"]) == (-10, "purchase_reversal", session_id)
    assert stripe.dispute(session_id).status == 200  # nothing is left to take back
    assert owner.api.credits() == -1
    job = owner.api.create(b"more bytes", "blocked.mp4")
    r = owner.api.post(f"/jobs/{job['id']}/start")
    assert (r.status_code, r.json()["message"]) == (
        403,
        "Insufficient credits. Please purchase more credits.",
    )

    bought(owner.api, stripe)  # settles what is owed
    assert owner.api.credits() == 9
    assert owner.api.post(f"/jobs/{job['id']}/start").status_code == 202


def test_a_dispute_takes_back_what_a_partial_refund_left(owner: Tenant, stripe: StripeStandIn) -> None:
    session_id = bought(owner.api, stripe, "small")  # 10 credits for 500 cents
    assert stripe.refund(session_id, amount=100).status == 200  # a fifth of the money: 2 credits
    assert owner.api.credits() == 8
    assert stripe.dispute(session_id).status == 200
    assert owner.api.credits() == 0
    assert [(e["delta"], e["reason"]) for e in ledger(owner.api)] == [
        (-8, "purchase_reversal"),
        (-2, "purchase_reversal"),
        (10, "purchase"),
    ]


# --- the API around it ---------------------------------------------------------------------------------
def test_only_owners_start_a_checkout_and_an_unknown_pack_is_a_400(
    aws_stack: AwsStack, api_server: str, owner: Tenant, stripe: StripeStandIn
) -> None:
    email = f"member-{uuid.uuid4().hex[:8]}@example.com"
    aws_stack.add_user(email, owner.workspace_id, role="member")
    member = Api(api_server, aws_stack.token(email))
    sessions_before = len(stripe.sessions)

    refused = member.post("/credits/checkout", {"pack": "small"})
    unknown = owner.api.post("/credits/checkout", {"pack": "huge"})

    assert (refused.status_code, refused.json()["message"]) == (403, "Only workspace owners can buy credits")
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "There is no credit pack 'huge'. Choose one of: small, medium, large"
    assert owner.api.post("/credits/checkout", {}).status_code == 400
    assert len(stripe.sessions) == sessions_before  # nothing reached the provider
    packs = member.get("/credits/packs").json()  # anyone signed in may see the prices
    assert packs == {
        "available": True,
        "packs": [
            {"id": "small", "credits": 10, "price": 500, "currency": "usd"},
            {"id": "medium", "credits": 50, "price": 2000, "currency": "usd"},
            {"id": "large", "credits": 200, "price": 6000, "currency": "usd"},
        ],
    }


def test_a_checkout_is_visible_to_its_workspace_only(
    aws_stack: AwsStack, api_server: str, owner: Tenant, stripe: StripeStandIn
) -> None:
    session_id = bought(owner.api, stripe)
    stranger = new_tenant(aws_stack, api_server)
    theirs = stranger.api.get("/credits/checkout", params={"sessionId": session_id})
    unknown = owner.api.get("/credits/checkout", params={"sessionId": "cs_test_nothing_here"})
    malformed = owner.api.get("/credits/checkout", params={"sessionId": "../etc"})

    assert (theirs.status_code, theirs.json()["message"]) == (404, "Checkout not found")
    assert unknown.status_code == 404 and malformed.status_code == 400
    assert requests.get(f"{api_server}/credits/packs", timeout=10).status_code == 401
