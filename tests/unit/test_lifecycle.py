"""The lifecycle module on its own: every transition's status guard comes from the table, and
every field a transition changes has the attribute the DynamoDB adapter stores it in."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.adapters.dynamodb.mapping import ATTEMPT_ATTRIBUTES, JOB_ATTRIBUTES, WORKSPACE_ATTRIBUTES
from chalicelib.domain import Attempt, Job, Workspace
from chalicelib.lifecycle import MOVES, JobWrite, Move
from tests.support.unreachable import one_of_each

TRANSITIONS = one_of_each()


def test_there_is_a_sample_of_every_transition() -> None:
    assert set(TRANSITIONS) == set(Move)


@pytest.mark.parametrize("move", sorted(TRANSITIONS), ids=str)
def test_every_job_write_is_guarded_by_the_status_table(move: Move) -> None:
    # A transition may narrow the table's sources (cancel keeps a job to the side it was read on),
    # never widen them.
    for write in TRANSITIONS[move].jobs:
        if write.create is None:
            assert write.guard is not None and set(write.guard.states) <= MOVES[move].sources
            assert write.guard.states
        else:
            assert move is Move.CREATE


@pytest.mark.parametrize("move", sorted(TRANSITIONS), ids=str)
def test_every_field_a_transition_changes_is_stored(move: Move) -> None:
    t = TRANSITIONS[move]
    job_fields = {f.name for f in dataclasses.fields(Job)}
    for write in t.jobs:
        assert set(write.changes) | set(write.adds) <= set(JOB_ATTRIBUTES) <= job_fields
    for attempt in t.attempts:
        assert (
            set(attempt.changes) <= set(ATTEMPT_ATTRIBUTES) <= {f.name for f in dataclasses.fields(Attempt)}
        )
    if t.workspace is not None:
        assert (
            set(t.workspace.changes)
            <= set(WORKSPACE_ATTRIBUTES)
            <= {f.name for f in dataclasses.fields(Workspace)}
        )


def test_a_write_may_not_set_and_add_to_one_field() -> None:
    with pytest.raises(ValueError, match="same field"):
        JobWrite(
            "j", "w", guard=TRANSITIONS[Move.RETRY].jobs[0].guard, changes={"resends": 0}, adds={"resends": 1}
        )


def test_final_statuses_are_left_by_no_move() -> None:
    from chalicelib.lifecycle.moves import FINAL

    # (a move that keeps the status, such as the retention's, may start from one)
    assert not [m for m, row in MOVES.items() if row.sources & FINAL and not row.stays]
