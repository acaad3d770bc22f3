"""`python -m devstack` (what `make dev` runs) as a child process of a test: on free ports, with
a state folder of the test's own, stopped as a person stops it (SIGTERM / Ctrl-C) or crashed
(SIGKILL), and started again on the same state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devstack import REPO_ROOT
from devstack.bootstrap import DUMMY_KEY, read_stack_env
from devstack.services import free_port

# What a stack (the session's own, in this process) puts in os.environ must not leak into a stack
# of a test's own, nor into a CLI pointed at it (variables already set win over stack.env).
_STACK_PREFIXES = (
    "AWS_",
    "R2_",
    "COGNITO_",
    "JOBS_",
    "NOTIFICATIONS_",
    "NOTIFY_",
    "WEBHOOK_",
    "POWERTOOLS_",
    "STRIPE_",
    "VAPID_",
)
_STACK_NAMES = {
    "TABLE_PREFIX",
    "CORS_ALLOW_ORIGIN",
    "DASHBOARD_URL",
    "PUBLIC_API_URL",
    "AUTO_RETRY_BASE_SECONDS",
    "DEVSTACK_STATE_DIR",
}


def clean_environ() -> dict[str, str]:
    """os.environ without any stack's settings."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(_STACK_PREFIXES) and k not in _STACK_NAMES
    }


def children_of(pid: int) -> set[int]:
    """Every descendant of pid, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class DevStack:
    """One `python -m devstack` on ports and a state folder chosen once, so it can be started
    again on the same state (and reached at the same addresses)."""

    state_dir: Path
    settings: Mapping[str, str] = field(default_factory=dict)  # app settings for its processes
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    children: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name in ("API_PORT", "WEB_PORT", "DDB_PORT", "MOTO_PORT", "STRIPE_PORT"):
            self.ports.setdefault(name, free_port())

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['API_PORT']}"

    @property
    def moto(self) -> str:
        return f"http://127.0.0.1:{self.ports['MOTO_PORT']}"

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.ports['WEB_PORT']}"

    def env(self, **more: str) -> dict[str, str]:
        env = clean_environ()
        env.update({k: str(v) for k, v in self.ports.items()})
        env.update(self.settings)
        env.update({"DEVSTACK_STATE_DIR": str(self.state_dir), "PYTHONUNBUFFERED": "1"}, **more)
        return env

    def start(self, timeout: float = 180, sigint_ignored: bool = False, **more: str) -> DevStack:
        """Start it and wait for its `ready:` line (its output so far is in `output`).
        `sigint_ignored`: started as a background job of a script is (SIGINT ignored, inherited)."""
        self.output = []

        def ignoring_sigint() -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=REPO_ROOT,
            env=self.env(**more),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=ignoring_sigint if sigint_ignored else None,  # noqa: PLW1509 (no threads run it)
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith("ready: "):
                self.children = children_of(self.process.pid)
                return self
        raise AssertionError("the stack did not get ready:\n" + self.log()[-4000:])

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM, as a supervisor (or Ctrl-C) would; wait until every part of it is gone."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGTERM)
        return self._reap(timeout)

    def interrupt(self, timeout: float = 90) -> int:
        """SIGINT, as Ctrl-C in its terminal."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGINT)
        return self._reap(timeout)

    def crash(self, timeout: float = 90) -> int:
        """SIGKILL the stack's own process: its children learn it died as the kernel tells them."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        return self._reap(timeout)

    def _reap(self, timeout: float) -> int:
        assert self.process is not None and self.process.stdout is not None
        rest, _ = self.process.communicate(timeout=timeout)
        self.output.append(rest or "")
        deadline = time.monotonic() + timeout
        while any(alive(pid) for pid in self.children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in self.children if alive(pid)]
        assert left == [], f"left running: {left}\n{self.log()[-3000:]}"
        return int(self.process.returncode)

    def kill_all(self) -> None:
        """Cleanup after a failed test: nothing it started may outlive it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in self.children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    # --- reaching its services as a client would ---------------------------------------------
    def stack_env(self) -> dict[str, str]:
        return read_stack_env(self.state_dir / "stack.env")

    def client(self, service: str) -> Any:
        endpoint = f"http://127.0.0.1:{self.ports['DDB_PORT']}" if service == "dynamodb" else self.moto
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
        )

    def sign_in(self, email: str, password: str) -> str:
        """An ID token, from Cognito's InitiateAuth as the dashboard signs in."""
        answer = self.client("cognito-idp").initiate_auth(
            ClientId=self.stack_env()["COGNITO_CLIENT_ID"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )
        return str(answer["AuthenticationResult"]["IdToken"])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m cli ...` against this stack (it reads the state folder's stack.env)."""
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=REPO_ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
