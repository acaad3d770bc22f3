"""The repository re-runs a worker's final write when another transaction held the item."""

from __future__ import annotations

import pytest

from chalicelib.adapters import dynamodb
from chalicelib.adapters.dynamodb import transactions, transitions
from chalicelib.domain import QueueMessage, utcnow
from chalicelib.errors import TransactionConflictError

REF = QueueMessage("job-1", "ws-1", 1)


def commits(monkeypatch: pytest.MonkeyPatch, outcomes: list[BaseException | None]) -> list[int]:
    calls: list[int] = []

    def commit(self: transactions.Tx) -> None:
        calls.append(1)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(transactions.Tx, "commit", commit)
    monkeypatch.setattr(transitions.time, "sleep", lambda _: None)
    return calls


def test_a_transaction_conflict_on_complete_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = commits(monkeypatch, [TransactionConflictError(), None])
    assert dynamodb.DynamoRepository().complete(REF, "outputs/x.mp4", utcnow()) is True
    assert len(calls) == 2


def test_a_failed_condition_is_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = commits(monkeypatch, [transactions.Cancelled({"job"})])
    assert dynamodb.DynamoRepository().fail(REF, "e", "E", None, utcnow()) is False
    assert len(calls) == 1


def test_conflicts_that_do_not_clear_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = commits(monkeypatch, [TransactionConflictError() for _ in range(transitions.FINISH_TRIES)])
    with pytest.raises(TransactionConflictError):
        dynamodb.DynamoRepository().complete(REF, "k", utcnow())
    assert len(calls) == transitions.FINISH_TRIES
