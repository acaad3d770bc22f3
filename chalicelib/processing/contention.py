"""The one contention policy of every transactional command (start, retry, batch retry, refund).

A TransactionConflict means another transaction held one of the items at that moment: nothing
was written, and the whole read-validate-commit step can run again, with fresh reads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from chalicelib.errors import TransactionConflictError

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
