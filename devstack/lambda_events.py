"""Lambda-shaped events and a Lambda-like context, so local code calls the real handlers as AWS does."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account


class LocalLambdaContext:
    """What Lambda's Python runtime passes as `context`, with the attributes Powertools reads."""

    def __init__(
        self,
        function_name: str,
        region: str = "us-east-1",
        timeout_seconds: int = 900,
        memory_limit_in_mb: int = 2048,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API shape (StringValue, BinaryValue as bytes) to Lambda's (stringValue, base64 text)."""
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS event from one message of ReceiveMessage (AttributeNames=All)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {str(k): str(v) for k, v in message.get("Attributes", {}).items()},
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(message, queue_arn, region) for message in messages]}


def scheduled_event(rule_name: str, region: str = "us-east-1") -> dict[str, Any]:
    """An EventBridge (CloudWatch Events) scheduled event, as @app.schedule receives it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


def stream_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One record of a DynamoDB stream event, from one record of GetRecords."""
    body = dict(record["dynamodb"])
    stamp = body.get("ApproximateCreationDateTime")
    if isinstance(stamp, datetime):  # boto3 parses it; Lambda delivers epoch seconds
        body["ApproximateCreationDateTime"] = stamp.timestamp()
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }


def stream_event(records: Sequence[Mapping[str, Any]], stream_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [stream_record(r, stream_arn, region) for r in records]}
