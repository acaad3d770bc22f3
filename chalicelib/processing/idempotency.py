"""The Idempotency-Key contract: one intent, one charge, one answer.

The key's record (its target and its answer) is written in the SAME transaction as the charge
(repository.start_job / retry_jobs), so a charge without its record, or a record without its
charge, cannot exist. Then:
- the same key from the same user on the same route, for the same target, within the TTL, gets
  the stored answer and runs nothing;
- the same key for another target is a 400;
- two requests with one key at once: the transaction lets only one write the record, the other
  replays it (a TransactionConflict re-runs the request, which then finds the record);
- a refund after a failed send marks the record in the refund's own transaction: a single
  request's key is free again (as if it had failed), a batch's answer reports the refunded job.
A request that fails before its commit stores nothing, so its key can be used again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from chalicelib.domain import Principal
from chalicelib.errors import AnswerExistsError, DomainError, RequestInProgressError, ValidationError
from chalicelib.processing.context import Services
from chalicelib.processing.ports import KeyedAnswer

_KEY = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")
Response = dict[str, Any]
R = TypeVar("R")


@dataclass(frozen=True)
class Key(Generic[R]):
    """A request's Idempotency-Key: where its answer goes, what it is for, how to render it."""

    record_id: str
    target: str
    expires_in: timedelta
    render: Callable[[R], Response]

    def answer(self, services: Services, result: R) -> KeyedAnswer:
        """The record to write with the charge: the answer `result` renders to."""
        return KeyedAnswer(
            record_id=self.record_id,
            target=self.target,
            response=self.render(result),
            expires_at=services.clock() + self.expires_in,
        )


def once(
    svc: Services,
    principal: Principal,
    route: str,
    key: str | None,
    target: str,
    action: Callable[[Key[R] | None], R],
    render: Callable[[R], Response],
    replay: Callable[[KeyedAnswer], Response] = lambda stored: stored.response,
) -> Response:
    """Run `action` at most once per (user, route, key); answer with its stored answer otherwise."""
    if key is None:
        return render(action(None))
    if not _KEY.match(key):
        raise ValidationError("Idempotency-Key must be 1-128 letters, digits or -_:.")
    keyed = Key(
        record_id=f"vidproc.{route}#{principal.user_id}#{key}",
        target=target,
        expires_in=timedelta(seconds=svc.settings.idempotency_ttl_seconds),
        render=render,
    )
    stored = svc.repo.get_answer(keyed.record_id, svc.clock())
    if stored is None:
        try:
            return render(action(keyed))
        except AnswerExistsError:  # a request with this key committed first
            stored = svc.repo.get_answer(keyed.record_id, svc.clock())
            if stored is None:  # and was refunded since: let the client try again
                raise RequestInProgressError() from None
        except DomainError:
            # A request with this key may have committed after the read above (it made this job
            # no longer retryable): its answer, not this refusal, is the key's answer.
            stored = svc.repo.get_answer(keyed.record_id, svc.clock())
            if stored is None:
                raise
    if stored.target != target:
        raise ValidationError("This Idempotency-Key was already used for a different request")
    return replay(stored)
