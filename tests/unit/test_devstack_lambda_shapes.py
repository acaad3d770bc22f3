"""The local Lambda stand-ins: event shapes and how a batch response is read, as Lambda reads it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from devstack.lambda_events import LocalLambdaContext, scheduled_event, sqs_event
from devstack.worker import failed_ids
from tests.support import sqs_events

MESSAGE: dict[str, Any] = {
    "MessageId": "m-1",
    "ReceiptHandle": "rh-1",
    "MD5OfBody": "abc",
    "Body": '{"jobId": "j"}',
    "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
    "MessageAttributes": {
        "kind": {"DataType": "String", "StringValue": "job"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    },
}


def test_sqs_event_has_lambdas_record_shape() -> None:
    event = sqs_event([MESSAGE], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")

    (record,) = event["Records"]
    assert record["messageId"] == "m-1" and record["receiptHandle"] == "rh-1"
    assert record["body"] == '{"jobId": "j"}' and record["md5OfBody"] == "abc"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "job"
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    assert record["messageAttributes"]["blob"]["dataType"] == "Binary"


def test_the_tests_sqs_records_are_the_local_stacks_records_with_defaults() -> None:
    event = sqs_events.event(sqs_events.record('{"jobId": "j"}', 3, message_id="m-9"), sqs_events.record("x"))

    first, second = (SQSRecord(r) for r in event["Records"])
    assert (first.message_id, first.receipt_handle, first.body) == ("m-9", "rh-m-9", '{"jobId": "j"}')
    assert first.attributes.approximate_receive_count == "3"
    assert first.event_source_arn == sqs_events.JOBS_QUEUE_ARN and first.aws_region == "us-east-1"
    assert second.attributes.approximate_receive_count == "1"
    assert second.receipt_handle == f"rh-{second.message_id}" and second.message_id != first.message_id


def test_scheduled_event_and_context_look_like_lambdas() -> None:
    event = scheduled_event("vidproc-dev-sweep")
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"][0].endswith(":rule/vidproc-dev-sweep")

    context = LocalLambdaContext("fn", timeout_seconds=60)
    assert context.invoked_function_arn.endswith(":function:fn")
    assert 0 < context.get_remaining_time_in_millis() <= 60_000


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}, {"a", "b"}),
    ],
)
def test_batch_responses_lambda_accepts(response: Any, expected: set[str]) -> None:
    assert failed_ids(response, {"a", "b"}) == expected


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "a"}]},
        {"batchItemFailures": [{"itemIdentifier": "unknown"}]},
        {"batchItemFailures": "a"},
    ],
)
def test_batch_responses_that_fail_the_whole_batch(response: Any) -> None:
    assert failed_ids(response, {"a", "b"}) is None
