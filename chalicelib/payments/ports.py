"""What the payment use cases need from the outside world, and the context they run with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.domain import Purchase, utcnow
from chalicelib.processing.ports import Repository

if TYPE_CHECKING:
    from chalicelib.config import CreditPack, Settings


@dataclass(frozen=True)
class CheckoutRequest:
    """A Checkout session to create: one pack, for one workspace, started by one owner."""

    workspace_id: str
    pack: CreditPack
    currency: str
    buyer: str  # user id
    email: str  # prefilled on Stripe's page ("" when unknown)
    success_url: str  # Stripe replaces {CHECKOUT_SESSION_ID} in it
    cancel_url: str


@dataclass(frozen=True)
class CheckoutSession:
    """A Checkout session as the provider reports it."""

    id: str
    url: str | None  # where the buyer pays (None once it is complete or expired)
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    workspace_id: str  # from its metadata ("" when it is not one of ours)
    pack: str
    credits: int
    amount: int  # amount_total, in the currency's smallest unit
    currency: str
    payment_id: str | None  # the PaymentIntent, once there is one
    buyer: str


@dataclass(frozen=True)
class ProviderEvent:
    """An event whose signature the provider's library verified."""

    id: str
    type: str
    created_at: datetime
    object: Mapping[str, Any]  # data.object: a Checkout session, a charge, a dispute


class PaymentProvider(Protocol):
    """Stripe. Its outages are PaymentProviderError (503); a refused event is
    WebhookRejectedError (400)."""

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def retrieve_checkout(self, session_id: str) -> CheckoutSession | None:
        """The session, or None when the provider has no such session."""
        ...

    def verify_event(self, payload: bytes, signature: str | None) -> ProviderEvent:
        """The event, if `signature` (the Stripe-Signature header) signs `payload` with the webhook
        secret within the tolerance."""
        ...


class PurchaseRecords(Protocol):
    """The purchases the grants recorded (read only: every write is a lifecycle transition).
    DynamoDB unavailable is ServiceUnavailableError."""

    def get_purchase(self, session_id: str) -> Purchase | None: ...

    def purchase_paid_by(self, payment_id: str) -> Purchase | None:
        """The purchase a payment (a PaymentIntent id) paid for."""
        ...

    def event_applied(self, event_id: str) -> bool: ...


@dataclass
class PaymentServices:
    settings: Settings
    repo: Repository  # memberships, balances, and `commit` for every credit change
    records: PurchaseRecords
    provider: PaymentProvider
    clock: Callable[[], datetime] = field(default=utcnow)
