"""The local stand-in for Lambda's SQS event source mapping: poll, invoke, delete what succeeded.

As on AWS (with ReportBatchItemFailures): the handler gets a real-shaped SQS event; the messages
it lists in `batchItemFailures` stay in the queue and come back after the visibility timeout;
the others are deleted. When the handler raises, or answers with something Lambda would reject,
the whole batch stays. Run it as `python -m devstack.worker [--once]`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack import configure_logging
from devstack.lambda_events import LocalLambdaContext, sqs_event

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

FUNCTION_NAME = "vidproc-dev-handle_job_messages"


@dataclass
class BatchOutcome:
    received: int
    deleted: int
    failed: int  # stay in the queue: reported, or the whole batch when the handler raised


def default_handler() -> Handler:
    import app  # the Chalice app: imported when the worker starts, not when this module is

    handler: Handler = app.handle_job_messages
    return handler


def sqs_client() -> Any:
    from chalicelib.config import get_settings

    return boto3.session.Session().client("sqs", region_name=get_settings().aws_region)


def queue_url_of(sqs: Any) -> str:
    from chalicelib.config import get_settings

    settings = get_settings()
    if settings.jobs_queue_url:
        return settings.jobs_queue_url
    return str(sqs.get_queue_url(QueueName=settings.jobs_queue_name)["QueueUrl"])


def failed_ids(response: Any, message_ids: set[str]) -> set[str] | None:
    """The ids the handler reported as failed; None when Lambda would fail the whole batch."""
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return set()  # Lambda ignores a response that is not a batch response: all succeeded
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not item or item not in message_ids:
            return None  # empty, missing or unknown id: Lambda treats the batch as failed
        ids.add(item)
    return ids


class Poller:
    """One queue, one handler; `poll_once` is one ReceiveMessage and one invocation."""

    def __init__(
        self,
        handler: Handler,
        sqs: Any,
        queue_url: str,
        region: str,
        wait_seconds: int = 2,
        batch_size: int = 1,  # as the deployed function (app.py)
    ) -> None:
        self.handler = handler
        self.sqs = sqs
        self.queue_url = queue_url
        self.region = region
        self.wait_seconds = wait_seconds
        self.batch_size = batch_size
        self.queue_arn = str(
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )

    def receive(self, wait_seconds: int | None = None) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def poll_once(self, wait_seconds: int | None = None) -> BatchOutcome:
        messages = self.receive(wait_seconds)
        if not messages:
            return BatchOutcome(0, 0, 0)
        return self.invoke(messages)

    def invoke(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        event = sqs_event(messages, self.queue_arn, self.region)
        context = LocalLambdaContext(FUNCTION_NAME, region=self.region)
        ids = {m["MessageId"] for m in messages}
        try:
            response = self.handler(event, context)
        except Exception:
            log.exception("the handler raised: the whole batch of %d stays in the queue", len(messages))
            return BatchOutcome(len(messages), 0, len(messages))
        failed = failed_ids(response, ids)
        if failed is None:
            log.error("invalid batchItemFailures %r: the whole batch stays in the queue", response)
            return BatchOutcome(len(messages), 0, len(messages))
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(done)
        return BatchOutcome(len(messages), len(done), len(failed))

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        for failure in result.get("Failed", []):
            log.warning("could not delete message %s: %s", failure.get("Id"), failure.get("Message"))


def run_worker(
    once: bool = False,
    stop_event: threading.Event | None = None,
    handler: Handler | None = None,
    wait_seconds: int = 2,
    batch_size: int = 1,  # as the deployed function (app.py)
    sqs: Any = None,
    queue_url: str | None = None,
) -> int:
    """Poll the jobs queue and call the worker handler until `stop_event` is set.

    `once`: process what is in the queue now (until a receive comes back empty) and return.
    Returns the number of messages received. A short `wait_seconds` keeps stopping quick.
    """
    from chalicelib.config import get_settings

    stop = stop_event or threading.Event()
    sqs = sqs or sqs_client()
    poller = Poller(
        handler or default_handler(),
        sqs,
        queue_url or queue_url_of(sqs),
        get_settings().aws_region,
        wait_seconds=wait_seconds,
        batch_size=batch_size,
    )
    log.info("worker polling %s", poller.queue_url)
    if once:
        return _drain_once(poller)
    received = 0
    while not stop.is_set():
        try:
            outcome = poller.poll_once()
        except (BotoCoreError, ClientError) as exc:  # the queue is unreachable: try again, as Lambda does
            log.warning("could not poll the queue (%s); retrying", exc)
            stop.wait(2)
            continue
        received += outcome.received
        _log_outcome(outcome)
    return received


def _drain_once(poller: Poller) -> int:
    """Invoke the handler once per message in the queue now; a message that comes back is left alone."""
    seen: set[str] = set()
    while True:
        wait = 0 if seen else 1  # moto answers a short poll exactly; the first one waits a little
        fresh = [m for m in poller.receive(wait_seconds=wait) if m["MessageId"] not in seen]
        if not fresh:
            return len(seen)
        seen.update(m["MessageId"] for m in fresh)
        _log_outcome(poller.invoke(fresh))


def _log_outcome(outcome: BatchOutcome) -> None:
    if outcome.received:
        log.info(
            "batch: %d received, %d deleted, %d left in the queue",
            outcome.received,
            outcome.deleted,
            outcome.failed,
        )


def main(argv: list[str] | None = None) -> None:

    from devstack.bootstrap import load_stack_env

    parser = argparse.ArgumentParser(prog="python -m devstack.worker", description=__doc__)
    parser.add_argument("--once", action="store_true", help="process what is queued now, then exit")
    args = parser.parse_args(argv)
    configure_logging("worker")
    load_stack_env()
    stop = threading.Event()

    # SIGTERM/SIGINT: finish the batch in hand, then exit (a second signal kills at once).
    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():
            raise SystemExit(1)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_worker(once=args.once, stop_event=stop)


if __name__ == "__main__":
    main()
