"""The API matches its OpenAPI document: schemathesis runs against /openapi.json on the local
stack with a valid token and every check (`--checks all`), bounded so the run stays short.

A client generated from the document can use every route: no undocumented status, no
schema-valid request refused, no undeclared method answered with a 5xx.

Every route is fuzzed whose fuzzing sends no traffic off this machine: all but `POST /webhooks`
(a fuzzed URL would make the API resolve its host name, and later call it). The seed changes
every day (or set SCHEMATHESIS_SEED to replay one): a fixed seed finds the same few cases
forever. The seed is printed, and named in the failure.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api import new_tenant
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 30


def seed() -> int:
    """SCHEMATHESIS_SEED, else today's date as a number (one seed a day, the same all day)."""
    given = os.environ.get("SCHEMATHESIS_SEED", "").strip()
    return int(given) if given else int(datetime.date.today().strftime("%Y%m%d"))


def test_the_api_passes_every_schemathesis_check(
    aws_stack: AwsStack, api_server: str, tmp_path: Path
) -> None:
    tenant = new_tenant(aws_stack, api_server, credits=10_000)
    st = Path(sys.executable).with_name("st")
    chosen = seed()
    print(f"schemathesis seed {chosen} (replay: SCHEMATHESIS_SEED={chosen})")
    done = subprocess.run(
        [
            str(st),
            "--config-file",
            str(CONFIG),
            "run",
            f"{api_server}/openapi.json",
            "--url",
            api_server,
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {tenant.api.token}",
            # Registering a webhook makes the API resolve the URL's host name (and later call
            # it): fuzzed URLs would send lookups and traffic off this machine. Its refusals have
            # their own tests (tests/integration/test_notifications.py), with IP literals only.
            "--exclude-operation-id",
            "postWebhooks",
            # Subscribing a browser to Web Push resolves its push endpoint's host and the notifier
            # calls it later: the same (tests/integration/test_push.py).
            "--exclude-operation-id",
            "postPushSubscriptions",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(chosen),
            # one worker: hypothesis describes filters with ast.parse, which CPython 3.11 can
            # fail on from two threads at once ("AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    assert done.returncode == 0, f"seed {chosen}\n" + done.stdout[-12000:] + done.stderr[-3000:]


@pytest.mark.parametrize("method", ["TRACE", "QUERY"])
def test_a_method_the_local_server_has_no_handler_for_is_405_with_allow(api_server: str, method: str) -> None:
    import requests

    r = requests.request(method, f"{api_server}/jobs", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"
