"""The API matches its OpenAPI document: schemathesis runs against /openapi.json on the local
stack with a valid token and every check (`--checks all`), bounded so the run stays short.

A client generated from the document can use every route: no undocumented status, no
schema-valid request refused, no undeclared method answered with a 5xx.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api import new_tenant
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 10
SEED = 8


def test_the_api_passes_every_schemathesis_check(
    aws_stack: AwsStack, api_server: str, tmp_path: Path
) -> None:
    tenant = new_tenant(aws_stack, api_server, credits=10_000)
    st = Path(sys.executable).with_name("st")
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
            # The notification routes (issue 11) register webhook URLs and push subscriptions, whose
            # host names the API resolves and whose endpoints it calls: fuzzed URLs would send
            # lookups and traffic off this machine. They have their own tests
            # (tests/integration/test_notifications.py, test_push.py).
            "--exclude-path-regex",
            "^/(webhooks|notifications|push)",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            # one worker: hypothesis describes filters with ast.parse, which CPython 3.11 can
            # fail on from two threads at once ("AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]


@pytest.mark.parametrize("method", ["TRACE", "QUERY"])
def test_a_method_the_local_server_has_no_handler_for_is_405_with_allow(api_server: str, method: str) -> None:
    import requests

    r = requests.request(method, f"{api_server}/jobs", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"
    assert r.json()["code"] == "METHOD_NOT_ALLOWED"
