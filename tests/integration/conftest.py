"""Integration tests: the real local stack (DynamoDB Local, moto server, chalice local, ffmpeg)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import bootstrap
from chalicelib.processing.context import Services
from tests.support.invariants import ledger_mismatches


@pytest.fixture(autouse=True)
def ledger_balances(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the stack: each workspace's ledger sums to its balance, which is
    below 0 only after a purchase reversal (tests/support/invariants.py)."""
    yield
    if "aws_stack" in request.fixturenames:
        assert ledger_mismatches() == []


@pytest.fixture
def in_process() -> Iterator[Any]:
    """Chalice's test client on the same app, with collaborators that can be swapped."""
    import app

    real = bootstrap.services()

    def use(**changes: Any) -> Client:
        fields: dict[str, Any] = {
            "settings": real.settings,
            "repo": real.repo,
            "store": real.store,
            "queue": real.queue,
            "transcoder": real.transcoder,
            "limits": real.limits,
        } | changes
        bootstrap.override(Services(**fields))
        return Client(app.app)

    yield use
    bootstrap.override(None)
