"""Every adapter method translates its library's errors: with DynamoDB, R2, SQS, Secrets Manager
and Stripe unreachable (a closed loopback port), each public method raises the port's domain
error (a 503 at the edge, a 400 for a webhook that does not verify), never a pynamodb, botocore
or Stripe exception (a 500)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.lifecycle import Move
from tests.support.unreachable import one_of_each, payment_calls, port_methods, repository_calls

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def outcomes() -> dict[str, str]:
    dead = f"http://127.0.0.1:{closed_port()}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "R2_", "JOBS_QUEUE", "TABLE_PREFIX", "STRIPE_"))
    } | {
        "AWS_ENDPOINT_URL_DYNAMODB": dead,
        "AWS_ENDPOINT_URL_SQS": dead,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": dead,
        "STRIPE_API_BASE": dead,
        "R2_ENDPOINT_URL": dead,
        "R2_ACCESS_KEY_ID": "test",
        "R2_SECRET_ACCESS_KEY": "test",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "JOBS_QUEUE_URL": f"{dead}/000000000000/vidproc-jobs",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.unreachable"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_check_calls_every_method_of_the_repository_port() -> None:
    assert set(repository_calls()) == port_methods()


@pytest.mark.parametrize("method", sorted(repository_calls()))
def test_every_repository_method_says_the_database_is_unavailable(
    outcomes: dict[str, str], method: str
) -> None:
    assert outcomes[f"repo.{method}"] == "ServiceUnavailableError"


def test_the_check_commits_every_kind_of_transition() -> None:
    assert set(one_of_each()) == set(Move)


@pytest.mark.parametrize("move", sorted(Move))
def test_every_transition_says_the_database_is_unavailable(outcomes: dict[str, str], move: Move) -> None:
    assert outcomes[f"commit.{move}"] == "ServiceUnavailableError"


def test_r2_and_sqs_say_what_failed(outcomes: dict[str, str]) -> None:
    assert outcomes["store.head"] == outcomes["store.upload_file"] == "StorageError"
    assert outcomes["store.delete_prefix"] == "StorageError"
    multipart = ("start_multipart", "list_parts", "complete_multipart", "abort_multipart")
    assert {outcomes[f"store.{m}"] for m in multipart} == {"StorageError"}
    signed = ("presign_upload", "presign_download", "presign_part")
    assert {outcomes[f"store.{m}"] for m in signed} == {"returned"}  # signing is local
    assert outcomes["queue.from_settings"] == "ServiceUnavailableError"
    assert outcomes["queue.send"] == "QueueSendError"


@pytest.mark.parametrize("call", sorted(c for c in payment_calls() if c.startswith("records.")))
def test_the_purchase_records_say_the_database_is_unavailable(outcomes: dict[str, str], call: str) -> None:
    assert outcomes[call] == "ServiceUnavailableError"


@pytest.mark.parametrize("call", sorted(c for c in payment_calls() if c.startswith("provider.")))
def test_the_payment_provider_says_the_payment_service_is_unavailable(
    outcomes: dict[str, str], call: str
) -> None:
    assert outcomes[f"{call}.secret"] == "PaymentProviderError"  # its keys could not be read
    # Stripe unreachable: the API calls are 503s; a webhook is verified locally (this one is forged)
    expected = "WebhookRejectedError" if call == "provider.verify_event" else "PaymentProviderError"
    assert outcomes[f"{call}.stripe"] == expected


def test_the_rate_limit_and_the_try_slots_say_the_database_is_unavailable(outcomes: dict[str, str]) -> None:
    assert outcomes["limits.hit"] == outcomes["slots.claim"] == "ServiceUnavailableError"
