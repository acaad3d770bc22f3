"""SQS events for calling a Lambda handler in a test: one record per message body.

The record's shape is written once, by the local stack's poller (devstack.lambda_events, which
turns a ReceiveMessage answer into Lambda's event); this module only fills in what a test does
not care about: an id, a receipt handle ("rh-<id>"), the jobs queue, the region.
"""

from __future__ import annotations

import uuid
from typing import Any

from devstack.lambda_events import sqs_record

REGION = "us-east-1"
JOBS_QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:vidproc-jobs"


def record(
    body: str,
    receive_count: int = 1,
    message_id: str | None = None,
    receipt_handle: str | None = None,
    queue_arn: str = JOBS_QUEUE_ARN,
) -> dict[str, Any]:
    """One record of an SQS event, as Lambda delivers it; `receive_count` is the message's
    ApproximateReceiveCount (its delivery number)."""
    message_id = message_id or str(uuid.uuid4())
    received = {
        "MessageId": message_id,
        "ReceiptHandle": receipt_handle or f"rh-{message_id}",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0"},
        "MD5OfBody": "",
    }
    return sqs_record(received, queue_arn, REGION)


def event(*records: dict[str, Any]) -> dict[str, Any]:
    """An SQS event of these records, in this order."""
    return {"Records": list(records)}
