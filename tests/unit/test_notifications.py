"""The notification rules on fakes: events from changes, SSRF refusals, the retry schedule, the
delivery state machine, emails and unsubscribe tokens. No I/O (the resolver is a stub)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import Attempt, Job, JobStatus, Principal, Role, Trigger
from chalicelib.errors import ConflictError, ForbiddenError, ServiceUnavailableError, ValidationError
from chalicelib.notifications import emails, events, fanout, preferences, webhooks
from chalicelib.notifications.domain import (
    EventType,
    PostResult,
    WebhookDeliveryMessage,
    WebhookDeliveryStatus,
)
from chalicelib.notifications.endpoint_urls import check_url, classify
from tests.support.notify_fakes import FakeSender, notify_context, public_resolver

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OWNER = Principal(user_id="owner-1", email="owner@x.test")


def job(status: JobStatus, **kw: Any) -> Job:
    return Job(
        id="11111111-1111-1111-1111-111111111111",
        workspace_id="ws",
        status=status,
        original_filename="clip.mp4",
        content_type="video/mp4",
        size=10,
        input_file_key="uploads/ws/x/source",
        created_at=T0,
        updated_at=T0,
        created_by="owner-1",
        **kw,
    )


def as_json(j: Job) -> dict[str, Any]:
    return {"id": j.id, "status": j.status.value, "suggestion": "Upload the file again"}


def change(old: Any, new: Any, change_id: str = "abc-123") -> events.TableChange:
    return events.TableChange(change_id=change_id, at=T0, old=old, new=new)


# --- events from committed changes ----------------------------------------------------------------
def test_a_status_change_to_completed_or_failed_is_an_event_and_nothing_else_is() -> None:
    done = events.event_of(
        change(job(JobStatus.PROCESSING), job(JobStatus.COMPLETED)), lambda _: None, as_json
    )
    failed = events.event_of(
        change(job(JobStatus.PROCESSING), job(JobStatus.FAILED, error="bad", error_code="INVALID_VIDEO")),
        lambda _: None,
        as_json,
    )
    progress = events.event_of(
        change(job(JobStatus.PROCESSING), job(JobStatus.PROCESSING)), lambda _: None, as_json
    )
    queued = events.event_of(change(job(JobStatus.FAILED), job(JobStatus.QUEUED)), lambda _: None, as_json)

    assert done is not None and done.type == EventType.JOB_COMPLETED and done.id == "evt_abc123"
    assert failed is not None and failed.data["error"] == {
        "code": "INVALID_VIDEO",
        "message": "bad",
        "retryable": None,
        "suggestion": "Upload the file again",
    }
    assert progress is None and queued is None


def test_a_new_manual_or_batch_attempt_is_job_retried_with_who_and_the_credit() -> None:
    j = job(JobStatus.QUEUED, attempt=2)
    attempt = Attempt(
        job_id=j.id, n=2, trigger=Trigger.BATCH, credits_charged=1, queued_at=T0, requested_by="u9"
    )
    first = Attempt(job_id=j.id, n=1, trigger=Trigger.INITIAL, credits_charged=1, queued_at=T0)
    retried = events.event_of(change(None, attempt), lambda _: j, as_json)

    assert retried is not None and retried.type == EventType.JOB_RETRIED
    assert retried.data["retry"] == {
        "attempt": 2,
        "trigger": "batch",
        "requestedBy": "u9",
        "creditsCharged": 1,
    }
    assert events.event_of(change(None, first), lambda _: j, as_json) is None
    assert (
        events.event_of(change(attempt, attempt), lambda _: j, as_json) is None
    )  # an update, not a new attempt


@pytest.mark.parametrize(
    ("before", "after", "threshold", "fires"),
    [
        (3, 2, None, True),
        (2, 1, None, False),
        (10, 0, None, True),
        (5, 4, 4, True),
        (4, 5, 4, False),
        (9, 8, 4, False),
    ],
)
def test_credits_low_fires_when_the_balance_crosses_to_at_or_below_the_threshold(
    before: int, after: int, threshold: int | None, fires: bool
) -> None:
    c = change(events.Balance("ws", before, threshold), events.Balance("ws", after, threshold))
    event = events.event_of(c, lambda _: None, as_json)
    assert (event is not None) == fires
    if event is not None:
        assert event.data == {"credits": after, "threshold": threshold if threshold is not None else 2}


def test_a_cancel_is_an_event_that_says_what_came_back() -> None:
    cancelled = events.event_of(
        change(job(JobStatus.QUEUED, credits_paid=1), job(JobStatus.CANCELLED, credits_paid=0)),
        lambda _: None,
        as_json,
    )
    assert cancelled is not None and cancelled.type == EventType.JOB_CANCELLED
    assert cancelled.data["cancel"] == {"creditsRefunded": 1} and cancelled.data["startedBy"] == "owner-1"
    mail = emails.compose(cancelled.payload(), "a@x.test", "http://dash/#job-1", "http://unsub")
    assert mail.subject == "Cancelled: your video" and "1 credit came back" in mail.text


def test_the_same_change_redelivered_is_the_same_event() -> None:
    c = change(job(JobStatus.PROCESSING), job(JobStatus.COMPLETED), change_id="shard-1:000042")
    a, b = events.event_of(c, lambda _: None, as_json), events.event_of(c, lambda _: None, as_json)
    assert a is not None and b is not None and a.payload() == b.payload()


# --- SSRF --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", "public"),
        ("2606:2800:220:1::1", "public"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("0.0.0.0", "private"),
        ("100.64.0.1", "not globally routable"),
        ("224.0.0.1", "multicast"),
        # Classified here, not by the Python version's tables (3.11 called the first four public):
        ("fec0::1", "site-local"),
        ("2002:7f00:1::", "loopback (6to4)"),  # 6to4 carrying 127.0.0.1
        ("2002:a00:1::", "private (6to4)"),  # ... 10.0.0.1
        ("2002:5db8:d822::1", "tunnelled (6to4)"),  # ... a public address: still a tunnel
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (Teredo)"),  # client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:a2b7:27dd", "tunnelled (Teredo)"),  # client 93.72.216.34
        ("64:ff9b::7f00:1", "loopback (NAT64)"),
        ("64:ff9b:1::a00:1", "private (NAT64)"),
        ("64:ff9b::5db8:d822", "tunnelled (NAT64)"),
    ],
)
def test_the_address_classifier(address: str, kind: str) -> None:
    assert classify(address) == kind


@pytest.mark.parametrize(
    ("url", "allow_local", "says"),
    [
        ("http://hooks.example.com/x", False, "https"),
        ("http://hooks.example.com/x", True, "https"),
        ("https://internal.example.com/x", False, "private"),
        ("https://metadata.example.com/x", True, "link-local"),
        ("https://mixed.example.com/x", False, "private"),
        ("https://127.0.0.1/x", False, "loopback"),
        ("https://user:pw@hooks.example.com/x", False, "user"),
        ("ftp://hooks.example.com/x", False, "https"),
        ("https:///nohost", False, "host"),
        ("https://hooks.example.com:99999/x", False, "not valid"),
        ("https://hooks.example.com/" + "a" * 2100, False, "2048"),
    ],
)
def test_refused_urls_say_why(url: str, allow_local: bool, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_url(url, public_resolver, allow_local)
    assert says in refused.value.message


def test_a_6to4_or_teredo_host_is_refused_even_where_loopback_is_allowed() -> None:
    for host in ("[2002:7f00:1::]", "[2001:0:4136:e378:8000:63bf:80ff:fffe]", "[fec0::1]"):
        with pytest.raises(ValidationError) as refused:
            check_url(f"https://{host}/x", public_resolver, True)
        assert "not allowed" in refused.value.message


def test_a_non_ascii_url_is_stored_in_ascii_and_a_host_that_cannot_be_is_refused() -> None:
    from chalicelib.notifications.endpoint_urls import normalized, request_target

    assert normalized("https://bücher.example/café?q=ñ") == "https://xn--bcher-kva.example/caf%C3%A9?q=%C3%B1"
    assert normalized("https://hooks.example.com/a%20b/c d") == "https://hooks.example.com/a%20b/c%20d"
    assert request_target("https://h.example/x\r\nHost: evil") == "/xHost:%20evil"  # never a header
    assert request_target("https://h.example") == "/"
    with pytest.raises(ValidationError):
        normalized("https://a..ü/x")


def test_accepted_urls_give_the_addresses_to_connect_to() -> None:
    assert check_url("https://hooks.example.com/in", public_resolver, False) == ["93.184.216.34"]
    assert check_url("http://127.0.0.1:9/in", public_resolver, True) == ["127.0.0.1"]
    assert check_url("http://localhost:9/in", public_resolver, True) == ["127.0.0.1"]


def test_an_http_url_is_refused_before_its_name_is_looked_up() -> None:
    def no_lookups(host: str) -> list[str]:
        raise AssertionError(f"looked up {host}")

    with pytest.raises(ValidationError):
        check_url("http://hooks.example.com/x", no_lookups, True)


# --- registration ---------------------------------------------------------------------------------
def test_registration_is_owner_only_checks_everything_and_stores_nothing_when_refused() -> None:
    ctx, store, *_ = notify_context()
    store.add_member("owner-1", "ws")
    store.add_member("member-1", "ws", role=Role.MEMBER)

    with pytest.raises(ForbiddenError):
        webhooks.register(ctx, Principal("member-1"), "ws", "https://hooks.example.com/x", ["job.failed"])
    for url, kinds in (
        ("https://internal.example.com/x", ["job.failed"]),
        ("https://hooks.example.com/x", ["job.unknown"]),
        ("https://hooks.example.com/x", []),
    ):
        with pytest.raises(ValidationError):
            webhooks.register(ctx, OWNER, "ws", url, kinds)
    assert store.endpoints == {}

    done = webhooks.register(ctx, OWNER, "ws", "https://hooks.example.com/x", ["job.failed", "job.failed"])
    assert done.secret.startswith("whsec_") and done.endpoint.event_types == [EventType.JOB_FAILED]


# --- delivery --------------------------------------------------------------------------------------
def _event(kind: str = "job.failed") -> dict[str, Any]:
    return {
        "id": "evt_1",
        "type": kind,
        "timestamp": "2026-01-01T12:00:00.000Z",
        "workspaceId": "ws",
        "data": {
            "job": {"id": "j1", "originalFilename": "clip.mp4"},
            "startedBy": "owner-1",
            "error": {"message": "The file is not a readable video", "suggestion": "Upload it again"},
        },
    }


def _registered(**settings: Any) -> tuple[Any, ...]:
    parts = notify_context(**settings)
    ctx, store = parts[0], parts[1]
    store.add_member("owner-1", "ws", email="owner@x.test")
    endpoint = webhooks.register(ctx, OWNER, "ws", "https://hooks.example.com/x", ["job.failed"]).endpoint
    return (*parts, endpoint)


def test_fan_out_twice_makes_one_delivery_and_one_email() -> None:
    ctx, store, mailer, sender, queue, _clock, endpoint = _registered()
    payload = json.dumps(_event())
    first = fanout.fan_out(ctx, _event(), payload)
    assert (first.emails, first.deliveries) == (1, 1)
    message, delay = queue.deliveries[0]
    assert (message.endpoint_id, message.attempt, delay) == (endpoint.id, 1, 0)

    # Redelivered before the delivery was tried (the first run may have died before sending its
    # message): the message goes again, and the two messages make one try.
    again = fanout.fan_out(ctx, _event(), payload)
    assert (again.emails, again.deliveries) == (0, 1)
    assert [webhooks.deliver(ctx, m) for m, _ in queue.deliveries] == ["delivered", "stale"]
    # Redelivered after: nothing more.
    late = fanout.fan_out(ctx, _event(), payload)
    assert (late.emails, late.deliveries) == (0, 0)
    assert len(mailer.sent) == 1 and len(sender.posts) == 1 and len(store.deliveries) == 1


def test_a_failed_email_is_released_for_the_redelivery() -> None:
    ctx, store, mailer, *_ = _registered()
    mailer.fail = True
    with pytest.raises(ServiceUnavailableError):
        fanout.fan_out(ctx, _event(), json.dumps(_event()))
    mailer.fail = False
    assert fanout.fan_out(ctx, _event(), json.dumps(_event())).emails == 1


def test_members_get_only_what_they_chose_and_jobs_only_email_who_started_them() -> None:
    ctx, store, mailer, *_ = _registered()
    store.add_member("other", "ws", role=Role.MEMBER)
    store.set_email_events("owner-1", "ws", ["job.completed"])
    fanout.fan_out(ctx, _event("job.failed"), "{}")
    assert mailer.sent == []
    fanout.fan_out(ctx, {**_event("job.completed"), "id": "evt_2"}, "{}")
    assert [m.to for m in mailer.sent] == ["owner@x.test"]


def test_the_schedule_doubles_with_jitter_caps_and_hops_over_15_minutes() -> None:
    ctx, *_ = notify_context(webhook_retry_base_seconds=5, webhook_retry_max_delay_seconds=3600)
    ctx.random = lambda: 0.0
    assert [webhooks.backoff_seconds(ctx, n) for n in (1, 2, 3, 12)] == [2.5, 5.0, 10.0, 1800.0]
    ctx.random = lambda: 0.999
    assert 3590 < webhooks.backoff_seconds(ctx, 30) < 3600
    assert webhooks.hop_delay(T0 + timedelta(seconds=3000), T0) == 900
    assert webhooks.hop_delay(T0 + timedelta(seconds=10.2), T0) == 11
    assert webhooks.hop_delay(T0 - timedelta(seconds=5), T0) == 0


def _delivery_message(ctx: Any, queue: Any, endpoint: Any) -> WebhookDeliveryMessage:
    fanout.fan_out(ctx, _event(), json.dumps(_event()))
    return queue.deliveries.pop()[0]


def test_a_failure_schedules_the_next_try_and_a_2xx_delivers() -> None:
    ctx, store, _mailer, _sender, queue, clock, endpoint = _registered(webhook_retry_base_seconds=60)
    ctx.sender = FakeSender(PostResult(500), PostResult(None, "No answer within 10 s"), PostResult(204))
    message = _delivery_message(ctx, queue, endpoint)

    assert webhooks.deliver(ctx, message) == "retrying"
    follow, delay = queue.deliveries.pop()
    assert (follow.attempt, delay) == (2, 30) and follow.not_before == clock.now + timedelta(seconds=30)
    assert webhooks.deliver(ctx, message) == "stale"  # the first message again: a no-op

    clock.advance(30)
    assert webhooks.deliver(ctx, follow) == "retrying"
    third, _ = queue.deliveries.pop()
    clock.advance(60)
    assert webhooks.deliver(ctx, third) == "delivered"
    d = store.get_delivery(endpoint.id, message.delivery_id)
    assert d is not None and (d.status, d.attempts, d.last_response_code) == (
        WebhookDeliveryStatus.DELIVERED,
        3,
        204,
    )
    assert [p["id"] for p in ctx.sender.posts] == ["evt_1"] * 3
    assert len({p["body"] for p in ctx.sender.posts}) == 1


def test_an_early_message_hops_without_trying() -> None:
    ctx, _store, _m, sender, queue, clock, endpoint = _registered()
    message = _delivery_message(ctx, queue, endpoint)
    early = WebhookDeliveryMessage(
        message.workspace_id, message.endpoint_id, message.delivery_id, 1, clock.now + timedelta(hours=2)
    )

    assert webhooks.deliver(ctx, early) == "waiting"
    assert sender.posts == [] and queue.deliveries[-1] == (early, 900)


def test_after_the_window_the_delivery_fails_and_enough_failures_disable_and_tell_the_owners() -> None:
    ctx, store, mailer, _s, queue, clock, endpoint = _registered(
        webhook_retry_base_seconds=3600, webhook_retry_window_seconds=1000, webhook_disable_after_failures=1
    )
    ctx.sender = FakeSender(PostResult(503))
    message = _delivery_message(ctx, queue, endpoint)
    mailer.sent.clear()

    assert webhooks.deliver(ctx, message) == "failed"
    d = store.get_delivery(endpoint.id, message.delivery_id)
    assert d is not None and d.status == WebhookDeliveryStatus.FAILED and d.next_try_at is None
    e = store.get_endpoint("ws", endpoint.id)
    assert e is not None and not e.enabled and "1 deliveries in a row failed" in (e.disabled_reason or "")
    # The notice is an event on the notifications queue; the fan-out emails it to the owners.
    [notice] = queue.events
    assert notice["type"] == "webhook.disabled" and mailer.sent == []
    fanout.fan_out(ctx, notice, json.dumps(notice))
    assert [m.subject for m in mailer.sent] == ["A webhook endpoint was disabled"]
    assert "https://hooks.example.com/x" in mailer.sent[0].text


def test_a_sender_that_raises_is_a_failed_try_recorded_never_a_stuck_delivery() -> None:
    ctx, store, _m, _s, queue, _c, endpoint = _registered()

    class Raising(FakeSender):
        def post(self, *args: Any, **kwargs: Any) -> PostResult:
            raise UnicodeEncodeError("ascii", "café", 3, 4, "ordinal not in range(128)")

    ctx.sender = Raising()
    message = _delivery_message(ctx, queue, endpoint)
    assert webhooks.deliver(ctx, message) == "retrying"
    d = store.get_delivery(endpoint.id, message.delivery_id)
    assert d is not None and d.attempts == 1 and d.last_error == "Could not send: UnicodeEncodeError"
    assert queue.deliveries[-1][0].attempt == 2  # the next try is queued
    assert store.slots == {}  # the try's slot was given back


def test_a_try_waits_its_turn_when_its_workspace_holds_every_slot() -> None:
    ctx, store, _m, sender, queue, clock, endpoint = _registered(
        webhook_max_concurrent_tries=2, webhook_timeout_seconds=10
    )
    message = _delivery_message(ctx, queue, endpoint)
    # GIVEN two tries of this workspace under way (held slots), and another workspace's slot
    until = clock.now + timedelta(seconds=40)
    assert store.claim_try_slot("ws", "a", clock.now, until, 2)
    assert store.claim_try_slot("ws", "b", clock.now, until, 2)
    assert store.claim_try_slot("other", "c", clock.now, until, 2)
    # WHEN a third try of this workspace comes: it goes back to the queue, untried and uncounted
    assert webhooks.deliver(ctx, message) == "busy"
    assert sender.posts == [] and queue.deliveries[-1] == (message, 5)
    d = store.get_delivery(endpoint.id, message.delivery_id)
    assert d is not None and d.attempts == 0
    # THEN once a slot is free (given back, or its holder's lease ran out) it is tried
    clock.advance(41)
    assert webhooks.deliver(ctx, message) == "delivered"
    assert len(sender.posts) == 1


def test_resend_restarts_a_finished_delivery_once() -> None:
    ctx, store, _m, _s, queue, _c, endpoint = _registered()
    message = _delivery_message(ctx, queue, endpoint)
    assert webhooks.deliver(ctx, message) == "delivered"

    restarted = webhooks.resend(ctx, OWNER, "ws", endpoint.id, message.delivery_id)
    assert restarted.status == WebhookDeliveryStatus.PENDING and queue.deliveries[-1][0].attempt == 2
    with pytest.raises(ConflictError):
        webhooks.resend(ctx, OWNER, "ws", endpoint.id, message.delivery_id)
    assert webhooks.deliver(ctx, queue.deliveries[-1][0]) == "delivered"


def test_rotation_signs_with_both_secrets_for_the_overlap_then_only_the_new_one() -> None:
    ctx, store, _m, sender, queue, clock, endpoint = _registered(webhook_secret_overlap_seconds=3600)
    new, until = webhooks.rotate(ctx, OWNER, "ws", endpoint.id)
    assert until == clock.now + timedelta(seconds=3600)
    rotated = store.get_endpoint("ws", endpoint.id)
    assert rotated is not None
    assert rotated.secrets(clock.now) == [new, endpoint.secret]
    assert rotated.secrets(clock.now + timedelta(seconds=3601)) == [new]


# --- emails and unsubscribe --------------------------------------------------------------------
def test_the_failed_email_has_both_parts_the_error_the_suggestion_and_the_job_link() -> None:
    link = emails.job_link("https://app.test", "ws", "j1")
    mail = emails.compose(_event(), "a@x.test", link, "https://api.test/notifications/unsubscribe?token=t")

    for part in (mail.text, mail.html):
        assert "The file is not a readable video" in part and "Upload it again" in part
        assert "https://app.test/?workspace=ws#job-j1" in part
        assert "/notifications/unsubscribe?token=t" in part
    assert mail.html.startswith("<!doctype html>") and "<p>" not in mail.text


def test_an_emails_html_part_escapes_what_a_user_wrote() -> None:
    event = _event()
    event["data"]["job"]["originalFilename"] = '<img src=x onerror="alert(1)">.mp4'
    mail = emails.compose(event, "a@x.test", "https://app.test/?w=1&x=2", "https://api.test/u?token=t")
    assert "<img" not in mail.html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.mp4" in mail.html
    assert 'href="https://app.test/?w=1&amp;x=2"' in mail.html


def test_unsubscribe_tokens_are_signed_and_turn_off_one_event_type() -> None:
    ctx, store, *_ = notify_context()
    store.add_member("owner-1", "ws")
    token = preferences.unsubscribe_token(ctx, "owner-1", "ws", EventType.JOB_FAILED, 0)

    assert preferences.unsubscribe(ctx, token) == EventType.JOB_FAILED
    assert preferences.preferences(ctx, OWNER, "ws").email_events == {
        EventType.JOB_COMPLETED,
        EventType.CREDITS_LOW,
    }
    body, _, sig = token.partition(".")
    for forged in (body + "." + sig[::-1], "x" + token, "nonsense", ""):
        with pytest.raises(ValidationError):
            preferences.unsubscribe(ctx, forged)
    other, *_ = notify_context(notify_signing_key="another key")
    with pytest.raises(ValidationError):
        preferences.read_token(other, token)


def _emailed_token(ctx: Any, mailer: Any, event_id: str = "evt_low") -> str:
    """The unsubscribe token of the credits.low email the owner gets (as fan-out writes it)."""
    import re
    from urllib.parse import unquote

    event = {
        "id": event_id,
        "type": "credits.low",
        "timestamp": "2026-01-01T12:00:00.000Z",
        "workspaceId": "ws",
        "data": {"credits": 1, "threshold": 2},
    }
    fanout.fan_out(ctx, event, json.dumps(event))
    found = re.search(r"unsubscribe\?token=(\S+)", mailer.sent[-1].text)
    assert found is not None
    return unquote(found.group(1))


def test_an_old_unsubscribe_link_cannot_turn_emails_off_again_after_a_new_choice() -> None:
    ctx, store, mailer, *_ = notify_context()
    store.add_member("owner-1", "ws", email="owner@x.test")
    token = _emailed_token(ctx, mailer)
    assert preferences.unsubscribe(ctx, token) == EventType.CREDITS_LOW
    # The member subscribes again in the dashboard: the old link (in the old email) is spent.
    preferences.update(ctx, OWNER, "ws", ["credits.low", "job.failed"], None)
    with pytest.raises(ValidationError):
        preferences.unsubscribe(ctx, token)
    assert EventType.CREDITS_LOW in preferences.preferences(ctx, OWNER, "ws").email_events


def test_an_unsubscribe_link_expires() -> None:
    ctx, store, mailer, _s, _q, clock = notify_context()
    store.add_member("owner-1", "ws", email="owner@x.test")
    token = _emailed_token(ctx, mailer)
    clock.advance(ctx.settings.unsubscribe_link_days * 86400 + 1)
    with pytest.raises(ValidationError):
        preferences.unsubscribe(ctx, token)
    assert EventType.CREDITS_LOW in preferences.preferences(ctx, OWNER, "ws").email_events


def test_an_unsubscribe_token_decodes_strictly() -> None:
    ctx, store, mailer, *_ = notify_context()
    store.add_member("owner-1", "ws", email="owner@x.test")
    token = _emailed_token(ctx, mailer)
    body, _, signature = token.partition(".")
    for loose in (
        token + "!",  # junk after the signature
        token + "==",  # padding
        f"{body}.{signature[:10]}*{signature[10:]}",  # a character base64 ignores
        f"{body}==.{signature}",
        f"{body}\n.{signature}",
        f" {token}",
    ):
        with pytest.raises(ValidationError):
            preferences.unsubscribe(ctx, loose)
    assert EventType.CREDITS_LOW in preferences.preferences(ctx, OWNER, "ws").email_events


# --- stream records ------------------------------------------------------------------------------
def test_a_stream_record_as_lambda_delivers_it_becomes_a_change() -> None:
    from chalicelib.notifications.adapters.stream_records import change_of
    from devstack.lambda_events import stream_record

    image = {
        "id": {"S": "j1"},
        "workspaceId": {"S": "ws"},
        "status": {"S": "failed"},
        "wsStatus": {"S": "ws#failed"},
        "createdKey": {"S": "k"},
        "originalFilename": {"S": "a.mp4"},
        "contentType": {"S": "video/mp4"},
        "size": {"N": "10"},
        "inputFileKey": {"S": "uploads/ws/j1/source"},
        "createdAt": {"S": "2026-01-01T12:00:00.000000+0000"},
        "updatedAt": {"S": "2026-01-01T12:00:00.000000+0000"},
        "error": {"S": "bad"},
        "errorCode": {"S": "INVALID_VIDEO"},
        "attempt": {"N": "1"},
    }
    old = {**image, "status": {"S": "processing"}}
    got_records = {
        "eventID": "e-1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": T0,
            "NewImage": image,
            "OldImage": old,
            "SequenceNumber": "7",
        },
    }
    arn = "arn:aws:dynamodb:ddblocal:000000000000:table/my-prefix-jobs/stream/2026"
    record = stream_record(got_records, arn, "us-east-1")
    c = change_of(record)

    assert record["dynamodb"]["ApproximateCreationDateTime"] == T0.timestamp()
    assert c is not None and c.at == T0 and c.change_id == "e-1"
    assert isinstance(c.new, Job) and c.new.status == JobStatus.FAILED and c.new.error_code == "INVALID_VIDEO"
    assert isinstance(c.old, Job) and c.old.status == JobStatus.PROCESSING
    assert change_of({**record, "eventSourceARN": arn.replace("-jobs/", "-ledger/")}) is None
    balance = {"id": {"S": "ws"}, "credits": {"N": "1"}, "lowCreditsThreshold": {"N": "3"}}
    ws = change_of(
        {
            **record,
            "eventSourceARN": arn.replace("-jobs/", "-workspaces/"),
            "dynamodb": {"NewImage": balance, "OldImage": {**balance, "credits": {"N": "4"}}},
        }
    )
    assert ws is not None and ws.new == events.Balance("ws", 1, 3) and ws.old == events.Balance("ws", 4, 3)
