"""The operator CLI (`python -m cli`) against the running local stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devstack import REPO_ROOT
from tests.support.api import repository
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(aws_stack: AwsStack, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {**os.environ, **aws_stack.env, "DEVSTACK_STATE_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def test_user_add_then_token_gives_a_token_the_api_accepts(cli: Cli, api_server: str) -> None:
    tag = uuid.uuid4().hex[:8]
    email, workspace = f"cli-{tag}@example.com", f"cli-{tag}"
    added = cli("user", "add", email, "--workspace", workspace, "--credits", "4", "--name", "CLI studio")
    assert added.returncode == 0, added.stderr
    assert f"owner of created workspace {workspace}" in added.stdout and "password: " in added.stdout

    token = cli("token", "--user", email)
    assert token.returncode == 0, token.stderr
    bearer = {"Authorization": f"Bearer {token.stdout.strip()}"}
    me = requests.get(api_server + "/me", headers=bearer, timeout=10)
    assert me.status_code == 200
    assert me.json()["workspaces"] == [{"id": workspace, "name": "CLI studio", "role": "owner", "credits": 4}]

    again = cli("user", "add", email, "--workspace", workspace, "--password", "Other-Pass-1")
    assert again.returncode == 0 and "existing workspace" in again.stdout  # idempotent; the balance stays
    assert repository().get_workspace(workspace).credits == 4  # type: ignore[union-attr]


def test_credits_set_and_add_go_through_the_ledger(cli: Cli, aws_stack: AwsStack) -> None:
    workspace = f"cli-{uuid.uuid4().hex[:8]}"
    aws_stack.add_user(f"{workspace}@example.com", workspace, credits=2)
    assert "7 credits (ledger sum 7)" in cli("credits", "--workspace", workspace, "--set", "7").stdout
    assert "10 credits (ledger sum 10)" in cli("credits", "--workspace", workspace, "--add", "3").stdout
    below_zero = cli("credits", "--workspace", workspace, "--add", "-11")
    assert below_zero.returncode == 1 and "error:" in below_zero.stderr
    assert "10 credits (ledger sum 10)" in cli("credits", "--workspace", workspace).stdout
    reasons = [e.reason.value for e in repository().ledger(workspace, 10, None).entries]
    assert reasons == ["grant", "adjustment", "grant"]
    missing = cli("credits", "--workspace", "no-such-workspace", "--set", "1")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_token_never_resets_a_password_on_a_cognito_off_this_machine_without_the_flag(
    aws_stack: AwsStack, tmp_path: Path
) -> None:
    # An endpoint that is not loopback (0.0.0.0: nothing leaves this machine, and nothing answers).
    env = {
        **os.environ,
        **aws_stack.env,
        "DEVSTACK_STATE_DIR": str(tmp_path),
        "AWS_ENDPOINT_URL_COGNITO_IDP": "http://0.0.0.0:9",
    }

    def token(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "--no-local-stack",
                "token",
                "--user",
                "someone@example.com",
                *flags,
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = token()
    assert refused.returncode == 2 and "--reset-password" in refused.stderr, refused.stderr
    forced = token("--reset-password")  # it tries (and finds nothing there)
    assert forced.returncode == 1 and "Cognito is unavailable" in forced.stderr, forced.stderr
