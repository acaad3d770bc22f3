"""Who gets which email: each member's choice (or the defaults for their role), and unsubscribe
links that work without signing in (a token signed with the notifications' signing key; deployed,
read at run time from Secrets Manager), that expire (UNSUBSCRIBE_LINK_DAYS) and that are spent
once the member's choice changes (each change counts the choice's version up)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from chalicelib.domain import Principal, Role
from chalicelib.errors import ForbiddenError, ServiceUnavailableError, ValidationError
from chalicelib.notifications.domain import (
    DEFAULT_LOW_CREDITS_THRESHOLD,
    MAX_LOW_CREDITS_THRESHOLD,
    PUSHABLE,
    SUBSCRIBABLE,
    EventType,
    MemberAddress,
    Preferences,
    default_email_events,
)
from chalicelib.notifications.ports import NotifyServices
from chalicelib.processing.access import resolve_workspace

MAX_THRESHOLD = MAX_LOW_CREDITS_THRESHOLD


def parse_events(names: Sequence[str], allowed: Sequence[EventType] = SUBSCRIBABLE) -> list[EventType]:
    known = {e.value: e for e in allowed}
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
                member.version,
                member.push_events,
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
    push_events: Sequence[str] | None = None,
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
    if push_events is not None:
        chosen = parse_events(push_events, PUSHABLE)
        ctx.store.set_push_events(principal.user_id, membership.workspace_id, [e.value for e in chosen])
    return preferences(ctx, principal, membership.workspace_id)


# --- unsubscribe tokens -----------------------------------------------------------------------
# A token is `<body>.<signature>`, both unpadded base64url: the body is the JSON of who (u), which
# workspace (w), which event type (e), the member's choice version it was made at (v) and when it
# expires (x, epoch seconds); the signature is HMAC-SHA256 of the body. Only that exact form is
# read: no padding, no other character, nothing before or after.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,1024}\.[A-Za-z0-9_-]{43}")
_FIELDS = {"u": str, "w": str, "e": str, "v": int, "x": int}


@dataclass(frozen=True)
class UnsubscribeLink:
    user_id: str
    workspace_id: str
    event: EventType
    version: int


def _key(ctx: NotifyServices) -> bytes:
    configured = ctx.settings.notify_signing_key.get_secret_value()
    key = ctx.signing_key() if ctx.signing_key is not None else configured
    if not key:
        raise ServiceUnavailableError("Notifications are not configured (NOTIFY_SIGNING_KEY)")
    return key.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Strict: the canonical unpadded base64url of some bytes, or ValueError."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def unsubscribe_token(
    ctx: NotifyServices, user_id: str, workspace_id: str, event: EventType, version: int
) -> str:
    expires = ctx.clock() + timedelta(days=ctx.settings.unsubscribe_link_days)
    claims = {
        "u": user_id,
        "w": workspace_id,
        "e": event.value,
        "v": version,
        "x": int(expires.timestamp()),
    }
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(_key(ctx), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def unsubscribe_url(
    ctx: NotifyServices, user_id: str, workspace_id: str, event: EventType, version: int
) -> str:
    token = unsubscribe_token(ctx, user_id, workspace_id, event, version)
    return f"{ctx.settings.public_api_url.rstrip('/')}/notifications/unsubscribe?token={quote(token)}"


def read_token(ctx: NotifyServices, token: str) -> UnsubscribeLink:
    """What a genuine, unexpired token names; ValidationError for anything else."""
    invalid = ValidationError("This unsubscribe link is not valid")
    if not _TOKEN.fullmatch(token):
        raise invalid
    body, _, signature = token.partition(".")
    try:
        expected = hmac.new(_key(ctx), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise invalid
        claims = json.loads(_unb64(body))
        if not isinstance(claims, dict) or claims.keys() != _FIELDS.keys():
            raise invalid
        if any(type(claims[name]) is not kind for name, kind in _FIELDS.items()):
            raise invalid
        link = UnsubscribeLink(claims["u"], claims["w"], EventType(claims["e"]), claims["v"])
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid from exc
    if ctx.clock().timestamp() >= claims["x"]:
        raise ValidationError("This unsubscribe link has expired: change your emails in the dashboard")
    return link


_MOVED_ON = "This unsubscribe link is no longer valid: your email settings changed after it was sent"


def check_link(ctx: NotifyServices, token: str) -> UnsubscribeLink:
    """A token that still applies: genuine, unexpired, its member still a member and their
    choice still at the version the link was made at (a link spent, or sent before the member
    chose again, applies no more)."""
    link = read_token(ctx, token)
    current = _member(ctx, link.user_id, link.workspace_id)
    if current is None:
        raise ValidationError("This unsubscribe link is no longer valid")
    if current.version != link.version:
        raise ValidationError(_MOVED_ON)
    return link


def unsubscribe(ctx: NotifyServices, token: str) -> EventType:
    """Turn off one event type's emails for the member the token names (no sign-in), once, and
    only if their choice has not changed since the link was made."""
    link = check_link(ctx, token)
    current = preferences(ctx, Principal(user_id=link.user_id), link.workspace_id)
    remaining = [e.value for e in current.email_events if e != link.event]
    if not ctx.store.set_email_events(
        link.user_id, link.workspace_id, remaining, expected_version=link.version
    ):
        raise ValidationError(_MOVED_ON)
    return link.event


def _member(ctx: NotifyServices, user_id: str, workspace_id: str) -> MemberAddress | None:
    return next((m for m in ctx.store.members_of(workspace_id) if m.user_id == user_id), None)
