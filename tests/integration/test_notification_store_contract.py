"""The NotificationStore contract: the same cases against the fake and DynamoDB Local.

One case per conditional refusal; a fake that accepts what the adapter refuses is a bug.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import Role
from chalicelib.errors import NotFoundError
from chalicelib.notifications.domain import (
    Endpoint,
    EventType,
    PushSubscription,
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from tests.support.notify_fakes import FakeStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return FakeStore()
    request.getfixturevalue("aws_stack")
    from chalicelib.notifications.adapters.dynamodb import DynamoNotifications

    return DynamoNotifications()


def _endpoint(ws: str) -> Endpoint:
    return Endpoint(
        ws, str(uuid.uuid4()), "https://hooks.example.com/x", [EventType.JOB_FAILED], "whsec_a", T0
    )


def _delivery(endpoint_id: str) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint_id,
        f"0001-{uuid.uuid4().hex}",
        "ws",
        "evt_1",
        "job.failed",
        "{}",
        WebhookDeliveryStatus.PENDING,
        T0,
        next_try_at=T0,
    )


def test_a_delivery_is_created_once_and_each_try_is_recorded_once(store: Any) -> None:
    d = _delivery(str(uuid.uuid4()))
    assert store.create_delivery(d) is True
    assert store.create_delivery(d) is False
    tried = WebhookDelivery(**{**d.__dict__, "attempts": 1, "last_try_at": T0, "last_response_code": 500})
    assert store.record_try(tried, expected_attempts=0) is True
    assert store.record_try(tried, expected_attempts=0) is False  # a second message for try 1
    done = WebhookDelivery(
        **{**tried.__dict__, "attempts": 2, "status": WebhookDeliveryStatus.DELIVERED, "next_try_at": None}
    )
    assert store.record_try(done, expected_attempts=1) is True
    after = WebhookDelivery(**{**done.__dict__, "attempts": 3, "status": WebhookDeliveryStatus.PENDING})
    assert store.record_try(after, expected_attempts=2) is False  # finished: no more tries
    got = store.get_delivery(d.endpoint_id, d.id)
    assert (got.status, got.attempts, got.last_response_code, got.next_try_at) == (
        WebhookDeliveryStatus.DELIVERED,
        2,
        500,
        None,
    )


def test_resend_restarts_only_a_finished_delivery(store: Any) -> None:
    d = _delivery(str(uuid.uuid4()))
    store.create_delivery(d)
    assert store.restart_delivery(d.endpoint_id, d.id, T0) is None  # still pending
    assert store.restart_delivery(d.endpoint_id, "0001-missing", T0) is None
    failed = WebhookDelivery(
        **{**d.__dict__, "attempts": 1, "status": WebhookDeliveryStatus.FAILED, "last_try_at": T0}
    )
    assert store.record_try(failed, expected_attempts=0)
    later = T0 + timedelta(hours=1)
    restarted = store.restart_delivery(d.endpoint_id, d.id, later)
    assert (
        restarted is not None
        and restarted.status == WebhookDeliveryStatus.PENDING
        and restarted.first_try_at == later
    )
    assert [x.id for x in store.deliveries_of(d.endpoint_id, 10)] == [d.id]


def test_an_email_is_claimed_once_and_can_be_released(store: Any) -> None:
    event = f"evt_{uuid.uuid4().hex}"
    assert store.claim_email(event, "u1", T0) is True
    assert store.claim_email(event, "u1", T0) is False
    assert store.claim_email(event, "u2", T0) is True
    store.release_email(event, "u1")
    assert store.claim_email(event, "u1", T0) is True


def test_endpoints_enable_disable_rotate_count_and_delete(store: Any) -> None:
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    e = _endpoint(ws)
    store.put_endpoint(e)
    assert store.set_endpoint_enabled(ws, e.id, True, None) is False  # already enabled
    assert store.count_failed_delivery(ws, e.id) == 1
    assert store.count_failed_delivery(ws, e.id) == 2
    assert store.set_endpoint_enabled(ws, e.id, False, "2 deliveries in a row failed") is True
    assert store.set_endpoint_enabled(ws, e.id, False, "again") is False
    assert store.rotate_secret(ws, e.id, "whsec_b", T0 + timedelta(days=1)) is True
    got = store.get_endpoint(ws, e.id)
    assert (got.enabled, got.secret, got.previous_secret, got.failed_streak) == (
        False,
        "whsec_b",
        "whsec_a",
        2,
    )
    assert store.set_endpoint_enabled(ws, e.id, True, None) is True
    assert store.get_endpoint(ws, e.id).failed_streak == 0
    assert store.rotate_secret(ws, "missing", "whsec_c", T0) is False
    assert store.count_failed_delivery(ws, "missing") == 0
    assert store.delete_endpoint(ws, e.id) is True
    assert store.delete_endpoint(ws, e.id) is False
    assert store.endpoints_of(ws) == []


def test_push_subscriptions_are_a_persons_own_and_one_per_browser(store: Any) -> None:
    user, other = f"u-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    first = PushSubscription(user, "a" * 32, "https://push.example.com/1", "B" * 87, "A" * 22, T0)
    again = PushSubscription(user, "a" * 32, "https://push.example.com/1", "C" * 87, "D" * 22, T0, "Firefox")
    store.put_push_subscription(first)
    store.put_push_subscription(again)  # the same browser subscribing again replaces it
    store.put_push_subscription(PushSubscription(user, "b" * 32, "https://push.example.com/2", "B", "A", T0))
    store.put_push_subscription(PushSubscription(other, "c" * 32, "https://push.example.com/3", "B", "A", T0))
    mine = store.push_subscriptions_of(user)
    assert [s.id for s in mine] == ["a" * 32, "b" * 32] and mine[0] == again
    assert store.delete_push_subscription(user, "a" * 32) is True
    assert store.delete_push_subscription(user, "a" * 32) is False
    assert store.delete_push_subscription(other, "b" * 32) is False  # not theirs
    assert [s.id for s in store.push_subscriptions_of(user)] == ["b" * 32]


def test_email_and_push_choices_need_a_membership(store: Any) -> None:
    ws, user = f"ws-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NotFoundError):
        store.set_email_events(user, ws, ["job.failed"])
    with pytest.raises(NotFoundError):
        store.set_push_events(user, ws, ["job.failed"])
    if isinstance(store, FakeStore):
        store.add_member(user, ws, Role.MEMBER, "m@x.test")
    else:
        from chalicelib.bootstrap import services
        from chalicelib.domain import Membership, utcnow
        from chalicelib.lifecycle import transitions

        services().repo.commit(
            transitions.add_member(Membership(user, ws, Role.MEMBER, "m@x.test"), utcnow())
        )
    store.set_email_events(user, ws, ["job.failed"])
    store.set_push_events(user, ws, ["job.completed"])
    [member] = [m for m in store.members_of(ws) if m.user_id == user]
    assert member.email_events == {EventType.JOB_FAILED} and member.chosen is not None
    assert member.push_events == {EventType.JOB_COMPLETED}  # each channel its own choice
    store.set_push_events(user, ws, None)
    [member] = [m for m in store.members_of(ws) if m.user_id == user]
    assert member.push_chosen is None and member.push_events == {
        EventType.JOB_COMPLETED,
        EventType.JOB_FAILED,
    }
    store.set_email_events(user, ws, None)
    [member] = [m for m in store.members_of(ws) if m.user_id == user]
    assert member.chosen is None and member.email_events == {EventType.JOB_COMPLETED, EventType.JOB_FAILED}


def test_a_workspace_has_only_so_many_try_slots_and_a_dead_holders_slot_frees_itself(store: Any) -> None:
    ws, until = f"ws-{uuid.uuid4().hex[:8]}", T0 + timedelta(seconds=40)
    first = store.claim_try_slot(ws, "a", T0, until, 2)
    second = store.claim_try_slot(ws, "b", T0, until, 2)
    assert first and second and first != second
    assert store.claim_try_slot(ws, "c", T0, until, 2) is None  # every slot held
    assert store.claim_try_slot(f"{ws}-other", "d", T0, until, 2)  # another workspace: its own slots
    store.free_try_slot(first, "not-the-holder")  # only its holder gives a slot back
    assert store.claim_try_slot(ws, "c", T0, until, 2) is None
    store.free_try_slot(first, "a")
    assert store.claim_try_slot(ws, "c", T0, until + timedelta(minutes=5), 2) == first
    later = until + timedelta(seconds=1)  # b died holding its slot: its lease ran out
    assert store.claim_try_slot(ws, "e", later, later + timedelta(seconds=40), 2) == second
