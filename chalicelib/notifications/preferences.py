"""Who gets which email: each member's choice (or the defaults for their role), and unsubscribe
links that work without signing in (a token signed with NOTIFY_SIGNING_KEY)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from chalicelib.domain import Principal, Role
from chalicelib.errors import ForbiddenError, ServiceUnavailableError, ValidationError
from chalicelib.notifications.domain import (
    DEFAULT_LOW_CREDITS_THRESHOLD,
    SUBSCRIBABLE,
    EventType,
    Preferences,
    default_email_events,
)
from chalicelib.notifications.ports import NotifyServices
from chalicelib.processing.access import resolve_workspace

if TYPE_CHECKING:
    from chalicelib.config import Settings

MAX_THRESHOLD = 1_000_000


def parse_events(names: Sequence[str]) -> list[EventType]:
    known = {e.value: e for e in SUBSCRIBABLE}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError(f"Unknown event type: {unknown[0]!r} (known: {', '.join(known)})")
    return sorted({known[n] for n in names})


def preferences(ctx: NotifyServices, principal: Principal, workspace_id: str | None) -> Preferences:
    membership = resolve_workspace(ctx.store, principal, workspace_id)
    for member in ctx.store.members_of(membership.workspace_id):
        if member.user_id == principal.user_id:
            return Preferences(
                principal.user_id,
                membership.workspace_id,
                member.role,
                member.email,
                member.email_events,
                member.chosen is not None,
            )
    return Preferences(
        principal.user_id,
        membership.workspace_id,
        membership.role,
        membership.email,
        default_email_events(membership.role),
        False,
    )


def threshold_of(ctx: NotifyServices, workspace_id: str) -> int:
    value = ctx.store.get_low_credits_threshold(workspace_id)
    return DEFAULT_LOW_CREDITS_THRESHOLD if value is None else value


def update(
    ctx: NotifyServices,
    principal: Principal,
    workspace_id: str | None,
    email_events: Sequence[str] | None,
    low_credits_threshold: int | None,
) -> Preferences:
    membership = resolve_workspace(ctx.store, principal, workspace_id)
    if low_credits_threshold is not None:
        if membership.role != Role.OWNER:
            raise ForbiddenError("Only workspace owners can change the low-credit threshold")
        if not 0 <= low_credits_threshold <= MAX_THRESHOLD:
            raise ValidationError(f"lowCreditsThreshold must be between 0 and {MAX_THRESHOLD}")
        ctx.store.set_low_credits_threshold(membership.workspace_id, low_credits_threshold)
    if email_events is not None:
        events = parse_events(email_events)
        ctx.store.set_email_events(principal.user_id, membership.workspace_id, [e.value for e in events])
    return preferences(ctx, principal, membership.workspace_id)


# --- unsubscribe tokens -----------------------------------------------------------------------
def _key(settings: Settings) -> bytes:
    key = settings.notify_signing_key.get_secret_value()
    if not key:
        raise ServiceUnavailableError("Notifications are not configured (NOTIFY_SIGNING_KEY)")
    return key.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(settings: Settings, user_id: str, workspace_id: str, event: EventType) -> str:
    body = _b64(
        json.dumps({"u": user_id, "w": workspace_id, "e": event.value}, separators=(",", ":")).encode()
    )
    signature = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def unsubscribe_url(settings: Settings, user_id: str, workspace_id: str, event: EventType) -> str:
    token = unsubscribe_token(settings, user_id, workspace_id, event)
    return f"{settings.public_api_url.rstrip('/')}/notifications/unsubscribe?token={quote(token)}"


def read_token(settings: Settings, token: str) -> tuple[str, str, EventType]:
    """(user, workspace, event type) of a genuine token; ValidationError for anything else."""
    invalid = ValidationError("This unsubscribe link is not valid")
    body, _, signature = token.partition(".")
    try:
        expected = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise invalid
        data = json.loads(_unb64(body))
        return str(data["u"]), str(data["w"]), EventType(data["e"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid from exc


def unsubscribe(ctx: NotifyServices, token: str) -> EventType:
    """Turn off one event type's emails for the member the token names (no sign-in)."""
    user_id, workspace_id, event = read_token(ctx.settings, token)
    membership = ctx.store.get_membership(user_id, workspace_id)
    if membership is None:
        raise ValidationError("This unsubscribe link is no longer valid")
    current = preferences(ctx, Principal(user_id=user_id), workspace_id)
    remaining = [e.value for e in current.email_events if e != event]
    ctx.store.set_email_events(user_id, workspace_id, remaining)
    return event
