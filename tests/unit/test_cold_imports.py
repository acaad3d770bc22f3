"""Each Lambda imports only what it uses, and adapters are built on first use.

Chalice deploys app.py as the API, the worker and the sweeper alike, so what app.py imports at
module level every function pays at its cold start. These tests check which modules a fresh
interpreter holds (behaviour, not timing: `make bench` times it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from chalicelib.bootstrap import LazyServices
from chalicelib.config import Settings
from tests.support.fakes import FakeQueue, FakeRepository, FakeStore

ROOT = Path(__file__).resolve().parents[2]

# What only the worker, the sweeper or the notifier use, and what costs a cold start without being
# needed by it.
NOT_ON_THE_API_IMPORT_PATH = (
    "chalicelib.handlers.worker",
    "chalicelib.handlers.sweeper",
    "chalicelib.notifications.handlers",
    "chalicelib.notifications.events",
    "chalicelib.notifications.adapters",
    "chalicelib.processing.worker",
    "chalicelib.processing.sweeper",
    "chalicelib.adapters.ffmpeg",
    "chalicelib.adapters.sqs",
    "chalicelib.adapters.r2",
    "chalicelib.adapters.dynamodb",
    "chalicelib.adapters.idempotency",
    "chalicelib.payments.adapters",
    "stripe",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.idempotency",
    "boto3",
    "pynamodb",
    "jwt",
    "pydantic_settings",
    # Deferred to the first request that uses them (issue 17): pydantic with the request and
    # response models (chalicelib.handlers.lazy), the settings model, Powertools' Logger,
    # Metrics and Tracer, and the worker's streaming input with its HTTP server.
    "pydantic",
    "pydantic_core",
    "chalicelib.config",
    "chalicelib.handlers.schemas",
    "chalicelib.notifications.schemas",
    "aws_lambda_powertools",
    "chalicelib.processing.streaming_input",
    "http.server",
)

ROUTE_MODULES = (
    "chalicelib.handlers.meta",
    "chalicelib.handlers.credits",
    "chalicelib.handlers.jobs",
    "chalicelib.uploads.routes",
    "chalicelib.notifications.routes",
    "chalicelib.payments.routes",
)


def _fresh(code: str) -> Any:
    """Run `code` in a new interpreter at the repository root; it prints one JSON value."""
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_app_loads_no_worker_sweeper_batch_ffmpeg_or_sdk_code() -> None:
    loaded = _fresh("import app, sys, json; print(json.dumps(sorted(sys.modules)))")

    assert [m for m in NOT_ON_THE_API_IMPORT_PATH if m in loaded] == []
    # the routes themselves are registered, one blueprint per feature
    assert [m for m in ROUTE_MODULES if m not in loaded] == []


def test_the_worker_and_sweeper_handlers_load_their_modules_when_called() -> None:
    # Calling the handlers needs a stack; what they import when called is read from their source.
    source = (ROOT / "app.py").read_text()
    worker_body = source.split("def handle_job_messages", 1)[1].split("\n@", 1)[0]
    sweeper_body = source.split("def sweep_stuck_jobs", 1)[1]

    assert "from chalicelib.handlers import worker" in worker_body
    assert "from chalicelib.handlers import sweeper" in sweeper_body


def test_a_request_without_a_valid_token_builds_no_adapter() -> None:
    code = """
import json, sys
from chalice.test import Client
import app
from chalicelib import bootstrap
with Client(app.app) as client:
    statuses = [
        client.http.get("/me").status_code,
        client.http.get("/jobs", headers={"Authorization": "Token abc"}).status_code,
        client.http.get("/me", headers={"Authorization": "Bearer not.a.jwt"}).status_code,
    ]
print(json.dumps({"statuses": statuses, "built": bootstrap.built(),
                  "sdk": [m for m in ("boto3", "pynamodb") if m in sys.modules],
                  "models": "chalicelib.handlers.schemas" in sys.modules}))
"""
    result = _fresh(code)

    # nor the request models: a 401 answers before any body is parsed or any answer is built
    assert result == {"statuses": [401, 401, 401], "built": [], "sdk": [], "models": False}


def test_the_first_request_that_needs_a_model_builds_it_and_every_named_model_exists() -> None:
    code = """
import json, sys
from chalice.test import Client
import app
from chalicelib.handlers import lazy
with Client(app.app) as client:
    health = client.http.get("/health")
refs = [v for m in list(sys.modules.values()) for v in vars(m).values() if isinstance(v, lazy.ModelRef)]
print(json.dumps({"health": [health.status_code, json.loads(health.body)], "refs": len(refs),
                  "classes": sorted({type(lazy.resolve(r)).__name__ for r in refs})}))
"""
    result = _fresh(code)

    assert result["health"] == [200, {"status": "ok"}]
    assert result["refs"] > 30 and result["classes"] == ["ModelMetaclass"]  # each name is a model


def test_ten_first_requests_at_once_in_a_fresh_process_all_answer() -> None:
    # What is built on first use (Powertools' Logger, the models) is built once, whichever
    # thread comes first: chalice local serves each request on its own thread.
    code = """
import json, threading
from chalice.test import Client
import app
client = Client(app.app)
ready = threading.Barrier(11)
statuses = []
def one():
    ready.wait()
    statuses.append(client.http.get("/health").status_code)
threads = [threading.Thread(target=one) for _ in range(10)]
for t in threads:
    t.start()
ready.wait()
for t in threads:
    t.join()
print(json.dumps(sorted(statuses)))
"""
    assert _fresh(code) == [200] * 10


def test_lazy_services_build_each_adapter_once_on_first_use_only() -> None:
    made: list[str] = []
    lock = threading.Lock()

    def builder(name: str, value: object) -> Any:
        def build(settings: Settings) -> object:
            with lock:
                made.append(name)
            return value

        return build

    repo = FakeRepository()
    svc = LazyServices(
        {
            "repo": builder("repo", repo),
            "store": builder("store", FakeStore()),
            "queue": builder("queue", FakeQueue()),
            "transcoder": builder("transcoder", None),
        }
    )
    assert made == [] and svc.built() == []

    threads = [threading.Thread(target=lambda: svc.repo) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert made == ["repo"] and svc.repo is repo
    assert svc.built() == ["repo"]
    svc.queue = FakeQueue()  # assignment replaces an adapter without building the default
    assert made == ["repo"] and svc.built() == ["repo", "queue"]
