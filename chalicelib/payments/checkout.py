"""Buying a pack: the packs on sale, a Checkout session for one of the workspace's owners, and
what the return page reads until the webhook has granted the credits.

The credits are never granted here: only a verified `checkout.session.completed` does that
(chalicelib.payments.webhook). The return page polls `status`, which says `completed` once the
purchase is recorded, and until then asks Stripe whether the session is paid (`paid`: the
credits are on their way), still `open`, or `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import quote

from chalicelib.domain import Principal, Role
from chalicelib.errors import (
    CheckoutNotFoundError,
    ForbiddenError,
    PaymentsUnavailableError,
    UnknownPackError,
    WorkspaceNotFoundError,
)
from chalicelib.payments.ports import CheckoutRequest, CheckoutSession, PaymentServices
from chalicelib.processing.access import resolve_workspace

if TYPE_CHECKING:
    from chalicelib.config import CreditPack, Settings

# Stripe puts the session's id where this stands in the success URL.
SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"


class CheckoutState(StrEnum):
    COMPLETED = "completed"  # paid, and the credits are added
    PAID = "paid"  # paid; the webhook that adds the credits has not landed yet
    OPEN = "open"  # not paid (yet)
    EXPIRED = "expired"  # never paid; a new checkout is needed


@dataclass(frozen=True)
class CheckoutStatus:
    session_id: str
    state: CheckoutState
    pack: str
    credits: int
    balance: int  # the workspace's balance now


def available(settings: Settings) -> bool:
    """Whether credits can be bought here (the Stripe secret is configured)."""
    return bool(settings.stripe_secret_id)


def pack_named(settings: Settings, pack_id: str) -> CreditPack:
    for pack in settings.credit_packs:
        if pack.id == pack_id:
            return pack
    choices = ", ".join(p.id for p in settings.credit_packs)
    raise UnknownPackError(f"There is no credit pack '{pack_id}'. Choose one of: {choices}")


def start(
    ctx: PaymentServices, principal: Principal, workspace_id: str | None, pack_id: str
) -> CheckoutSession:
    """A Checkout session for `pack`, paid to the workspace (owners only); its URL is where the
    buyer pays. Success and cancel both come back to the dashboard, in the same workspace."""
    membership = resolve_workspace(ctx.repo, principal, workspace_id)
    if membership.role is not Role.OWNER:
        raise ForbiddenError("Only workspace owners can buy credits")
    pack = pack_named(ctx.settings, pack_id)
    if not available(ctx.settings):
        raise PaymentsUnavailableError()
    back = f"{ctx.settings.dashboard_url.rstrip('/')}/?workspace={quote(membership.workspace_id, safe='')}"
    return ctx.provider.create_checkout(
        CheckoutRequest(
            workspace_id=membership.workspace_id,
            pack=pack,
            currency=ctx.settings.credit_currency,
            buyer=principal.user_id,
            email=principal.email,
            success_url=f"{back}&purchase=success&session_id={SESSION_PLACEHOLDER}",
            cancel_url=f"{back}&purchase=cancelled",
        )
    )


def status(
    ctx: PaymentServices, principal: Principal, workspace_id: str | None, session_id: str
) -> CheckoutStatus:
    """Where a checkout of the caller's workspace stands (any member may ask). A session of
    another workspace is answered like one that does not exist."""
    membership = resolve_workspace(ctx.repo, principal, workspace_id)
    ws = membership.workspace_id
    purchase = ctx.records.get_purchase(session_id)
    if purchase is not None:
        if purchase.workspace_id != ws:
            raise CheckoutNotFoundError()
        return CheckoutStatus(
            session_id, CheckoutState.COMPLETED, purchase.pack, purchase.credits, _balance(ctx, ws)
        )
    if not available(ctx.settings):
        raise CheckoutNotFoundError()
    session = ctx.provider.retrieve_checkout(session_id)
    if session is None or session.workspace_id != ws:
        raise CheckoutNotFoundError()
    if session.payment_status == "paid":
        state = CheckoutState.PAID
    elif session.status == "expired":
        state = CheckoutState.EXPIRED
    else:
        state = CheckoutState.OPEN
    return CheckoutStatus(session_id, state, session.pack, session.credits, _balance(ctx, ws))


def _balance(ctx: PaymentServices, workspace_id: str) -> int:
    workspace = ctx.repo.get_workspace(workspace_id)
    if workspace is None:
        raise WorkspaceNotFoundError()
    return workspace.credits
