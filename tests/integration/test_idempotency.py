"""Idempotency-Key records on DynamoDB Local: what a request that died mid-way leaves behind."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.idempotency import once
from chalicelib.domain import Principal
from chalicelib.errors import RequestInProgressError
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


class Died(BaseException):
    """The invocation ends mid-request (a timeout or OOM: nothing gets to clean up)."""


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def die() -> dict[str, Any]:
    raise Died()


def test_a_key_whose_request_died_is_free_again_when_the_invocation_would_have_timed_out(
    aws_stack: AwsStack,
) -> None:
    svc, who, key = bootstrap.services(), Principal(user_id=f"u-{uuid.uuid4()}"), str(uuid.uuid4())
    with pytest.raises(Died):
        once(svc, who, "test-died", key, "job-1", die, Context(remaining_ms=1000))
    with pytest.raises(RequestInProgressError):  # still in its invocation's time
        once(svc, who, "test-died", key, "job-1", lambda: {"ran": True}, Context(remaining_ms=1000))
    time.sleep(1.2)
    assert once(svc, who, "test-died", key, "job-1", lambda: {"ran": True}, Context(1000)) == {"ran": True}
    # and from then on it is the stored answer
    assert once(svc, who, "test-died", key, "job-1", lambda: {"ran": "again"}, Context(1000)) == {"ran": True}


def test_the_same_key_of_another_user_is_another_request(aws_stack: AwsStack) -> None:
    svc, key = bootstrap.services(), str(uuid.uuid4())
    first = once(svc, Principal(user_id="a"), "test-users", key, "t", lambda: {"who": "a"}, Context(30_000))
    second = once(svc, Principal(user_id="b"), "test-users", key, "t", lambda: {"who": "b"}, Context(30_000))
    assert (first, second) == ({"who": "a"}, {"who": "b"})
