"""Session fixtures that start the real local stack (none is autouse: unit tests never start it).

- `aws_stack`: DynamoDB Local (in memory) + moto server, bootstrapped; env applied to os.environ.
- `api_server`: `chalice local` on a free port (base URL).
- `web_server`: the frontend, on the port whose origin the API allows (URL).
- `notifier`: the notifier's pollers (table streams, notifications queue) on threads;
- `push_service`: a Web Push service stand-in on 127.0.0.1 (not the stack: no fixture of it);
- `worker`: one poller thread running the real worker handler; `.stop()`, `.start()`,
  `.start_process()`, `.run_once()` (see tests.support.stack.Workers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.notifier import Notifier
from tests.support.push_service import PushService
from tests.support.stack import (
    AwsStack,
    Workers,
    running_api,
    running_aws_stack,
    running_web,
)


@pytest.fixture(scope="session")
def aws_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsStack]:
    base = tmp_path_factory.mktemp("stack")
    with running_aws_stack(log_dir=base / "logs", state_dir=base / "state") as stack:
        yield stack


@pytest.fixture(scope="session")
def api_server(aws_stack: AwsStack) -> Iterator[str]:
    with running_api(aws_stack) as url:
        yield url


@pytest.fixture(scope="session")
def web_server(aws_stack: AwsStack, api_server: str) -> Iterator[str]:
    with running_web(aws_stack, api_server) as url:
        yield url


@pytest.fixture(scope="session")
def notifier(aws_stack: AwsStack) -> Iterator[Notifier]:
    """The table-stream poller and the notifications-queue poller, on threads (real handlers)."""
    running = Notifier().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def worker(aws_stack: AwsStack) -> Iterator[Workers]:
    workers = Workers(aws_stack)
    workers.start()
    try:
        yield workers
    finally:
        workers.stop()


@pytest.fixture
def push_service() -> Iterator[PushService]:
    """A Web Push service stand-in on 127.0.0.1 (tests/support/push_service.py)."""
    running = PushService().start()
    try:
        yield running
    finally:
        running.stop()
