"""Request and response bodies of the payment routes (packs, checkout, Stripe's webhook)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.config import CreditPack
from chalicelib.handlers.schemas import Schema, WorkspaceIn

SESSION_ID_PATTERN = r"^cs_[A-Za-z0-9_]{1,250}$"


class PackOut(Schema):
    id: str
    credits: int
    price: int  # in the currency's smallest unit (cents for usd)
    currency: str

    @classmethod
    def of(cls, pack: CreditPack, currency: str) -> PackOut:
        return cls(id=pack.id, credits=pack.credits, price=pack.price, currency=currency)


class PacksOut(Schema):
    packs: list[PackOut]
    available: bool  # false: this deployment has no payment keys (checkout answers 503)


class CheckoutIn(WorkspaceIn):
    # documented: one of the configured packs' ids (CREDIT_PACKS)
    pack: str = Field(min_length=1, max_length=32)


class CheckoutOut(Schema):
    session_id: str
    url: str  # Stripe Checkout's page: send the buyer there


class CheckoutQuery(WorkspaceIn):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class CheckoutStatusOut(Schema):
    session_id: str
    status: Literal["completed", "paid", "open", "expired"]
    pack: str
    credits: int
    balance: int  # the workspace's balance now


class StripeWebhookOut(Schema):
    received: Literal[True]
    outcome: Literal["granted", "reversed", "duplicate", "ignored"]
