"""Idempotency-Key answers: read one, and the transaction items that write or release one.

The record is written by the charge's own transaction (`put_answer`), so a committed charge
always has its answer and a stored answer always has its charge.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamodb.models import AnswerModel
from chalicelib.adapters.dynamodb.transactions import Tx
from chalicelib.lifecycle.model import KeyedAnswer, Release

RELEASED_KEPT = timedelta(minutes=10)  # a released record's TTL when it has none of its own


class Answers:
    """The Repository port's idempotency read."""

    def get_answer(self, record_id: str, now: datetime) -> KeyedAnswer | None:
        try:
            m = AnswerModel.get(record_id, consistent_read=True)
        except DoesNotExist:
            return None
        # DynamoDB's TTL deletes expired items late: an expired record is no record.
        if m.released or int(m.expiration) <= now.timestamp():
            return None
        return KeyedAnswer(
            record_id=m.id,
            target=m.target,
            response=json.loads(m.response),
            expires_at=datetime.fromtimestamp(int(m.expiration), UTC),
            refunded=frozenset(m.refunded or ()),
        )


def put_answer(tx: Tx, answer: KeyedAnswer, now: datetime) -> None:
    """Write the key's answer with the charge; the transaction fails (label `answer`) when a live
    answer for the key already exists."""
    tx.put(
        "answer",
        AnswerModel(
            id=answer.record_id,
            target=answer.target,
            response=json.dumps(answer.response, separators=(",", ":")),
            expiration=int(answer.expires_at.timestamp()),
        ),
        AnswerModel.id.does_not_exist()
        | (AnswerModel.expiration <= int(now.timestamp()))
        | (AnswerModel.released == True),  # noqa: E712 (a pynamodb condition, not a comparison)
    )


def release_answer(tx: Tx, release: Release, now: datetime) -> None:
    """In a refund's transaction: free the key (a whole request undone) or note the refunded job."""
    keep = AnswerModel.expiration.set(AnswerModel.expiration | int((now + RELEASED_KEPT).timestamp()))
    actions: list[Any] = [keep]
    if release.whole:
        actions.append(AnswerModel.released.set(True))
    else:
        actions.append(AnswerModel.refunded.add({release.job_id}))
    tx.update("release", AnswerModel(id=release.record_id), actions, None)
