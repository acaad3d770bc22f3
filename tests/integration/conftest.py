"""Integration tests: the real local stack (DynamoDB Local, moto server, chalice local, ffmpeg)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import bootstrap
from chalicelib.processing.context import Services
from tests.support.invariants import ledger_mismatches
from tests.support.media import make_clip


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


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 1 s 320x240 clip, the upload of most jobs (a module that needs another defines its own)."""
    path = tmp_path_factory.mktemp("media") / "c.mp4"
    return make_clip(path, seconds=1, width=320, height=240).read_bytes()


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """8 s of 720p: long enough that ffmpeg is still running when a test stops or kills it."""
    path = tmp_path_factory.mktemp("media") / "long.mp4"
    return make_clip(path, seconds=8, width=1280, height=720, fps=25).read_bytes()
