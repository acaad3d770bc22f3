"""Integration tests: the real local stack (DynamoDB Local, moto server, chalice local, ffmpeg)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.invariants import ledger_mismatches


@pytest.fixture(autouse=True)
def ledger_balances(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the stack: each workspace's ledger sums to its balance."""
    yield
    if "aws_stack" in request.fixturenames:
        assert ledger_mismatches() == []
