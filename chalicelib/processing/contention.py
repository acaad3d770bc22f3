"""The one contention policy of every transaction (start, retry, batch retry, refund, the worker's).

A TransactionConflict means another transaction held one of the items at that moment: nothing
was written, and the whole read-validate-commit step can run again, with fresh reads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from chalicelib.errors import TransactionConflictError, TransitionRefusedError

if TYPE_CHECKING:
    from chalicelib.lifecycle.model import Transition
    from chalicelib.processing.ports import Repository

TRIES = 8
T = TypeVar("T")


def with_contention(action: Callable[[], T], tries: int = TRIES) -> T:
    """Run `action`, again (with jittered, doubling sleeps) while it raises TransactionConflictError."""
    for attempt in range(tries - 1):
        try:
            return action()
        except TransactionConflictError:
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
    return action()


def committed(repo: Repository, transition: Transition) -> bool:
    """Commit under the one contention policy (a TransactionConflict commits it again: its
    guards are evaluated afresh each time); False when its guards refused (the job moved on)."""
    try:
        with_contention(lambda: repo.commit(transition))
    except TransitionRefusedError:
        return False
    return True
