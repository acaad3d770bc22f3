"""Web Push's rules on fakes: who gets a push, once per browser per event, a gone subscription
removed, a push that fails never holding up the event's webhooks, subscriptions checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain import Principal
from chalicelib.errors import ServiceUnavailableError, ValidationError
from chalicelib.notifications import fanout, push
from chalicelib.notifications.domain import Endpoint, EventType, PostResult
from tests.support.notify_fakes import FakePusher, notify_context

P256DH = "B" + "A" * 86  # 65 bytes, base64url, starting 0x04
AUTH = "A" * 22  # 16 bytes


def _event(kind: str = "job.completed", started_by: str = "u1", event_id: str = "evt_1") -> dict[str, Any]:
    job = {"id": "j1", "originalFilename": "clip.mp4", "error": "The file is not a readable video"}
    error = {"message": "The file is not a readable video", "suggestion": "Upload a different file."}
    data: dict[str, Any] = {"job": job, "startedBy": started_by}
    if kind == "job.failed":
        data["error"] = error
    return {
        "id": event_id,
        "type": kind,
        "timestamp": "2026-01-01T12:00:00.000Z",
        "workspaceId": "ws",
        "data": data,
    }


def _context(pusher: FakePusher | None = None) -> Any:
    ctx, store, *_rest = notify_context(webhook_allow_local=False)
    ctx.pusher = pusher or FakePusher()
    store.add_member("u1", "ws")
    store.add_member("u2", "ws")
    return ctx, store


def _subscribe(ctx: Any, user: str, host: str) -> str:
    return push.subscribe(ctx, Principal(user_id=user), f"https://{host}/push/abc", P256DH, AUTH).id


def test_only_the_member_who_started_the_job_is_pushed_once_per_browser_even_when_redelivered() -> None:
    ctx, _store = _context()
    _subscribe(ctx, "u1", "hooks.example.com")
    _subscribe(ctx, "u1", "93.184.216.34")
    _subscribe(ctx, "u2", "hooks.example.com")
    assert fanout.fan_out(ctx, _event(), "{}").pushes == 2
    assert fanout.fan_out(ctx, _event(), "{}").pushes == 0  # redelivered: nothing twice
    assert {s.user_id for s, _ in ctx.pusher.pushed} == {"u1"}
    message = json.loads(ctx.pusher.pushed[0][1])
    assert message == {
        "type": "job.completed",
        "eventId": "evt_1",
        "jobId": "j1",
        "workspaceId": "ws",
        "title": "Ready: clip.mp4",
        "body": "Your video is ready to download.",
        "url": "https://app.test/?workspace=ws#job-j1",
        "tag": "job-j1",
    }


def test_a_failure_says_why_and_retried_or_credit_events_are_never_pushed() -> None:
    ctx, _store = _context()
    _subscribe(ctx, "u1", "hooks.example.com")
    fanout.fan_out(ctx, _event("job.failed"), "{}")
    body = json.loads(ctx.pusher.pushed[0][1])
    assert body["title"] == "Failed: clip.mp4"
    assert body["body"] == "The file is not a readable video Upload a different file."
    fanout.fan_out(ctx, _event("job.retried", event_id="evt_2"), "{}")
    assert len(ctx.pusher.pushed) == 1


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_push_service_no_longer_knows_is_removed(status: int) -> None:
    ctx, store = _context(FakePusher(PostResult(status)))
    gone = _subscribe(ctx, "u1", "hooks.example.com")
    kept = _subscribe(ctx, "u1", "93.184.216.34")
    fanout.fan_out(ctx, _event(), "{}")
    assert [s.id for s in store.push_subscriptions_of("u1")] == [kept]
    assert gone != kept


def test_another_failure_keeps_the_subscription_and_a_crashing_push_never_stops_the_webhooks() -> None:
    class Crashing(FakePusher):
        def push(self, *args: Any) -> PostResult:
            raise RuntimeError("the secret could not be read")

    ctx, store = _context(FakePusher(PostResult(500), PostResult(None, "timeout")))
    _subscribe(ctx, "u1", "hooks.example.com")
    _subscribe(ctx, "u1", "93.184.216.34")
    assert fanout.fan_out(ctx, _event(), "{}").pushes == 0
    assert len(store.push_subscriptions_of("u1")) == 2
    ctx.pusher = Crashing()
    store.endpoints[("ws", "e1")] = Endpoint(
        "ws", "e1", "https://hooks.example.com/x", [EventType.JOB_COMPLETED], "whsec_x", ctx.clock()
    )
    assert fanout.fan_out(ctx, _event(event_id="evt_9"), "{}").deliveries == 1


def test_the_members_push_choice_is_honoured() -> None:
    ctx, store = _context()
    _subscribe(ctx, "u1", "hooks.example.com")
    store.set_push_events("u1", "ws", ["job.failed"])
    assert fanout.fan_out(ctx, _event(), "{}").pushes == 0
    assert fanout.fan_out(ctx, _event("job.failed", event_id="evt_2"), "{}").pushes == 1


@pytest.mark.parametrize(
    ("endpoint", "p256dh", "auth", "says"),
    [
        ("https://internal.example.com/push", P256DH, AUTH, "private"),
        ("http://hooks.example.com/push", P256DH, AUTH, "https"),
        ("https://hooks.example.com/push", "AAAA", AUTH, "p256dh"),
        ("https://hooks.example.com/push", "C" + "A" * 86, AUTH, "p256dh"),  # not an uncompressed point
        ("https://hooks.example.com/push", P256DH, "!!", "auth"),
    ],
)
def test_a_subscription_that_is_not_one_is_refused(endpoint: str, p256dh: str, auth: str, says: str) -> None:
    ctx, store = _context()
    with pytest.raises(ValidationError, match=says):
        push.subscribe(ctx, Principal(user_id="u1"), endpoint, p256dh, auth)
    assert store.subscriptions == {}


def test_a_person_has_at_most_push_max_subscriptions_browsers() -> None:
    ctx, _store = _context()
    ctx.settings = ctx.settings.model_copy(update={"push_max_subscriptions": 2})
    _subscribe(ctx, "u1", "hooks.example.com")
    _subscribe(ctx, "u1", "93.184.216.34")
    _subscribe(ctx, "u1", "hooks.example.com")  # the same browser again: still two
    with pytest.raises(ValidationError, match="most allowed"):
        _subscribe(ctx, "u1", "93.184.216.35")


def test_without_a_vapid_key_push_is_off_and_says_so() -> None:
    ctx, _store = _context()
    ctx.pusher = None
    with pytest.raises(ServiceUnavailableError, match="VAPID_SECRET_ID"):
        push.public_key(ctx)
    assert fanout.fan_out(ctx, _event(), "{}").pushes == 0
