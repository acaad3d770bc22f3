"""The transaction helper: each multi-item write is ONE TransactWriteItems, and its
CancellationReasons say which condition failed (a label per item)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.connection import connection
from chalicelib.errors import ServiceUnavailableError, TransactionConflictError


@dataclass
class Tx:
    """A TransactWrite that remembers a label per item in the order DynamoDB will see them.

    pynamodb sends condition checks, deletes, puts and updates in that order, whatever the
    order of the calls; CancellationReasons follow the request order.
    """

    token: str | None = None
    puts: list[tuple[str, Model, Condition | None]] = field(default_factory=list)
    updates: list[tuple[str, Model, list[Any], Condition | None]] = field(default_factory=list)

    def put(self, label: str, model: Model, condition: Condition | None = None) -> None:
        self.puts.append((label, model, condition))

    def update(self, label: str, model: Model, actions: list[Any], condition: Condition | None) -> None:
        self.updates.append((label, model, actions, condition))

    def commit(self) -> None:
        """Run the transaction; on cancellation raise Cancelled with the failed labels."""
        labels = [p[0] for p in self.puts] + [u[0] for u in self.updates]
        try:
            with TransactWrite(connection=connection(), client_request_token=self.token) as tx:
                for _, model, condition in self.puts:
                    tx.save(model, condition=condition)
                for _, model, actions, condition in self.updates:
                    tx.update(model, actions=actions, condition=condition, add_version_condition=False)
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise ServiceUnavailableError("The database is unavailable. Try again shortly.") from exc
            failed = {
                labels[i]
                for i, reason in enumerate(exc.cancellation_reasons)
                if reason is not None and reason.code == "ConditionalCheckFailed"
            }
            if not failed:  # TransactionConflict: another transaction held an item
                raise TransactionConflictError() from exc
            raise Cancelled(failed) from exc


class Cancelled(Exception):
    def __init__(self, labels: set[str]) -> None:
        self.labels = labels
        super().__init__(", ".join(sorted(labels)))


def is_condition_failure(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"
