"""The SQS-triggered worker: Powertools' BatchProcessor with partial batch responses.

Every record is one attempt (or a reprocess request). A record is reported failed (and
redelivered by SQS) only when its outcome could not be recorded, or when the invocation has too
little time left to run it; a job that fails for a reason a person can read is a processed
record whose job is now `failed` (or queued again for a free automatic try).

- A body that is not one of ours can never succeed: it goes straight to the dead-letter queue,
  and the rest of its batch goes on.
- On the delivery after which SQS would move the message to the DLQ (ApproximateReceiveCount =
  MAX_RECEIVE_COUNT), a record that still fails gives up its job: failed, credit refunded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.adapters.sqs import decode
from chalicelib.bootstrap import services
from chalicelib.domain import ReprocessRequest
from chalicelib.errors import ValidationError
from chalicelib.observability import logger
from chalicelib.processing import reprocess, worker


def handle(raw_event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    result = process_partial_response(
        event=raw_event, record_handler=_record, processor=processor, context=context
    )
    return dict(result)


def _record(record: SQSRecord, lambda_context: Any = None) -> str:
    svc = services()
    try:
        message = decode(record.body)
    except ValidationError as error:
        worker.reject_malformed(svc, record.body, error.message)
        return "dead-lettered"
    if isinstance(message, ReprocessRequest):
        if not message.request_id:  # a redelivery of this message is the same request
            message = dataclasses.replace(message, request_id=f"sqs-{record.message_id}")
        report = reprocess.reprocess(svc, message, actor=f"queue:{record.message_id}")
        return f"reprocessed {report.requeued}"
    receive_count = int(record.attributes.approximate_receive_count or 1)
    logger().info(
        "message received",
        extra={
            "job_id": message.job_id,
            "workspace_id": message.workspace_id,
            "attempt": message.attempt,
            "task": message.task,
            "receive_count": receive_count,
            "message_id": record.message_id,
        },
    )
    remaining = lambda_context.get_remaining_time_in_millis() if lambda_context is not None else None
    receipt = worker.Receipt(record.receipt_handle, receive_count)
    return worker.deliver(svc, message, receipt, remaining).value
