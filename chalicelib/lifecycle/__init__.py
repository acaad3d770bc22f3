"""The job's lifecycle in one place: every transition as a pure function (the workspace's credits
included: charges, refunds, purchases and their reversals), the status table, and the pricing
rules.

- `moves.py`: which transition may take a job from which status to which (data);
- `transitions.py`: each transition, from what it is decided from to a Transition;
- `pricing.py`: who pays for what;
- `model.py`: what a Transition is (writes, guards, ledger entries, the answer record);
- `apply.py`: what guards mean and what writes do on plain data (the fake commits with it, and
  `project` gives the job a commit leaves).

Services decide what to do and commit the Transition through the Repository (`commit` plus
reads); the DynamoDB adapter turns any Transition into one conditional write in one place.
"""

from chalicelib.lifecycle import apply, transitions
from chalicelib.lifecycle.apply import project
from chalicelib.lifecycle.model import (
    AttemptWrite,
    JobGuard,
    JobWrite,
    KeyedAnswer,
    Lease,
    PurchaseWrite,
    RecordedError,
    Release,
    Transition,
    WorkspaceWrite,
)
from chalicelib.lifecycle.moves import MOVES, Move
from chalicelib.lifecycle.pricing import PricingBasis, effective_pricing, retry_price

__all__ = [
    "MOVES",
    "AttemptWrite",
    "JobGuard",
    "JobWrite",
    "KeyedAnswer",
    "Lease",
    "Move",
    "PricingBasis",
    "PurchaseWrite",
    "RecordedError",
    "Release",
    "Transition",
    "WorkspaceWrite",
    "apply",
    "effective_pricing",
    "project",
    "retry_price",
    "transitions",
]
