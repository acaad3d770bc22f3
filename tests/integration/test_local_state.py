"""The pieces that keep the local stack's state (the whole stack's restart is in
test_local_stack_restart.py): which requests save moto's state before they are answered, an
object's bytes read from its blob file, a damaged state file, and the notifier's place in the
tables' streams."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack.moto_state import SERVICES, BlobFile, MotoState, classify
from devstack.notifier import Checkpoint, StreamPoller
from tests.support.stack import AwsStack


def _environ(method: str, path: str = "/", query: str = "", **headers: str) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return environ


def _signed(service: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=testing/20261205/us-east-1/{service}/aws4_request, SignedHeaders=host"
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (_environ("GET", "/vidproc-media/x", authorization=_signed("s3")), None),
        (_environ("HEAD", "/vidproc-media/x", authorization=_signed("s3")), None),
        (_environ("OPTIONS", "/vidproc-media/x"), None),
        (_environ("PUT", "/vidproc-media/x", authorization=_signed("s3")), (("s3",), False)),
        (  # the browser's presigned PUT: the credential is in the query string
            _environ(
                "PUT",
                "/vidproc-media/x",
                "X-Amz-Credential=testing%2F20261205%2Fus-east-1%2Fs3%2Faws4_request",
            ),
            (("s3",), False),
        ),
        (_environ("POST", x_amz_target="AmazonSQS.SendMessage"), (("sqs",), False)),
        (_environ("POST", x_amz_target="AmazonSQS.DeleteMessageBatch"), (("sqs",), False)),
        (_environ("POST", x_amz_target="AmazonSQS.ReceiveMessage"), (("sqs",), True)),
        (_environ("POST", x_amz_target="AmazonSQS.ChangeMessageVisibility"), (("sqs",), True)),
        (  # the dashboard's sign-in: unsigned, named by its target
            _environ("POST", x_amz_target="AWSCognitoIdentityProviderService.InitiateAuth"),
            (("cognito-idp",), False),
        ),
        (_environ("POST", x_amz_target="secretsmanager.CreateSecret"), (("secretsmanager",), False)),
        (_environ("POST", authorization=_signed("ses")), (("ses", "sesv2"), False)),
        (_environ("POST", "/moto-api/reset"), (SERVICES, False)),
        (_environ("GET", "/moto-api/data.json"), None),
        (_environ("POST", "/somewhere"), (SERVICES, False)),  # unknown: everything is saved
    ],
)
def test_each_request_that_changes_a_service_names_it(
    environ: dict[str, Any], expected: tuple[tuple[str, ...], bool] | None
) -> None:
    assert classify(environ) == expected


def test_a_blob_file_reads_like_the_buffer_it_replaces_and_copies_itself_before_a_write(
    tmp_path: Path,
) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"0123456789")
    buffer = BlobFile(blob)
    buffer.seek(0)
    assert buffer.read() == b"0123456789"
    buffer.seek(2)
    assert buffer.read(3) == b"234" and buffer.read(2) == b"56" and buffer.tell() == 7
    assert buffer.seek(0, 2) == 10

    buffer.seek(0)
    buffer.truncate()
    buffer.write(b"new")
    buffer.seek(0)
    assert buffer.read() == b"new" and buffer.dirty
    assert blob.read_bytes() == b"0123456789"  # a blob never changes once written
    buffer.close()


def test_a_damaged_state_file_is_set_aside_and_that_service_starts_empty(tmp_path: Path) -> None:
    state = MotoState(tmp_path)
    with state.file("sqs").open("wb") as f:
        pickle.dump({"format": 1, "moto": "0"}, f)
        f.write(b"not a pickle")
    restored = state.restore()
    assert restored.services == [] and list(restored.failed) == ["sqs"]
    assert not state.file("sqs").exists()
    assert [p.name.split(".unreadable-")[0] for p in tmp_path.iterdir()] == ["sqs.pickle"]


# --- the notifier's place in the streams ---------------------------------------------------------
@pytest.fixture
def table(aws_stack: AwsStack) -> Any:
    ddb = aws_stack.client("dynamodb")
    name = f"checkpoint-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )

    def put(*keys: str) -> None:
        for key in keys:
            ddb.put_item(TableName=name, Item={"k": {"S": key}})

    put.name = name  # type: ignore[attr-defined]
    yield put
    ddb.delete_table(TableName=name)


class Seen:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        self.keys += [r["dynamodb"]["Keys"]["k"]["S"] for r in event["Records"]]


def _drain(poller: StreamPoller) -> None:
    while poller.poll_once():
        pass


def test_the_notifier_goes_on_where_it_stopped_and_a_first_start_skips_the_history(
    aws_stack: AwsStack, table: Any, tmp_path: Path
) -> None:
    # GIVEN a stream with history, and a notifier that never ran here
    table("old-1", "old-2")
    checkpoint = tmp_path / "checkpoint.json"
    seen = Seen()
    poller = StreamPoller(seen, [table.name], aws_stack.region, Checkpoint(checkpoint))

    # WHEN changes come, and it handles them
    table("a", "b")
    _drain(poller)

    # THEN it starts at the stream's end: the history made no events
    assert seen.keys == ["a", "b"]

    # WHEN it stops, changes happen meanwhile, and it starts again on its checkpoint
    table("while-stopped")
    again = Seen()
    _drain(StreamPoller(again, [table.name], aws_stack.region, Checkpoint(checkpoint)))

    # THEN it handles exactly what it had not
    assert again.keys == ["while-stopped"]
