"""The notifier's entrypoints: the tables' change stream, the notifications queue, the webhook queue.

- `handle_changes`: DynamoDB stream records (jobs, attempts, workspaces) → events on the
  notifications queue. A failure raises: the stream redelivers the batch, and the events come
  again with the same ids (deduped downstream).
- `handle_messages`: the notifications queue, with partial batch responses: each event fans out
  to emails and one webhook delivery per endpoint (its first try queued on the webhook queue).
- `handle_deliveries`: the webhook queue, one message per invocation: one try of one webhook,
  bounded by its deadline, in a function of its own (a slow endpoint never holds up a fan-out).

None runs in the worker: a slow or failing endpoint never delays or fails a job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.bootstrap import notify_services
from chalicelib.domain import Job
from chalicelib.handlers.schemas import JobOut
from chalicelib.notifications import events, fanout, webhooks
from chalicelib.notifications.adapters.queue import decode
from chalicelib.notifications.domain import WebhookDeliveryMessage
from chalicelib.observability import logger


def job_json(job: Job) -> dict[str, Any]:
    """The job exactly as the API returns it."""
    tries = notify_services().settings.max_auto_attempts
    return JobOut.of(job, max_tries=tries).model_dump(mode="json", by_alias=True)


def handle_changes(raw_event: dict[str, Any]) -> dict[str, int]:
    changes = [c for c in (_change(r) for r in raw_event.get("Records", [])) if c is not None]
    sent = events.publish(notify_services(), changes, job_json)
    if sent:
        logger().info("events published", extra={"events": sent, "records": len(changes)})
    return {"records": len(changes), "events": sent}


def _change(record: dict[str, Any]) -> events.TableChange | None:
    # A record this code cannot read would fail the same way on every retry and hold up its
    # shard for a day: it is logged (for an operator) and skipped.
    from chalicelib.notifications.adapters.stream_records import change_of  # pynamodb: only this function

    try:
        return change_of(record)
    except (ValueError, KeyError, TypeError, AttributeError):
        logger().exception("unreadable stream record", extra={"event_id": record.get("eventID")})
        return None


def _partial(raw_event: dict[str, Any], context: Any, handler: Callable[[SQSRecord], str]) -> dict[str, Any]:
    """Each record through `handler`; the ones that raised are reported for SQS to deliver again."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    result = process_partial_response(
        event=raw_event, record_handler=handler, processor=processor, context=context
    )
    return dict(result)


def handle_messages(raw_event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _partial(raw_event, context, _record)


def _record(record: SQSRecord) -> str:
    message = decode(record.body)
    ctx = notify_services()
    if isinstance(message, WebhookDeliveryMessage):
        # Queued here before the webhook queue existed: forwarded, not tried in a fan-out.
        ctx.queue.send_delivery(message, 0)
        return "forwarded"
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    outcome = fanout.fan_out(ctx, message, payload)
    logger().info(
        "event fanned out",
        extra={
            "event_id": message["id"],
            "emails": outcome.emails,
            "pushes": outcome.pushes,
            "deliveries": outcome.deliveries,
        },
    )
    return "fanned out"


def handle_deliveries(raw_event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _partial(raw_event, context, _try)


def _try(record: SQSRecord) -> str:
    message = decode(record.body)
    if not isinstance(message, WebhookDeliveryMessage):
        raise ValueError("An event on the webhook queue")  # not ours to fan out: redriven to the DLQ
    what = webhooks.deliver(notify_services(), message)
    logger().info(
        "webhook try",
        extra={
            "endpoint_id": message.endpoint_id,
            "delivery_id": message.delivery_id,
            "attempt": message.attempt,
            "outcome": what,
        },
    )
    return what
