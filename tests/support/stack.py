"""The real local stack for the test suite: started once per session (per xdist worker) on free ports.

DynamoDB Local (in memory) and a moto server (S3 for R2, SQS, Cognito, Secrets Manager),
bootstrapped exactly as `make dev` does; the Stripe stand-in; `chalice local` for the API; the
static frontend; workers that poll the queue and call the real handler, as Lambda would.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devstack import REPO_ROOT
from devstack.bootstrap import DUMMY_KEY, apply_env, bootstrap
from devstack.services import (
    DynamoDBLocal,
    ManagedProcess,
    MotoServer,
    ServiceError,
    chalice_command,
    free_port,
    wait_http,
)
from devstack.stripe_standin import StripeStandIn
from devstack.web import WebServer, app_config
from devstack.worker import Handler, run_worker
from tests.support.received import ReceivedParts

TEST_RETRY_ENV = {"AUTO_RETRY_BASE_SECONDS": "0"}
# The per-user limit on creating jobs stays on (every POST /jobs counts, as deployed) but far
# above what a test makes; tests of the limit itself set their own.
LIMITS_TEST_ENV = {"RATE_LIMIT_REQUESTS": "100000"}
# Webhook retries in seconds, not hours, so the suite stays quick: the first retry after ~1 s,
# a delivery gives up after 6 s, and one failed delivery disables its endpoint.
NOTIFY_TEST_ENV = {
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
    "WEBHOOK_RETRY_MAX_DELAY_SECONDS": "2",
    "WEBHOOK_RETRY_WINDOW_SECONDS": "6",
    "WEBHOOK_DISABLE_AFTER_FAILURES": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "2",
}


@dataclass
class AwsStack:
    """DynamoDB Local + moto, bootstrapped; its env is applied to os.environ for the session."""

    env: dict[str, str]
    moto_url: str
    ddb_url: str
    web_port: int  # chosen before the API starts: the API's CORS origin is this port's origin
    api_port: int  # chosen before bootstrap: links in emails point at it
    demo_email: str
    demo_password: str
    log_dir: Path
    state_dir: Path
    stripe: StripeStandIn  # Stripe's two API calls, its pay page and its webhook sender, on loopback
    # The body bytes moto received for each part of each multipart upload (tests.support.received).
    received_parts: ReceivedParts = field(default_factory=ReceivedParts)
    _passwords: dict[str, str] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def web_origin(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def region(self) -> str:
        return self.env["AWS_DEFAULT_REGION"]

    def client(self, service: str) -> Any:
        """A boto3 client for moto's S3/SQS/Cognito or DynamoDB Local."""
        endpoint = self.ddb_url if service == "dynamodb" else self.moto_url
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint,
            region_name=self.region,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
        )

    def add_user(
        self,
        email: str,
        workspace_id: str,
        credits: int = 10,
        role: str = "owner",
        password: str | None = None,
        workspace_name: str | None = None,
    ) -> Any:
        """chalicelib.bootstrap.add_user; remembers the password for `token`."""
        from chalicelib.bootstrap import add_user

        added = add_user(
            email, workspace_id, role=role, password=password, credits=credits, workspace_name=workspace_name
        )
        if added.password:
            self._passwords[email] = added.password
            self._tokens.pop(email, None)
        return added

    def sign_in(self, email: str, password: str | None = None) -> dict[str, Any]:
        from chalicelib.adapters.cognito import CognitoUsers

        secret = password or self._passwords[email]
        return dict(CognitoUsers().sign_in(email, secret))

    def token(self, email: str) -> str:
        """An id token for a user made with `add_user` (or the demo user). Cached for the session."""
        if email not in self._tokens:
            self._tokens[email] = str(self.sign_in(email)["IdToken"])
        return self._tokens[email]

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(email)}"}


@contextmanager
def running_aws_stack(log_dir: Path, state_dir: Path) -> Iterator[AwsStack]:
    saved = dict(os.environ)
    ddb = DynamoDBLocal(free_port(), in_memory=True, log_path=log_dir / "dynamodb-local.log")
    moto = MotoServer(free_port())
    stripe: StripeStandIn | None = None
    try:
        ddb.start()
        moto.start()
        web_port, api_port, stripe_port = free_port(), free_port(), free_port()
        received = ReceivedParts()
        moto.wrap_app(received.middleware)
        web_port, api_port = free_port(), free_port()
        result = bootstrap(
            moto.url,
            ddb.url,
            f"http://127.0.0.1:{web_port}",
            state_dir=state_dir,
            write_env=False,
            stripe_url=f"http://127.0.0.1:{stripe_port}",
        )
        keys = result.stripe_keys
        webhook = f"http://127.0.0.1:{api_port}/payments/stripe"
        stripe = StripeStandIn(stripe_port, keys["apiKey"], keys["webhookSecret"], webhook).start()
        assert result.demo_email and result.demo_password
        # The tests' own settings reach every process through os.environ (the API and worker
        # processes start from it); `env` stays what bootstrap made. Automatic retries without a
        # wait: a test that is about the wait sets its own settings.
        apply_env(
            {
                **result.env,
                **TEST_RETRY_ENV,
                **LIMITS_TEST_ENV,
                **NOTIFY_TEST_ENV,
                "PUBLIC_API_URL": f"http://127.0.0.1:{api_port}",
            }
        )
        stack = AwsStack(
            env=result.env,
            moto_url=moto.url,
            ddb_url=ddb.url,
            web_port=web_port,
            api_port=api_port,
            demo_email=result.demo_email,
            demo_password=result.demo_password,
            log_dir=log_dir,
            state_dir=state_dir,
            stripe=stripe,
            received_parts=received,
        )
        stack._passwords[result.demo_email] = result.demo_password
        yield stack
    finally:
        if stripe is not None:
            stripe.stop()
        moto.stop()
        ddb.stop()
        os.environ.clear()
        os.environ.update(saved)
        try:
            from chalicelib.bootstrap import reset

            reset()
        except ImportError:
            pass


@contextmanager
def running_api(stack: AwsStack, port: int | None = None) -> Iterator[str]:
    """`chalice local` in a subprocess with the stack's env; yields its base URL once /health is 200."""
    port = port or stack.api_port
    env = {**os.environ, **stack.env}
    process = ManagedProcess(
        "api", chalice_command(port), env=env, cwd=REPO_ROOT, log_path=stack.log_dir / "chalice-local.log"
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{url}/health", timeout=60, expect_status=200, alive=process.alive)
        except ServiceError as exc:
            raise ServiceError(f"chalice local did not start: {exc}\n{process.log_tail()}") from exc
        yield url
    finally:
        process.stop(grace=5)


@contextmanager
def running_web(stack: AwsStack, api_url: str) -> Iterator[str]:
    web = WebServer(stack.web_port, app_config(stack.env, api_url)).start()
    try:
        yield web.url
    finally:
        web.stop()


class WorkerThread:
    """devstack.worker.run_worker in a thread of the test process; errors surface at stop()."""

    def __init__(self, handler: Handler | None = None, wait_seconds: int = 1) -> None:
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(handler, wait_seconds), daemon=True)

    def _run(self, handler: Handler | None, wait_seconds: int) -> None:
        try:
            run_worker(stop_event=self.stop_event, handler=handler, wait_seconds=wait_seconds)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 120) -> None:
        """Ask it to stop after the batch in hand, and wait; raise what the poller raised."""
        self.stop_event.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the worker thread did not stop within {timeout:.0f}s")
        if self.error is not None:
            raise self.error


class Workers:
    """The `worker` fixture: start and stop local workers, like Lambda's pollers for the jobs queue.

    - `start()`: a poller thread in this process (the default; it shares this process's modules);
    - `start_process()`: `python -m devstack.worker` in a subprocess, which `kill()` can crash
      mid-job (to leave a job in `processing`, as a Lambda timeout would);
    - `stop()`: stop all of them (each finishes the batch in hand);
    - `run_once()`: process what is queued now, synchronously, in the test's thread.
    """

    def __init__(self, stack: AwsStack) -> None:
        self.stack = stack
        self.threads: list[WorkerThread] = []
        self.processes: list[ManagedProcess] = []

    def start(self, handler: Handler | None = None) -> WorkerThread:
        thread = WorkerThread(handler).start()
        self.threads.append(thread)
        return thread

    def start_process(self) -> ManagedProcess:
        # The test's env only: no stack.env of a developer's `make dev` may fill gaps.
        env = {**os.environ, **self.stack.env, "DEVSTACK_STATE_DIR": str(self.stack.log_dir)}
        name = f"worker-{len(self.processes) + 1}"
        process = ManagedProcess(
            name,
            [sys.executable, "-m", "devstack.worker"],
            env=env,
            cwd=REPO_ROOT,
            log_path=self.stack.log_dir / f"{name}.log",
        )
        self.processes.append(process.start())
        return process

    def run_once(self, handler: Handler | None = None) -> int:
        return run_worker(once=True, handler=handler)

    @property
    def running(self) -> bool:
        return any(t.alive() for t in self.threads) or any(p.alive() for p in self.processes)

    def stop(self) -> None:
        errors: list[BaseException] = []
        for thread in self.threads:
            try:
                thread.stop()
            except BaseException as exc:
                errors.append(exc)
        for process in self.processes:
            process.stop(grace=30)
        self.threads, self.processes = [], []
        if errors:
            raise errors[0]

    def kill(self) -> None:
        """SIGKILL every worker process (threads cannot be killed: they are stopped)."""
        for process in self.processes:
            process.kill()
        self.processes = []
        self.stop()
