"""The transaction helper: each multi-item write is ONE TransactWriteItems, and its
CancellationReasons say which condition failed (a label per item)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb.connection import connection
from chalicelib.errors import DomainError, ServiceUnavailableError, TransactionConflictError

UNAVAILABLE = "The database is unavailable. Try again shortly."
C = TypeVar("C", bound=type)


@dataclass
class Tx:
    """A TransactWrite that remembers a label per item in the order DynamoDB will see them.

    pynamodb sends condition checks, deletes, puts and updates in that order, whatever the
    order of the calls; CancellationReasons follow the request order.
    """

    token: str | None = None
    checks: list[tuple[str, type[Model], Any, Any, Condition]] = field(default_factory=list)
    puts: list[tuple[str, Model, Condition | None]] = field(default_factory=list)
    updates: list[tuple[str, Model, list[Any], Condition | None]] = field(default_factory=list)
    # Updates whose item DynamoDB returns when their condition fails (ALL_OLD), by label: the
    # caller reads which of the item's guards failed from it, without reading it again.
    returning: set[str] = field(default_factory=set)

    def check(
        self, label: str, model: type[Model], hash_key: Any, range_key: Any, condition: Condition
    ) -> None:
        self.checks.append((label, model, hash_key, range_key, condition))

    def put(self, label: str, model: Model, condition: Condition | None = None) -> None:
        self.puts.append((label, model, condition))

    def update(
        self,
        label: str,
        model: Model,
        actions: list[Any],
        condition: Condition | None,
        return_old: bool = False,
    ) -> None:
        self.updates.append((label, model, actions, condition))
        if return_old:
            self.returning.add(label)

    def commit(self) -> None:
        """Run the writes; on a failed condition raise Cancelled with the failed labels.

        One item alone is one UpdateItem or PutItem (half the write capacity of a transaction,
        the same condition); anything more is one TransactWriteItems.
        """
        if len(self.checks) + len(self.puts) + len(self.updates) == 1 and not self.checks:
            self._commit_one()
            return
        labels = [c[0] for c in self.checks] + [p[0] for p in self.puts] + [u[0] for u in self.updates]
        try:
            with TransactWrite(connection=connection(), client_request_token=self.token) as tx:
                for _, model_cls, hash_key, range_key, check in self.checks:
                    tx.condition_check(model_cls, hash_key, range_key, condition=check)
                for _, model, condition in self.puts:
                    tx.save(model, condition=condition)
                for label, model, actions, condition in self.updates:
                    tx.update(
                        model,
                        actions=actions,
                        condition=condition,
                        return_values="ALL_OLD" if label in self.returning else None,
                        add_version_condition=False,
                    )
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise ServiceUnavailableError(UNAVAILABLE) from exc
            reasons = {
                labels[i]: reason
                for i, reason in enumerate(exc.cancellation_reasons)
                if reason is not None and reason.code == "ConditionalCheckFailed"
            }
            if not reasons:  # TransactionConflict: another transaction held an item
                raise TransactionConflictError() from exc
            items = {label: r.raw_item for label, r in reasons.items() if r.raw_item}
            raise Cancelled(set(reasons), items) from exc

    def _commit_one(self) -> None:
        try:
            if self.puts:
                label, model, condition = self.puts[0]
                model.save(condition=condition, add_version_condition=False)
            else:
                label, model, actions, condition = self.updates[0]
                model.update(actions=actions, condition=condition, add_version_condition=False)
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                raise Cancelled({label}) from exc
            raise ServiceUnavailableError(UNAVAILABLE) from exc


class Cancelled(Exception):
    """The labels of the items whose condition failed, and (for updates made with `return_old`)
    each such item as it was, in DynamoDB's JSON."""

    def __init__(self, labels: set[str], items: dict[str, dict[str, Any]] | None = None) -> None:
        self.labels = labels
        self.items = items or {}
        super().__init__(", ".join(sorted(labels)))


def is_condition_failure(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def translated(method: Callable[..., Any]) -> Callable[..., Any]:
    """The method, with every pynamodb/botocore error that is not already a domain error turned
    into ServiceUnavailableError (a throttle, a timeout, DynamoDB down): a 503, never a 500."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DomainError:
            raise
        except (PynamoDBException, BotoCoreError, ClientError) as exc:
            raise ServiceUnavailableError(UNAVAILABLE) from exc

    return wrapper


def translating(cls: C) -> C:
    """Wrap every public method of the class (its bases' included) with `translated`."""
    for name in dir(cls):
        attr = getattr(cls, name)
        if not name.startswith("_") and callable(attr):
            setattr(cls, name, translated(attr))
    return cls
