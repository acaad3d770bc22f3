"""The one contention policy: a commit that meets another transaction is committed again (its
guards are evaluated afresh each time); a refused guard is an answer, never tried again."""

from __future__ import annotations

import pytest

from chalicelib.domain import QueueMessage, utcnow
from chalicelib.errors import TransactionConflictError, TransitionRefusedError
from chalicelib.lifecycle import Transition, transitions
from chalicelib.processing import contention

REF = QueueMessage("job-1", "ws-1", 1)


class Scripted:
    """A repository whose commits end as scripted (None: committed)."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def commit(self, transition: Transition) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contention.time, "sleep", lambda _: None)


def test_a_transaction_conflict_is_committed_again() -> None:
    repo = Scripted(TransactionConflictError(), None)
    assert contention.committed(repo, transitions.complete(REF, "outputs/x.mp4", utcnow()))  # type: ignore[arg-type]
    assert repo.calls == 2


def test_a_refused_guard_is_not_tried_again() -> None:
    repo = Scripted(TransitionRefusedError(frozenset({"job:job-1"})))
    assert not contention.committed(repo, transitions.complete(REF, "k", utcnow()))  # type: ignore[arg-type]
    assert repo.calls == 1


def test_conflicts_that_do_not_clear_are_raised() -> None:
    repo = Scripted(*[TransactionConflictError() for _ in range(contention.TRIES)])
    with pytest.raises(TransactionConflictError):
        contention.committed(repo, transitions.complete(REF, "k", utcnow()))  # type: ignore[arg-type]
    assert repo.calls == contention.TRIES
