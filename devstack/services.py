"""Start and stop the local stack's parts: DynamoDB Local, the moto server, child processes.

Every child runs in its own process group (so stopping it stops its children too) and gets
SIGTERM when the process that started it dies, so nothing is left behind, even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Self

from devstack import LOCAL_DIR

log = logging.getLogger(__name__)

DEFAULT_EMULATOR_DIR = LOCAL_DIR / "dynamodb"

# Runs in the child before exec: ask the kernel for SIGTERM when the parent dies (Linux only).
# A launcher instead of preexec_fn, which is unsafe in a process with threads (the moto server).
_PDEATHSIG_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))\n"  # PR_SET_PDEATHSIG
    "except Exception:\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"  # the parent is already gone
    "    sys.exit(0)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


class ServiceError(RuntimeError):
    """A part of the local stack did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_http(
    url: str,
    timeout: float = 30.0,
    expect_status: int | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until `url` answers HTTP (with `expect_status`, when given).

    `alive` is asked between tries: when it says False the wait stops at once (a crashed server).
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise ServiceError(f"{url}: the server exited before it answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
            time.sleep(0.1)
            continue
        if expect_status is None or status == expect_status:
            return
        last = f"HTTP {status}"
        time.sleep(0.1)
    raise ServiceError(f"{url} did not answer within {timeout:.0f}s ({last})")


class ManagedProcess:
    """A child process in its own process group, stopped with its whole group."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ManagedProcess:
        output: Any = None  # inherit the terminal
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            output = self._log
        launcher = [sys.executable, "-c", _PDEATHSIG_LAUNCHER, str(os.getpid())]
        self.process = subprocess.Popen(
            launcher + self.command,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )
        log.debug("started %s (pid %s): %s", self.name, self.process.pid, " ".join(self.command))
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the group, SIGKILL after `grace` seconds; then the group's leftovers too."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs: killing it", self.name, grace)
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        # The leader is gone; anything it started that is still in its group goes too.
        self.signal(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for it to exit; True when it has."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as far as the children can tell."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def stop_all(processes: Sequence[ManagedProcess], grace: float = 10.0) -> None:
    """Stop them together: SIGTERM to every group first, then wait, then stop() each (SIGKILL if needed)."""
    for process in processes:
        if process.alive():
            process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        process.wait(deadline - time.monotonic())
    for process in processes:
        process.stop(grace=0.1)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1, serving from a background thread of this process (the
    frontend, the Stripe stand-in)."""

    def __init__(self, port: int, handler: Callable[..., BaseHTTPRequestHandler], name: str) -> None:
        self.port = port
        self._name = name
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class DynamoDBLocal:
    """Amazon's DynamoDB Local (the jar from the npm package amplify-dynamodb-simulator)."""

    def __init__(
        self,
        port: int,
        data_dir: Path | None = None,
        in_memory: bool = False,
        emulator_dir: Path = DEFAULT_EMULATOR_DIR,
        log_path: Path | None = None,
    ) -> None:
        if not in_memory and data_dir is None:
            raise ValueError("DynamoDBLocal needs data_dir unless in_memory=True")
        self.port = port
        self.data_dir = data_dir
        self.in_memory = in_memory
        self.emulator_dir = emulator_dir
        self.log_path = log_path
        self._process: ManagedProcess | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        java = shutil.which("java")
        jar = self.emulator_dir / "DynamoDBLocal.jar"
        if java is None:
            raise ServiceError("java is not installed: run `make install`")
        if not jar.exists():
            raise ServiceError(f"{jar} is missing: run `make install`")
        # -sharedDb: one database whatever the credentials and region of the client.
        storage = ["-inMemory"]
        if not self.in_memory:
            assert self.data_dir is not None
            storage = ["-dbPath", str(self.data_dir)]
        return [
            java,
            f"-Djava.library.path={self.emulator_dir / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-port",
            str(self.port),
            "-sharedDb",
            "-disableTelemetry",  # it would call home, and this machine has no way out
            *storage,
        ]

    def start(self, timeout: float = 60.0) -> DynamoDBLocal:
        if port_in_use(self.port):
            raise ServiceError(f"port {self.port} is taken: set DDB_PORT to another port")
        if self.data_dir is not None and not self.in_memory:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        # It writes dynamodb-local-metadata.json into its working directory: keep that out of the repo.
        workdir = self.data_dir if self.data_dir is not None and not self.in_memory else None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dynamodb-local-")
            workdir = Path(self._tmp.name)
        self._process = ManagedProcess(
            "dynamodb-local", self.command(), cwd=workdir, log_path=self.log_path
        ).start()
        try:
            # Any HTTP answer will do: DynamoDB Local says 400 to a plain GET once it is up.
            wait_http(self.url, timeout=timeout, alive=self._process.alive)
        except ServiceError as exc:
            tail = self._process.log_tail()
            self.stop()
            raise ServiceError(f"DynamoDB Local did not start: {exc}\n{tail}") from exc
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=10)
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class MotoServer:
    """moto in server mode, in a thread of this process: S3 (for R2), SQS, Cognito, SES and
    Secrets Manager. With `state_dir`, its state is restored from there at start and kept there
    (devstack.moto_state); without, it lives in memory (the test suite's stacks)."""

    def __init__(self, port: int, state_dir: Path | None = None) -> None:
        self.port = port
        self.state_dir = state_dir
        self.state: Any = None  # devstack.moto_state.MotoState when state_dir is given
        self.restored: Any = None  # what restore() found
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer  # dev-only dependency: imported when used

        if port_in_use(self.port):
            raise ServiceError(f"port {self.port} is taken: set MOTO_PORT to another port")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self.state_dir is not None:
            from devstack.moto_state import MotoState

            self.state = MotoState(self.state_dir)
            self.restored = self.state.restore()  # before the first request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        if self.state is not None:
            wsgi = self._server._server  # werkzeug's server: each request saves what it changed
            wsgi.app = self.state.middleware(wsgi.app)
            self.state.start_autosave()
        _keep_objects_unrestored()
        wait_http(f"{self.url}/moto-api/", timeout=15)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.state is not None:
            self.state.close()  # the last word: nothing can change it any more
            self.state = None

    def wrap_app(self, middleware: Callable[[Any], Any]) -> None:
        """Put a WSGI middleware in front of moto's app (the tests count what storage receives).
        moto's ThreadedMotoServer keeps its werkzeug server in `_server`; `app` is werkzeug's."""
        assert self._server is not None, "start() first"
        server = self._server._server
        server.app = middleware(server.app)


def _keep_objects_unrestored() -> None:
    """moto (5.2.5) moves each S3 object's Glacier-restore status on when it is first read, and then
    looks up the object's bucket: the parts of a multipart upload have none, so the first
    `/moto-api/data.json` after a part was stored (the tests read sent mail there) answered 500.
    Nothing here restores from Glacier: the status stays where it starts."""
    from moto.moto_api import state_manager

    state_manager.set_transition(
        model_name="s3::keyrestore", transition={"progression": "manual", "times": 2**62}
    )


def chalice_command(port: int, stage: str = "dev", autoreload: bool = False) -> list[str]:
    """`chalice local` from this interpreter's environment, its server tuned (devstack.chalice_local)."""
    return [
        sys.executable,
        "-m",
        "devstack.chalice_local",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stage",
        stage,
        "--autoreload" if autoreload else "--no-autoreload",
    ]
