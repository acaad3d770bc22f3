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

import contextlib
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.adapters.sqs import decode
from chalicelib.bootstrap import services
from chalicelib.domain import QueueMessage, ReprocessRequest
from chalicelib.errors import QueueSendError, ValidationError
from chalicelib.observability import count, logger
from chalicelib.processing import autoretry, reprocess, worker
from chalicelib.processing.context import Services


class HandedBack(Exception):
    """Not claimed: the invocation could not finish it. SQS redelivers it to another invocation."""


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
        return _dead_letter(svc, record, error.message)
    if isinstance(message, ReprocessRequest):
        report = reprocess.reprocess(svc, message, actor=f"queue:{record.message_id}")
        return f"reprocessed {report.requeued}"
    receive_count = record.attributes.approximate_receive_count
    logger().info(
        "message received",
        extra={
            "job_id": message.job_id,
            "workspace_id": message.workspace_id,
            "attempt": message.attempt,
            "receive_count": receive_count,
            "message_id": record.message_id,
        },
    )
    remaining = lambda_context.get_remaining_time_in_millis() if lambda_context is not None else None
    if remaining is not None and not worker.has_time_for_a_transcode(svc, remaining):
        _hand_back(svc, record, message, remaining)
    delivery = worker.Delivery(record.receipt_handle, int(receive_count or 1))
    try:
        return worker.process(svc, message, delivery).value
    except Exception:
        if delivery.receive_count >= svc.settings.max_receive_count:
            logger().exception("last delivery failed; giving the job up", extra={"job_id": message.job_id})
            autoretry.give_up(svc, message)
        raise  # the message stays (or goes to the DLQ) for an operator to see


def _dead_letter(svc: Services, record: SQSRecord, reason: str) -> str:
    """A malformed body: to the DLQ at once, nothing charged; raises if even that fails."""
    svc.queue.dead_letter(record.body, reason)
    count("MessagesDeadLettered")
    logger().warning(
        "malformed message moved to the DLQ", extra={"message_id": record.message_id, "reason": reason}
    )
    return "dead-lettered"


def _hand_back(svc: Services, record: SQSRecord, message: QueueMessage, remaining: int) -> None:
    logger().warning(
        "too little invocation time left; handing the record back",
        extra={"job_id": message.job_id, "remaining_ms": remaining, "message_id": record.message_id},
    )
    count("RecordsHandedBack")
    with contextlib.suppress(QueueSendError):  # come back now, not after the visibility timeout
        svc.queue.extend_visibility(record.receipt_handle, 0)
    raise HandedBack(message.job_id)
