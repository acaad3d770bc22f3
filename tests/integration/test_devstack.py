"""The local stack itself: bootstrap, the Lambda-like SQS poller, Cognito tokens, the frontend server."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from chalicelib.adapters.cognito import CognitoUsers
from chalicelib.errors import UnauthorizedError
from devstack.bootstrap import MAX_RECEIVE_COUNT, QUEUE_VISIBILITY_TIMEOUT, bootstrap
from devstack.services import free_port
from devstack.web import WebServer, app_config
from devstack.worker import run_worker
from tests.support.devstack_process import DevStack
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


# --- bootstrap -------------------------------------------------------------------------------
def test_bootstrap_twice_changes_nothing(aws_stack: AwsStack) -> None:
    # GIVEN the stack the session bootstrapped
    first = dict(aws_stack.env)

    # WHEN bootstrap runs again against the same services
    again = bootstrap(
        aws_stack.moto_url,
        aws_stack.ddb_url,
        aws_stack.web_origin,
        state_dir=aws_stack.state_dir,
        write_env=False,
        stripe_url=aws_stack.stripe.url,
    )

    # THEN it finds everything it made: same ids and URLs, no second pool, no second grant
    assert again.env == first
    assert again.demo_password == aws_stack.demo_password
    cognito = aws_stack.client("cognito-idp")
    pools = [p for p in cognito.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == "vidproc-users"]
    assert len(pools) == 1
    from chalicelib.bootstrap import services

    repo = services().repo
    demo = repo.get_workspace("demo")
    assert demo is not None and demo.credits == 10
    assert repo.ledger_sum("demo") == 10


def test_bootstrap_writes_an_env_file_that_load_stack_env_reads(aws_stack: AwsStack, tmp_path: Path) -> None:
    from devstack.bootstrap import load_stack_env, read_stack_env, write_stack_env

    path = tmp_path / "stack.env"
    write_stack_env(aws_stack.env, path)
    assert read_stack_env(path) == aws_stack.env
    assert load_stack_env(path) == aws_stack.env  # every key already set: nothing changes
    assert load_stack_env(tmp_path / "missing.env") == {}


def test_jobs_queue_is_lambda_like_with_a_dead_letter_queue(aws_stack: AwsStack) -> None:
    sqs = aws_stack.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=aws_stack.env["JOBS_QUEUE_URL"], AttributeNames=["All"])[
        "Attributes"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=aws_stack.env["JOBS_DLQ_URL"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    assert int(attributes["VisibilityTimeout"]) == QUEUE_VISIBILITY_TIMEOUT >= 900
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT


def test_bucket_lets_the_frontend_upload_to_a_presigned_url(aws_stack: AwsStack) -> None:
    # GIVEN a presigned PUT made by the app's R2 adapter, as the API hands one out
    from chalicelib.adapters.r2 import R2Store
    from chalicelib.config import get_settings

    body = b"not really a video"
    key = f"uploads/test/{uuid.uuid4()}"
    upload = R2Store.from_settings(get_settings()).presign_upload(key, "video/mp4", len(body), 300)

    # WHEN the browser asks first (CORS preflight), then PUTs
    preflight = requests.options(
        upload.url,
        headers={
            "Origin": aws_stack.web_origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    put = requests.put(
        upload.url, data=body, headers={**upload.headers, "Origin": aws_stack.web_origin}, timeout=10
    )

    # THEN the origin is allowed, the ETag is readable by the page, and the object is there
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == aws_stack.web_origin
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    assert put.status_code == 200, put.text
    assert put.headers["Access-Control-Allow-Origin"] == aws_stack.web_origin
    assert "ETag" in put.headers["Access-Control-Expose-Headers"]
    s3 = aws_stack.client("s3")
    assert s3.head_object(Bucket=aws_stack.env["R2_BUCKET"], Key=key)["ContentLength"] == len(body)


# --- the SQS poller ----------------------------------------------------------------------------
@pytest.fixture
def queue(aws_stack: AwsStack) -> Iterator[str]:
    """A queue of this test's own (the jobs queue belongs to the app's tests)."""
    sqs = aws_stack.client("sqs")
    url = sqs.create_queue(QueueName=f"devstack-test-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


class RecordingHandler:
    """A handler that records its events and reports the records whose body says "fail"."""

    def __init__(self, result: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.result = result

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if self.result is not None:
            return self.result(event)
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "fail"]
        return {"batchItemFailures": failures}

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for e in self.events for r in e["Records"]]


def _counts(aws_stack: AwsStack, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    attributes = aws_stack.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _send(aws_stack: AwsStack, queue_url: str, *bodies: str) -> None:
    sqs = aws_stack.client("sqs")
    for body in bodies:
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )


def test_poller_gives_the_handler_a_lambda_shaped_event(aws_stack: AwsStack, queue: str) -> None:
    _send(aws_stack, queue, "one", "two", "three")
    handler = RecordingHandler()

    received = run_worker(once=True, handler=handler, queue_url=queue)

    assert received == 3
    records = handler.records
    assert sorted(r["body"] for r in records) == ["one", "three", "two"]
    assert len({r["messageId"] for r in records}) == 3
    assert len({r["receiptHandle"] for r in records}) == 3
    queue_arn = aws_stack.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == queue_arn
        assert record["awsRegion"] == aws_stack.region
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["attributes"]["SentTimestamp"].isdigit()
        assert record["attributes"]["ApproximateFirstReceiveTimestamp"].isdigit()
        assert record["md5OfBody"]
        assert record["messageAttributes"]["kind"]["stringValue"] == "test"
        assert record["messageAttributes"]["kind"]["dataType"] == "String"
    context = handler.contexts[0]
    assert context.function_name and context.aws_request_id and context.invoked_function_arn
    assert 0 < context.get_remaining_time_in_millis() <= 900_000
    assert context.memory_limit_in_mb == 2048


def test_poller_deletes_only_the_messages_the_handler_did_not_report(aws_stack: AwsStack, queue: str) -> None:
    # GIVEN two good messages and one the handler will report as failed
    _send(aws_stack, queue, "ok-1", "fail", "ok-2")

    # WHEN the poller runs the batch
    run_worker(once=True, handler=RecordingHandler(), queue_url=queue)

    # THEN the good ones are gone and the failed one is in flight, back after the visibility timeout
    assert _counts(aws_stack, queue) == (0, 1)


def test_a_reported_failure_comes_back_with_a_higher_receive_count(aws_stack: AwsStack, queue: str) -> None:
    # GIVEN a message the handler reports as failed once
    _send(aws_stack, queue, "fail")
    handler = RecordingHandler()
    run_worker(once=True, handler=handler, queue_url=queue)
    first = handler.records[0]
    assert first["attributes"]["ApproximateReceiveCount"] == "1"

    # WHEN its visibility timeout ends (cut short here) and the poller runs again
    aws_stack.client("sqs").change_message_visibility(
        QueueUrl=queue, ReceiptHandle=first["receiptHandle"], VisibilityTimeout=0
    )
    handler.result = lambda event: {"batchItemFailures": []}
    run_worker(once=True, handler=handler, queue_url=queue)

    # THEN the same message came back, counted twice, and is deleted now that it succeeded
    second = handler.records[1]
    assert second["messageId"] == first["messageId"]
    assert second["attributes"]["ApproximateReceiveCount"] == "2"
    assert _counts(aws_stack, queue) == (0, 0)


def test_when_the_handler_raises_no_message_is_deleted(aws_stack: AwsStack, queue: str) -> None:
    _send(aws_stack, queue, "a", "b")

    def crash(event: dict[str, Any]) -> Any:
        raise RuntimeError("the function crashed")

    run_worker(once=True, handler=RecordingHandler(crash), queue_url=queue)

    assert _counts(aws_stack, queue) == (0, 2)


def test_an_invalid_batch_response_keeps_the_whole_batch(aws_stack: AwsStack, queue: str) -> None:
    _send(aws_stack, queue, "a", "b")

    run_worker(
        once=True,
        handler=RecordingHandler(
            lambda event: {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]}
        ),
        queue_url=queue,
    )

    assert _counts(aws_stack, queue) == (0, 2)


def test_an_empty_or_missing_response_means_every_message_succeeded(aws_stack: AwsStack, queue: str) -> None:
    _send(aws_stack, queue, "a", "b")

    run_worker(once=True, handler=RecordingHandler(lambda event: None), queue_url=queue)

    assert _counts(aws_stack, queue) == (0, 0)


def test_a_message_failing_max_receive_count_times_moves_to_the_dlq(aws_stack: AwsStack) -> None:
    # GIVEN a queue with the jobs queue's redrive policy (maxReceiveCount 5)
    sqs = aws_stack.client("sqs")
    name = f"devstack-redrive-{uuid.uuid4().hex[:12]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})["QueueUrl"]
    _send(aws_stack, url, "fail")
    handler = RecordingHandler()

    # WHEN the handler fails it on every delivery
    for _ in range(MAX_RECEIVE_COUNT + 1):
        before = len(handler.records)
        run_worker(once=True, handler=handler, queue_url=url)
        if len(handler.records) > before:  # back in the queue at once: its visibility timeout "ends"
            receipt = handler.records[-1]["receiptHandle"]
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)

    # THEN it was delivered maxReceiveCount times, then moved to the DLQ
    assert len(handler.records) == MAX_RECEIVE_COUNT
    assert _counts(aws_stack, url) == (0, 0)
    assert _counts(aws_stack, dlq)[0] == 1
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


def test_a_worker_thread_stops_promptly(aws_stack: AwsStack, queue: str) -> None:
    import threading

    stop = threading.Event()
    handler = RecordingHandler()
    thread = threading.Thread(
        target=run_worker,
        kwargs={"stop_event": stop, "handler": handler, "queue_url": queue, "wait_seconds": 1},
    )
    thread.start()
    _send(aws_stack, queue, "x")
    deadline = time.monotonic() + 10
    while not handler.records and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [r["body"] for r in handler.records] == ["x"]


# --- Cognito -----------------------------------------------------------------------------------
def test_a_signed_in_users_tokens_verify_against_the_configured_jwks(aws_stack: AwsStack) -> None:
    # GIVEN a user made through the adapter
    email = f"verify-{uuid.uuid4().hex[:8]}@example.com"
    users = CognitoUsers()
    sub = users.ensure_user(email, "Verify-Passw0rd")

    # WHEN they sign in
    tokens = users.sign_in(email, "Verify-Passw0rd")

    # THEN both tokens verify against the JWKS URL from the settings, with issuer and audience
    env = aws_stack.env
    keys = jwt.PyJWKClient(env["COGNITO_JWKS_URL"])
    id_claims = jwt.decode(
        tokens["IdToken"],
        keys.get_signing_key_from_jwt(tokens["IdToken"]).key,
        algorithms=["RS256"],
        audience=env["COGNITO_CLIENT_ID"],
        issuer=env["COGNITO_ISSUER"],
    )
    assert id_claims["sub"] == sub and id_claims["token_use"] == "id"
    access_claims = jwt.decode(
        tokens["AccessToken"],
        keys.get_signing_key_from_jwt(tokens["AccessToken"]).key,
        algorithms=["RS256"],
        issuer=env["COGNITO_ISSUER"],
        options={"verify_aud": False},  # access tokens carry client_id, not aud
    )
    assert access_claims["client_id"] == env["COGNITO_CLIENT_ID"] and access_claims["token_use"] == "access"
    assert tokens["ExpiresIn"] > 0

    from chalicelib.config import get_settings

    settings = get_settings()
    assert settings.issuer == env["COGNITO_ISSUER"] and settings.jwks_url == env["COGNITO_JWKS_URL"]


def test_cognito_users_are_idempotent_and_wrong_passwords_are_unauthorized(aws_stack: AwsStack) -> None:
    email = f"idem-{uuid.uuid4().hex[:8]}@example.com"
    users = CognitoUsers()
    assert users.user_id_of(email) is None

    sub = users.ensure_user(email, "First-Passw0rd")
    assert users.ensure_user(email) == sub  # no password: the existing one stays
    assert users.ensure_user(email, "Second-Passw0rd") == sub
    assert users.user_id_of(email) == sub

    users.sign_in(email, "Second-Passw0rd")
    with pytest.raises(UnauthorizedError):
        users.sign_in(email, "First-Passw0rd")
    with pytest.raises(UnauthorizedError):
        users.sign_in(f"nobody-{email}", "Whatever-1a")


def test_stack_helpers_make_users_and_tokens(aws_stack: AwsStack) -> None:
    email = f"helper-{uuid.uuid4().hex[:8]}@example.com"
    added = aws_stack.add_user(email, f"ws-{uuid.uuid4().hex[:8]}", credits=3)
    claims = jwt.decode(aws_stack.token(email), options={"verify_signature": False})
    assert claims["sub"] == added.user_id
    assert aws_stack.token(aws_stack.demo_email)


# --- the frontend server -------------------------------------------------------------------------
def test_web_server_serves_the_generated_config(aws_stack: AwsStack, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>x</title>")
    web = WebServer(free_port(), app_config(aws_stack.env, "http://127.0.0.1:1"), directory=tmp_path).start()
    try:
        with urllib.request.urlopen(f"{web.url}/config.js") as response:
            body = response.read().decode()
        with urllib.request.urlopen(f"{web.url}/") as response:
            assert b"<title>x</title>" in response.read()
    finally:
        web.stop()
    assert body.startswith("window.APP_CONFIG = ")
    config = json.loads(body.removeprefix("window.APP_CONFIG = ").rstrip().rstrip(";"))
    assert config == {
        "apiBaseUrl": "http://127.0.0.1:1",
        "cognitoEndpoint": aws_stack.moto_url,
        "cognitoRegion": aws_stack.region,
        "cognitoClientId": aws_stack.env["COGNITO_CLIENT_ID"],
        "uploadMaxBytes": 50 * 1024**3,
    }
    assert not (tmp_path / "config.js").exists()


# --- `python -m devstack` ------------------------------------------------------------------------
@pytest.mark.e2e
def test_python_m_devstack_gets_ready_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    # GIVEN free ports and a state dir of the test's own (a developer's `make dev` may be running)
    stack = DevStack(tmp_path, settings={"WORKERS": "2"})
    try:
        # WHEN it starts, as a script's background job or a test runner's worker starts it: with
        # SIGINT ignored, which a child inherits (and Python keeps)
        stack.start(timeout=120, sigint_ignored=True)
        output = stack.log()
        assert f"ready: api={stack.api} web={stack.web}" in output, output[-3000:]
        assert "alice@example.com" in output
        password = (tmp_path / "demo-password").read_text().strip()
        assert password in output

        # THEN every part answers, and the stack's env is written for the CLI
        assert requests.get(f"{stack.api}/health", timeout=5).status_code == 200
        assert requests.get(f"{stack.web}/config.js", timeout=5).status_code == 200
        stripe = requests.get(
            f"http://127.0.0.1:{stack.ports['STRIPE_PORT']}/v1/checkout/sessions/cs_none", timeout=5
        )
        assert stripe.status_code == 401  # the Stripe stand-in answers, and wants its API key
        stack_env = (tmp_path / "stack.env").read_text()
        assert f"AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:{stack.ports['DDB_PORT']}" in stack_env
        assert f"STRIPE_API_BASE=http://127.0.0.1:{stack.ports['STRIPE_PORT']}" in stack_env
        assert len(stack.children) >= 5  # DynamoDB Local, chalice local, two workers, the sweeper, ...

        # WHEN Ctrl-C; THEN nothing it started is left
        assert stack.interrupt() == 0
    finally:
        stack.kill_all()


# --- the session fixtures ------------------------------------------------------------------------
@pytest.mark.e2e
def test_api_and_web_fixtures_agree_on_the_cors_origin(
    aws_stack: AwsStack, api_server: str, web_server: str
) -> None:
    assert web_server == aws_stack.web_origin
    assert requests.get(f"{api_server}/health", timeout=5).json() == {"status": "ok"}
    config = requests.get(f"{web_server}/config.js", timeout=5).text
    assert f'"apiBaseUrl": "{api_server}"' in config

    # the browser's preflight for an authenticated call from the page's origin is allowed
    preflight = requests.options(
        f"{api_server}/me",
        headers={
            "Origin": web_server,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=5,
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == web_server


def test_worker_fixture_starts_and_stops_the_real_handler(worker: Any) -> None:
    assert worker.running
    worker.stop()
    assert not worker.running
    worker.start()
    assert worker.running
