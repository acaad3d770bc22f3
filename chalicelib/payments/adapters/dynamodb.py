"""The purchase records' reads on DynamoDB (the payments table). Every write is a lifecycle
transition, made by chalicelib.adapters.dynamodb.commit."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamodb.connection import connection
from chalicelib.adapters.dynamodb.mapping import event_key, payment_key, purchase_from, session_key
from chalicelib.adapters.dynamodb.models import PaymentModel
from chalicelib.adapters.dynamodb.transactions import translating
from chalicelib.domain import Purchase


@translating
class DynamoPurchaseRecords:
    """The PurchaseRecords port. Reads are consistent: a refund a moment after its purchase finds it."""

    def __init__(self) -> None:
        connection()  # the models bound to this deployment's tables, on the one shared client

    def get_purchase(self, session_id: str) -> Purchase | None:
        item = _get(session_key(session_id))
        return purchase_from(item) if item is not None else None

    def purchase_paid_by(self, payment_id: str) -> Purchase | None:
        pointer = _get(payment_key(payment_id))
        if pointer is None or not pointer.sessionId:
            return None
        return self.get_purchase(pointer.sessionId)

    def event_applied(self, event_id: str) -> bool:
        return _get(event_key(event_id)) is not None


def _get(key: str) -> PaymentModel | None:
    try:
        return PaymentModel.get(key, consistent_read=True)
    except DoesNotExist:
        return None
