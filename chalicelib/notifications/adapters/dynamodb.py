"""The NotificationStore port on DynamoDB: member preferences, endpoints, deliveries, email marks."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.adapters.dynamodb.accounts import AccountReads
from chalicelib.adapters.dynamodb.connection import bind
from chalicelib.adapters.dynamodb.jobs import JobReads
from chalicelib.adapters.dynamodb.models import (
    DeliveryModel,
    LimitModel,
    MemberModel,
    PushSubscriptionModel,
    SentEmailModel,
    WebhookModel,
    WorkspaceModel,
)
from chalicelib.adapters.dynamodb.transactions import is_condition_failure
from chalicelib.config import Settings
from chalicelib.domain import Role
from chalicelib.errors import NotFoundError, ServiceUnavailableError
from chalicelib.notifications.domain import (
    Endpoint,
    EventType,
    MemberAddress,
    PushSubscription,
    WebhookDelivery,
    WebhookDeliveryStatus,
)

T = TypeVar("T")
_KEEP = timedelta(days=30)  # the delivery log keeps a delivery this long (TTL)


def guarded(call: Callable[[], T]) -> T:
    """Run one DynamoDB call; an outage becomes ServiceUnavailableError."""
    try:
        return call()
    except DoesNotExist:
        raise  # an answer, not an outage: the caller turns it into None
    except PynamoDBException as exc:
        raise ServiceUnavailableError("The database is unavailable. Try again shortly.") from exc


def _conditional(call: Callable[[], Any]) -> bool:
    """True when the conditional write happened, False when its condition failed."""
    try:
        call()
    except PynamoDBException as exc:
        if is_condition_failure(exc):
            return False
        raise ServiceUnavailableError("The database is unavailable. Try again shortly.") from exc
    return True


def _names(values: Any) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


def _events(names: Sequence[str] | None) -> frozenset[EventType] | None:
    if names is None:
        return None
    return frozenset(EventType(n) for n in names if n in EventType._value2member_map_)


def endpoint_from(m: WebhookModel) -> Endpoint:
    return Endpoint(
        workspace_id=m.workspaceId,
        id=m.id,
        url=m.url,
        event_types=[EventType(str(e)) for e in m.eventTypes],
        secret=m.secret,
        created_at=m.createdAt,
        description=m.description,
        previous_secret=m.previousSecret,
        previous_secret_until=m.previousSecretUntil,
        enabled=bool(m.enabled),
        disabled_reason=m.disabledReason,
        failed_streak=int(m.failedStreak or 0),
        created_by=m.createdBy,
    )


def webhook_delivery_from(m: DeliveryModel) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint_id=m.endpointId,
        id=m.id,
        workspace_id=m.workspaceId,
        event_id=m.eventId,
        event_type=m.eventType,
        payload=m.payload,
        status=WebhookDeliveryStatus(m.status),
        first_try_at=m.firstTryAt,
        attempts=int(m.attempts or 0),
        next_try_at=m.nextTryAt,
        last_try_at=m.lastTryAt,
        last_response_code=int(m.lastResponseCode) if m.lastResponseCode is not None else None,
        last_error=m.lastError,
    )


class DynamoNotifications(AccountReads, JobReads):
    """The NotificationStore port on DynamoDB."""

    def __init__(self, settings: Settings | None = None) -> None:
        bind(settings).client  # noqa: B018

    # --- members and preferences -------------------------------------------------------------
    def members_of(self, workspace_id: str) -> list[MemberAddress]:
        def query() -> list[MemberAddress]:
            return [
                MemberAddress(
                    m.userId,
                    m.email,
                    Role(m.role),
                    _events(_names(m.emailEvents)),
                    int(m.emailEventsVersion or 0),
                    _events(_names(m.pushEvents)),
                )
                for m in MemberModel.by_workspace.query(workspace_id)
            ]

        return guarded(query)

    def set_email_events(
        self,
        user_id: str,
        workspace_id: str,
        events: Sequence[str] | None,
        expected_version: int | None = None,
    ) -> bool:
        choice = (
            MemberModel.emailEvents.remove() if events is None else MemberModel.emailEvents.set(list(events))  # type: ignore[arg-type]
        )
        condition = MemberModel.userId.exists()
        if expected_version is not None:
            version = MemberModel.emailEventsVersion == expected_version
            if expected_version == 0:
                version |= MemberModel.emailEventsVersion.does_not_exist()
            condition &= version
        done = _conditional(
            lambda: MemberModel(userId=user_id, workspaceId=workspace_id).update(
                actions=[choice, MemberModel.emailEventsVersion.add(1)],
                condition=condition,
                add_version_condition=False,
            )
        )
        if done:
            return True
        if self.get_membership(user_id, workspace_id) is None:
            raise NotFoundError("Workspace not found")
        return False

    def set_push_events(self, user_id: str, workspace_id: str, events: Sequence[str] | None) -> None:
        chosen: Any = None if events is None else list(events)
        choice = MemberModel.pushEvents.remove() if chosen is None else MemberModel.pushEvents.set(chosen)
        done = _conditional(
            lambda: MemberModel(userId=user_id, workspaceId=workspace_id).update(
                actions=[choice], condition=MemberModel.userId.exists(), add_version_condition=False
            )
        )
        if not done:
            raise NotFoundError("Workspace not found")

    def get_low_credits_threshold(self, workspace_id: str) -> int | None:
        try:
            m = guarded(lambda: WorkspaceModel.get(workspace_id, consistent_read=True))
        except DoesNotExist:
            return None
        return int(m.lowCreditsThreshold) if m.lowCreditsThreshold is not None else None

    def set_low_credits_threshold(self, workspace_id: str, threshold: int) -> None:
        guarded(
            lambda: WorkspaceModel(id=workspace_id).update(
                actions=[WorkspaceModel.lowCreditsThreshold.set(threshold)],
                condition=WorkspaceModel.id.exists(),
                add_version_condition=False,
            )
        )

    # --- endpoints ---------------------------------------------------------------------------
    def put_endpoint(self, endpoint: Endpoint) -> None:
        model = WebhookModel(
            workspaceId=endpoint.workspace_id,
            id=endpoint.id,
            url=endpoint.url,
            eventTypes=[e.value for e in endpoint.event_types],
            description=endpoint.description,
            secret=endpoint.secret,
            previousSecret=endpoint.previous_secret,
            previousSecretUntil=endpoint.previous_secret_until,
            enabled=endpoint.enabled,
            disabledReason=endpoint.disabled_reason,
            failedStreak=endpoint.failed_streak,
            createdAt=endpoint.created_at,
            createdBy=endpoint.created_by,
        )
        guarded(lambda: model.save(add_version_condition=False))

    def get_endpoint(self, workspace_id: str, endpoint_id: str) -> Endpoint | None:
        try:
            return endpoint_from(
                guarded(lambda: WebhookModel.get(workspace_id, endpoint_id, consistent_read=True))
            )
        except DoesNotExist:
            return None

    def endpoints_of(self, workspace_id: str) -> list[Endpoint]:
        return guarded(
            lambda: [endpoint_from(m) for m in WebhookModel.query(workspace_id, consistent_read=True)]
        )

    def delete_endpoint(self, workspace_id: str, endpoint_id: str) -> bool:
        return _conditional(
            lambda: WebhookModel(workspaceId=workspace_id, id=endpoint_id).delete(
                condition=WebhookModel.id.exists(), add_version_condition=False
            )
        )

    def _update_endpoint(
        self, workspace_id: str, endpoint_id: str, actions: list[Any], condition: Any
    ) -> bool:
        return _conditional(
            lambda: WebhookModel(workspaceId=workspace_id, id=endpoint_id).update(
                actions=actions, condition=condition, add_version_condition=False
            )
        )

    def rotate_secret(self, workspace_id: str, endpoint_id: str, secret: str, old_until: datetime) -> bool:
        current = self.get_endpoint(workspace_id, endpoint_id)
        if current is None:
            return False
        return self._update_endpoint(
            workspace_id,
            endpoint_id,
            [
                WebhookModel.secret.set(secret),
                WebhookModel.previousSecret.set(current.secret),
                WebhookModel.previousSecretUntil.set(old_until),
            ],
            WebhookModel.secret == current.secret,  # two rotations at once: one wins
        )

    def set_endpoint_enabled(
        self, workspace_id: str, endpoint_id: str, enabled: bool, reason: str | None
    ) -> bool:
        actions: list[Any] = [WebhookModel.enabled.set(enabled)]
        if enabled:
            actions += [WebhookModel.failedStreak.set(0), WebhookModel.disabledReason.remove()]
        else:
            actions.append(WebhookModel.disabledReason.set(reason or "disabled"))
        return self._update_endpoint(
            workspace_id, endpoint_id, actions, WebhookModel.id.exists() & (WebhookModel.enabled != enabled)
        )

    def count_failed_delivery(self, workspace_id: str, endpoint_id: str) -> int:
        model = WebhookModel(workspaceId=workspace_id, id=endpoint_id)
        counted = _conditional(
            lambda: model.update(  # the model takes the new values from the answer
                actions=[WebhookModel.failedStreak.add(1)],
                condition=WebhookModel.id.exists(),
                add_version_condition=False,
            )
        )
        return int(model.failedStreak or 0) if counted else 0  # 0: deleted meanwhile

    def reset_failed_streak(self, workspace_id: str, endpoint_id: str) -> None:
        self._update_endpoint(
            workspace_id, endpoint_id, [WebhookModel.failedStreak.set(0)], WebhookModel.failedStreak > 0
        )

    # --- deliveries --------------------------------------------------------------------------
    def create_delivery(self, delivery: WebhookDelivery) -> bool:
        model = DeliveryModel(
            endpointId=delivery.endpoint_id,
            id=delivery.id,
            workspaceId=delivery.workspace_id,
            eventId=delivery.event_id,
            eventType=delivery.event_type,
            payload=delivery.payload,
            status=delivery.status.value,
            attempts=delivery.attempts,
            firstTryAt=delivery.first_try_at,
            nextTryAt=delivery.next_try_at,
            expiresAt=delivery.first_try_at + _KEEP,
        )
        return _conditional(
            lambda: model.save(DeliveryModel.id.does_not_exist(), add_version_condition=False)
        )

    def get_delivery(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
        try:
            return webhook_delivery_from(
                guarded(lambda: DeliveryModel.get(endpoint_id, delivery_id, consistent_read=True))
            )
        except DoesNotExist:
            return None

    def deliveries_of(self, endpoint_id: str, limit: int) -> list[WebhookDelivery]:
        def query() -> list[WebhookDelivery]:
            result = DeliveryModel.query(endpoint_id, scan_index_forward=False, limit=limit)
            return [webhook_delivery_from(m) for m in result]

        return guarded(query)

    def record_try(self, delivery: WebhookDelivery, expected_attempts: int) -> bool:
        actions: list[Any] = [
            DeliveryModel.status.set(delivery.status.value),
            DeliveryModel.attempts.set(delivery.attempts),
            DeliveryModel.lastTryAt.set(delivery.last_try_at or delivery.first_try_at),
        ]
        optional: list[tuple[Any, Any]] = [
            (DeliveryModel.nextTryAt, delivery.next_try_at),
            (DeliveryModel.lastResponseCode, delivery.last_response_code),
            (DeliveryModel.lastError, delivery.last_error),
        ]
        for attribute, value in optional:
            actions.append(attribute.set(value) if value is not None else attribute.remove())
        return _conditional(
            lambda: DeliveryModel(endpointId=delivery.endpoint_id, id=delivery.id).update(
                actions=actions,
                condition=(DeliveryModel.attempts == expected_attempts)
                & (DeliveryModel.status == WebhookDeliveryStatus.PENDING.value),
                add_version_condition=False,
            )
        )

    def restart_delivery(self, endpoint_id: str, delivery_id: str, now: datetime) -> WebhookDelivery | None:
        done = _conditional(
            lambda: DeliveryModel(endpointId=endpoint_id, id=delivery_id).update(
                actions=[
                    DeliveryModel.status.set(WebhookDeliveryStatus.PENDING.value),
                    DeliveryModel.firstTryAt.set(now),
                    DeliveryModel.nextTryAt.set(now),
                ],
                condition=(
                    DeliveryModel.id.exists() & (DeliveryModel.status != WebhookDeliveryStatus.PENDING.value)
                ),
                add_version_condition=False,
            )
        )
        return self.get_delivery(endpoint_id, delivery_id) if done else None

    # --- webhook try slots ------------------------------------------------------------------------
    def claim_try_slot(
        self, workspace_id: str, holder: str, now: datetime, until: datetime, slots: int
    ) -> str | None:
        # One item per slot, taken with a conditional put: free (never taken, or its lease ran
        # out). Tried from a random one, so concurrent claims rarely race for the same item.
        start = random.randrange(slots)
        for n in range(slots):
            slot = f"tries#{workspace_id}#{(start + n) % slots}"
            model = LimitModel(
                id=slot, holder=holder, until=until.timestamp(), expiresAt=until + timedelta(days=1)
            )
            if self._take(model, LimitModel.id.does_not_exist() | (LimitModel.until < now.timestamp())):
                return slot
        return None

    @staticmethod
    def _take(model: LimitModel, free: Any) -> bool:
        return _conditional(lambda: model.save(condition=free, add_version_condition=False))

    def free_try_slot(self, slot: str, holder: str) -> None:
        _conditional(
            lambda: LimitModel(id=slot).delete(
                condition=LimitModel.holder == holder, add_version_condition=False
            )
        )

    # --- emails ------------------------------------------------------------------------------
    def claim_email(self, event_id: str, recipient: str, expires: datetime) -> bool:
        model = SentEmailModel(eventId=event_id, recipient=recipient, expiresAt=expires)
        return _conditional(
            lambda: model.save(SentEmailModel.recipient.does_not_exist(), add_version_condition=False)
        )

    def release_email(self, event_id: str, recipient: str) -> None:
        guarded(
            lambda: SentEmailModel(eventId=event_id, recipient=recipient).delete(add_version_condition=False)
        )

    # --- push subscriptions --------------------------------------------------------------------
    def put_push_subscription(self, subscription: PushSubscription) -> None:
        model = PushSubscriptionModel(
            userId=subscription.user_id,
            id=subscription.id,
            endpoint=subscription.endpoint,
            p256dh=subscription.p256dh,
            auth=subscription.auth,
            createdAt=subscription.created_at,
            userAgent=subscription.user_agent,
        )
        guarded(lambda: model.save(add_version_condition=False))

    def push_subscriptions_of(self, user_id: str) -> list[PushSubscription]:
        def query() -> list[PushSubscription]:
            return [
                PushSubscription(m.userId, m.id, m.endpoint, m.p256dh, m.auth, m.createdAt, m.userAgent)
                for m in PushSubscriptionModel.query(user_id, consistent_read=True)
            ]

        return guarded(query)

    def delete_push_subscription(self, user_id: str, subscription_id: str) -> bool:
        return _conditional(
            lambda: PushSubscriptionModel(userId=user_id, id=subscription_id).delete(
                condition=PushSubscriptionModel.id.exists(), add_version_condition=False
            )
        )
