"""The SQS-triggered worker: Powertools' BatchProcessor with partial batch responses.

Every record is one attempt. A record is reported failed (and redelivered by SQS) only when its
outcome could not be recorded; a job that fails for a reason a person can read is a processed
record whose job is now `failed`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.adapters.sqs import decode
from chalicelib.bootstrap import services
from chalicelib.observability import logger
from chalicelib.processing import worker


def handle(raw_event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    result = process_partial_response(
        event=raw_event, record_handler=_record, processor=processor, context=context
    )
    return dict(result)


def _record(record: SQSRecord) -> str:
    ref = decode(record.body)
    receive_count = record.attributes.approximate_receive_count
    logger().info(
        "message received",
        extra={
            "job_id": ref.job_id,
            "workspace_id": ref.workspace_id,
            "attempt": ref.attempt,
            "task": ref.task,
            "receive_count": receive_count,
            "message_id": record.message_id,
        },
    )
    return worker.process(services(), ref, int(receive_count or 1)).value
