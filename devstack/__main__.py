"""`python -m devstack` (what `make dev` runs): the whole local stack, in the foreground.

DynamoDB Local, a moto server (S3 for R2, SQS, Cognito, SES, Secrets Manager), the Stripe
stand-in, the API under `chalice local`, the frontend, WORKERS worker processes, the sweeper and
the notifier. Ctrl-C (or SIGTERM) stops everything it started. Everything the services hold is
kept in the state folder and is there again at the next start (docs/local-stack.md); FRESH=1
starts every service from nothing. When app.py or a file under chalicelib/ changes, the app's
processes restart.

Environment: API_PORT (8000), WEB_PORT (8080), DDB_PORT (8002), MOTO_PORT (5001), STRIPE_PORT
(12111), WORKERS (1), FRESH=1, SWEEP_INTERVAL_SECONDS (60), DEVSTACK_STATE_DIR (.local).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from devstack import REPO_ROOT, configure_logging, state_dir
from devstack.bootstrap import BootstrapResult, bootstrap
from devstack.services import (
    DynamoDBLocal,
    ManagedProcess,
    MotoServer,
    ServiceError,
    chalice_command,
    port_in_use,
    stop_all,
    wait_http,
)
from devstack.stripe_standin import StripeStandIn
from devstack.web import WebServer, app_config

log = logging.getLogger("devstack")


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass(frozen=True)
class Options:
    api_port: int
    web_port: int
    ddb_port: int
    moto_port: int
    stripe_port: int
    workers: int
    fresh: bool

    @classmethod
    def from_env(cls) -> Options:
        def flag(name: str) -> bool:
            return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")

        return cls(
            api_port=int(os.environ.get("API_PORT", "8000")),
            web_port=int(os.environ.get("WEB_PORT", "8080")),
            ddb_port=int(os.environ.get("DDB_PORT", "8002")),
            moto_port=int(os.environ.get("MOTO_PORT", "5001")),
            stripe_port=int(os.environ.get("STRIPE_PORT", "12111")),
            workers=int(os.environ.get("WORKERS", "1") or "1"),
            fresh=flag("FRESH"),
        )

    def check_ports(self) -> None:
        for name in ("API_PORT", "WEB_PORT", "DDB_PORT", "MOTO_PORT", "STRIPE_PORT"):
            port = getattr(self, name.lower())
            if port_in_use(port):
                raise ServiceError(f"port {port} is taken (is another `make dev` running?): set {name}=...")


def _code_files() -> Iterator[Path]:
    yield REPO_ROOT / "app.py"
    yield from (REPO_ROOT / "chalicelib").rglob("*.py")


def code_snapshot() -> dict[Path, float]:
    snapshot = {}
    for path in _code_files():
        with contextlib.suppress(OSError):
            snapshot[path] = path.stat().st_mtime
    return snapshot


class AppProcesses:
    """The processes that run the app's code: the API, the workers, the sweeper, the notifier."""

    def __init__(self, options: Options, env: dict[str, str]) -> None:
        self.options = options
        self.env = env
        self.processes: list[ManagedProcess] = []

    def start(self) -> None:
        python = sys.executable
        self.processes = [
            ManagedProcess("api", chalice_command(self.options.api_port), env=self.env, cwd=REPO_ROOT)
        ]
        for i in range(self.options.workers):
            command = [python, "-m", "devstack.worker"]
            self.processes.append(ManagedProcess(f"worker-{i + 1}", command, env=self.env, cwd=REPO_ROOT))
        sweeper = [python, "-m", "devstack.sweeper"]
        self.processes.append(ManagedProcess("sweeper", sweeper, env=self.env, cwd=REPO_ROOT))
        notifier = [python, "-m", "devstack.notifier"]
        self.processes.append(ManagedProcess("notifier", notifier, env=self.env, cwd=REPO_ROOT))
        for process in self.processes:
            process.start()

    def wait_ready(self) -> None:
        api = self.processes[0]
        wait_http(f"http://127.0.0.1:{self.options.api_port}/health", 90, expect_status=200, alive=api.alive)

    def dead(self) -> list[ManagedProcess]:
        return [p for p in self.processes if not p.alive()]

    def stop(self) -> None:
        stop_all(self.processes, grace=15)
        self.processes = []


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _announce(options: Options, result: BootstrapResult) -> None:
    print(f"demo user: {result.demo_email}  password: {result.demo_password}  (workspace demo)", flush=True)
    print("CLI: .venv/bin/python -m cli token --user alice@example.com", flush=True)
    print(
        f"payments: a Stripe stand-in on http://127.0.0.1:{options.stripe_port} (docs/payments.md)",
        flush=True,
    )
    print(
        f"ready: api=http://127.0.0.1:{options.api_port} web=http://127.0.0.1:{options.web_port}",
        flush=True,
    )


# What the services hold, under the state folder: FRESH=1 removes all of it at once. (The demo
# password and the keys the stack generated stay: they are settings, not data.)
SERVICE_STATE = ("dynamodb-data", "moto", "notifier-checkpoint.json", "passwords.json")
# A worker stopped mid-transcode leaves its job `processing` until its claim runs out: locally
# that is a minute, not the 15 minutes a Lambda invocation can last (the heartbeat renews it).
LOCAL_DEFAULTS = {"CLAIM_LEASE_SECONDS": "60", "HEARTBEAT_SECONDS": "15"}


def forget_everything(state: Path) -> None:
    for name in SERVICE_STATE:
        path = state / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    log.info("FRESH=1: every service starts from nothing (%s)", ", ".join(SERVICE_STATE))


def catch_up() -> None:
    """At a restart: send the message of every queued job now (a duplicate is a no-op for the
    worker) and settle claims that ran out while the stack was down, instead of waiting for the
    sweeper's schedule."""
    from chalicelib.bootstrap import services
    from chalicelib.processing.context import Services
    from chalicelib.processing.sweeper import sweep

    app = services()
    now_due = app.settings.model_copy(update={"sweeper_requeue_after_seconds": 1})
    report = sweep(Services(now_due, app.repo, app.store, app.queue))
    if report.requeued or report.interrupted:
        done = (report.requeued, report.interrupted)
        log.info("restart: re-sent %d queued job(s), settled %d expired claim(s)", *done)


def run(options: Options) -> int:
    options.check_ports()
    state = state_dir()
    if options.fresh:
        forget_everything(state)
    data_dir = state / "dynamodb-data"
    for name, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(name, value)
    stoppers: list[Stoppable] = []
    apps: AppProcesses | None = None
    started = time.monotonic()

    def took() -> str:
        return f"{time.monotonic() - started:.1f}s"

    try:
        ddb = DynamoDBLocal(options.ddb_port, data_dir=data_dir)
        stoppers.append(ddb)
        ddb.start()
        log.info("DynamoDB Local on %s, data in %s (%s)", ddb.url, data_dir, took())
        moto = MotoServer(options.moto_port, state_dir=state / "moto")
        stoppers.append(moto)
        moto.start()
        restored = moto.restored
        kept = f"restored {', '.join(restored.services)}" if restored.services else "nothing saved yet"
        log.info("moto server on %s, state in %s: %s (%s)", moto.url, state / "moto", kept, took())
        web_origin = f"http://127.0.0.1:{options.web_port}"
        stripe_url = f"http://127.0.0.1:{options.stripe_port}"
        result = bootstrap(moto.url, ddb.url, web_origin, stripe_url=stripe_url)
        log.info("bootstrapped: bucket, queues, user pool, secrets, tables, demo workspace (%s)", took())
        catch_up()
        api_url = f"http://127.0.0.1:{options.api_port}"
        keys = result.stripe_keys
        stripe = StripeStandIn(
            options.stripe_port, keys["apiKey"], keys["webhookSecret"], f"{api_url}/payments/stripe"
        ).start()
        stoppers.append(stripe)
        web = WebServer(options.web_port, app_config(result.env, api_url)).start()
        stoppers.append(web)
        os.environ["PUBLIC_API_URL"] = api_url  # unsubscribe links in emails
        apps = AppProcesses(options, dict(os.environ))  # bootstrap applied the stack's env
        apps.start()
        apps.wait_ready()
        wait_http(f"{web.url}/config.js", 10, expect_status=200)
        log.info("API and frontend answering (%s)", took())
        _announce(options, result)
        return supervise(apps)
    except KeyboardInterrupt:
        return 0
    except ServiceError as exc:
        print(f"devstack: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        print("stopping the local stack...", flush=True)
        if apps is not None:
            apps.stop()
        for stopper in reversed(stoppers):
            stopper.stop()
        print("stopped", flush=True)


def supervise(apps: AppProcesses) -> int:
    """Until Ctrl-C: restart the app's processes when its code changes; report any that die."""
    snapshot = code_snapshot()
    reported: set[str] = set()
    while True:
        time.sleep(1)
        for process in apps.dead():
            if process.name not in reported:
                reported.add(process.name)
                code = process.process.returncode if process.process else "?"
                print(
                    f"devstack: {process.name} exited ({code}); it restarts when the code changes", flush=True
                )
        current = code_snapshot()
        if current == snapshot:
            continue
        snapshot = current
        reported.clear()
        print("code changed: restarting the API, the workers and the sweeper", flush=True)
        apps.stop()
        apps.start()
        try:
            apps.wait_ready()
            print("ready again", flush=True)
        except ServiceError as exc:
            print(f"devstack: the API did not come back ({exc}); it restarts on the next save", flush=True)


def main() -> None:
    configure_logging("devstack")
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    # Ctrl-C even when started by a process that ignores SIGINT (a background job of a script, a
    # test runner's worker): Python leaves an inherited "ignore" in place, and the stack never stops.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    sys.exit(run(Options.from_env()))


if __name__ == "__main__":
    main()
