"""The operator CLI (`python -m cli`) against the running local stack."""

from __future__ import annotations

import json
import os
import pty
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


# --- progress over many messages: a bar on a terminal, plain lines in a pipe -------------------
def _dead_letters(aws_stack: AwsStack, n: int) -> set[str]:
    """n job messages (for jobs that do not exist: a worker skips them) in the jobs DLQ."""
    sqs, dlq = aws_stack.client("sqs"), aws_stack.env["JOBS_DLQ_URL"]
    bodies = sorted(
        json.dumps({"jobId": str(uuid.uuid4()), "workspaceId": "ws-gone", "attempt": 1}) for _ in range(n)
    )
    for start in range(0, n, 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=dlq, Entries=entries)
    return set(bodies)


def _take_back(aws_stack: AwsStack, bodies: set[str]) -> int:
    """Delete the redriven messages from the jobs queue (other tests' workers need not see them)."""
    sqs, url = aws_stack.client("sqs"), aws_stack.env["JOBS_QUEUE_URL"]
    found, seen = 0, set()
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            return found
        for message in fresh:
            seen.add(message["MessageId"])
            if message["Body"] in bodies:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                found += 1


def _in_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its stdout and stderr, as a person at a shell would."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *args], cwd=REPO_ROOT, env=env, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=60), output.decode(errors="replace")


def test_dlq_redrive_shows_plain_lines_in_a_pipe_and_a_bar_on_a_terminal(
    cli: Cli, aws_stack: AwsStack, tmp_path: Path
) -> None:
    # GIVEN 25 messages in the dead-letter queue, WHEN redriven with the output in a pipe
    bodies = _dead_letters(aws_stack, 25)
    piped = cli("dlq", "redrive")
    # THEN a plain line every tenth of the way, no control characters, and the summary
    assert piped.returncode == 0, piped.stderr
    assert "moved 25 message(s) back to the jobs queue" in piped.stdout
    lines = piped.stderr.splitlines()
    assert lines[0] == "redrive: 3/25 (12%)" and lines[-1] == "redrive: 25/25 (100%)", piped.stderr
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr
    assert _take_back(aws_stack, bodies) == 25

    # WHEN the same runs on a terminal THEN one line is redrawn: a bar, counts and the time left
    bodies = _dead_letters(aws_stack, 25)
    env = {**os.environ, **aws_stack.env, "DEVSTACK_STATE_DIR": str(tmp_path)}
    code, screen = _in_a_terminal(env, "dlq", "redrive")
    assert code == 0, screen
    assert "\r\x1b[2Kredrive [" in screen and "] 25/25 100%" in screen and "ETA" in screen, screen
    assert "redrive: 3/25" not in screen
    assert _take_back(aws_stack, bodies) == 25
