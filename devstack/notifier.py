"""The local stand-in for the notifier's event sources: the tables' streams and the two queues.

- Lambda's DynamoDB stream event source: poll the streams of the jobs, attempts and workspaces
  tables (DynamoDB Local supports Streams) and call `app.handle_table_changes` with real-shaped
  records; a batch whose handler raised is read again from its first record (as Lambda retries).
- Lambda's SQS event source on the notifications queue: `app.handle_notifications`, through the
  same poller the workers use (partial batch responses honoured).
- Lambda's SQS event source on the webhook queue: `app.handle_webhook_deliveries`, one message
  per invocation, on NOTIFIER_WEBHOOK_WORKERS threads at once (default 4), as Lambda runs that
  function with a reserved concurrency: a slow endpoint holds one of them, not all.

Run it as `python -m devstack.notifier`. Like the event source mapping, it keeps its place in
each stream: after every batch it handled, the last sequence number per shard goes to
`notifier-checkpoint.json` in the stack's state folder, and a restart goes on from there, so a
change made while it was stopped (a job that completed as the stack shut down) still makes its
event. A record read twice makes the same event id, which everything downstream dedupes. With
no checkpoint (the first run, FRESH=1) it starts at the streams' end; the tests' notifier, which
has no checkpoint file, always does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack import configure_logging
from devstack.lambda_events import LocalLambdaContext, stream_event
from devstack.worker import Poller

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
STREAM_FUNCTION = "vidproc-dev-handle_table_changes"
SHARD_REFRESH_SECONDS = 5.0
WEBHOOK_WORKERS = 4  # NOTIFIER_WEBHOOK_WORKERS: the webhook function's concurrency, locally


class Checkpoint:
    """Where each stream was read to: {stream ARN: {shard id: last sequence number handled}}."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.positions: dict[str, dict[str, str]] = {}
        if path is not None and path.exists():
            with contextlib.suppress(ValueError, OSError):
                self.positions = json.loads(path.read_text())

    def start_of(self, arn: str, shard: str) -> tuple[str, str | None] | None:
        """(iterator type, sequence number) to resume this shard from; None when this checkpoint
        never read its stream (start at its end)."""
        if arn not in self.positions:
            return None
        sequence = self.positions[arn].get(shard)
        return ("AFTER_SEQUENCE_NUMBER", sequence) if sequence else ("TRIM_HORIZON", None)

    def advance(self, arn: str, shard: str, sequence: str | None) -> None:
        shards = self.positions.setdefault(arn, {})
        if sequence:
            shards[shard] = sequence
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.positions, indent=1))
            tmp.replace(self.path)


class StreamPoller:
    """Every shard of the given tables' streams, read in order; one invocation per non-empty read."""

    def __init__(
        self, handler: Handler, tables: list[str], region: str, checkpoint: Checkpoint | None = None
    ) -> None:
        self.handler = handler
        self.region = region
        self.checkpoint = checkpoint or Checkpoint(None)
        session = boto3.session.Session()
        self.ddb = session.client("dynamodb", region_name=region)
        self.streams = session.client("dynamodbstreams", region_name=region)
        self.arns = [self.ddb.describe_table(TableName=t)["Table"]["LatestStreamArn"] for t in tables]
        self.iterators: dict[tuple[str, str], str | None] = {}
        self._refreshed = 0.0
        self._refresh(first=True)
        for arn in self.arns:
            self.checkpoint.advance(arn, "", None)  # every stream read from here on is known

    def _refresh(self, first: bool = False) -> None:
        """Find new shards. At the start, each resumes where the checkpoint says; a shard born
        later is read from its beginning."""
        for arn in self.arns:
            for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                key = (arn, shard["ShardId"])
                if key in self.iterators:
                    continue
                self.iterators[key] = self._start(arn, shard["ShardId"], first)
        self._refreshed = time.monotonic()

    def _start(self, arn: str, shard: str, first: bool) -> str:
        if not first:
            return self._iterator(arn, shard, "TRIM_HORIZON")
        if self.checkpoint.path is None:
            return self._iterator(arn, shard, "LATEST")
        resume = self.checkpoint.start_of(arn, shard)
        if resume is None:  # never read: from its end, and remember where that is
            end = self._end_of(arn, shard)
            self.checkpoint.advance(arn, shard, end)
            resume = ("AFTER_SEQUENCE_NUMBER", end) if end else ("TRIM_HORIZON", None)
        try:
            return self._iterator(arn, shard, *resume)
        except ClientError as exc:  # the position was trimmed away: what is left
            if exc.response.get("Error", {}).get("Code") != "TrimmedDataAccessException":
                raise
            return self._iterator(arn, shard, "TRIM_HORIZON")

    def _end_of(self, arn: str, shard: str) -> str | None:
        """The last record's sequence number in a shard (None: it has none), read without handling."""
        iterator: str | None = self._iterator(arn, shard, "TRIM_HORIZON")
        last = None
        while iterator:
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            records = answer.get("Records", [])
            if not records:
                return last
            last = records[-1]["dynamodb"]["SequenceNumber"]
            iterator = answer.get("NextShardIterator")
        return last

    def _iterator(self, arn: str, shard_id: str, kind: str, sequence: str | None = None) -> str:
        extra = {"SequenceNumber": sequence} if sequence else {}
        answer = self.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard_id, ShardIteratorType=kind, **extra
        )
        return str(answer["ShardIterator"])

    def poll_once(self) -> int:
        if time.monotonic() - self._refreshed > SHARD_REFRESH_SECONDS:
            self._refresh()
        handled = 0
        for key, iterator in list(self.iterators.items()):
            if iterator is None:
                continue  # a closed shard, read to its end
            try:
                answer = self.streams.get_records(ShardIterator=iterator, Limit=100)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TrimmedDataAccessException":
                    raise
                # DynamoDB Local answers this for a LATEST iterator of a shard that had no
                # record yet: read that shard from its (empty) beginning instead.
                self.iterators[key] = self._iterator(key[0], key[1], "TRIM_HORIZON")
                continue
            records = answer.get("Records", [])
            if records and not self._invoke(key[0], records):
                self.iterators[key] = self._iterator(
                    key[0], key[1], "AT_SEQUENCE_NUMBER", records[0]["dynamodb"]["SequenceNumber"]
                )
                continue
            handled += len(records)
            self.iterators[key] = answer.get("NextShardIterator")
            if records:
                self.checkpoint.advance(key[0], key[1], records[-1]["dynamodb"]["SequenceNumber"])
        return handled

    def _invoke(self, arn: str, records: list[dict[str, Any]]) -> bool:
        context = LocalLambdaContext(STREAM_FUNCTION, region=self.region, timeout_seconds=60)
        try:
            self.handler(stream_event(records, arn, self.region), context)
        except Exception:
            log.exception("the stream handler raised: the %d records will be read again", len(records))
            return False
        return True


@dataclass(frozen=True)
class Handlers:
    changes: Handler
    messages: Handler
    deliveries: Handler


def default_handlers() -> Handlers:
    import app  # the Chalice app: imported when the notifier starts

    return Handlers(app.handle_table_changes, app.handle_notifications, app.handle_webhook_deliveries)


def stream_tables() -> list[str]:
    from chalicelib.adapters.dynamodb.models import STREAM_KINDS
    from chalicelib.config import get_settings

    settings = get_settings()
    return [settings.table_name(kind) for kind in STREAM_KINDS]


def queue_poller(handler: Handler, url: str, name: str, batch_size: int, wait_seconds: int = 1) -> Poller:
    from chalicelib.config import get_settings

    settings = get_settings()
    sqs = boto3.session.Session().client("sqs", region_name=settings.aws_region)
    url = url or sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return Poller(handler, sqs, url, settings.aws_region, wait_seconds=wait_seconds, batch_size=batch_size)


def notifications_poller(handler: Handler, wait_seconds: int = 1) -> Poller:
    """The notifications queue, as app.py's event source: batches of 10."""
    from chalicelib.config import get_settings

    s = get_settings()
    return queue_poller(handler, s.notifications_queue_url, s.notifications_queue_name, 10, wait_seconds)


def webhook_poller(handler: Handler, wait_seconds: int = 1) -> Poller:
    """The webhook queue, as app.py's event source: one message per invocation."""
    from chalicelib.config import get_settings

    s = get_settings()
    return queue_poller(handler, s.webhook_queue_url, s.webhook_queue_name, 1, wait_seconds)


def _polling(poller: Poller) -> Callable[[], int]:
    return lambda: poller.poll_once().received


def _loop(name: str, step: Callable[[], Any], stop: threading.Event, idle: float) -> None:
    while not stop.is_set():
        try:
            if not step():
                stop.wait(idle)
        except (BotoCoreError, ClientError) as exc:
            log.warning("%s: %s; trying again", name, exc)
            stop.wait(1)


class Notifier:
    """Every poller on threads of this process (the local stack, and the tests' fixture): the
    streams, the notifications queue, and `webhook_workers` pollers of the webhook queue."""

    def __init__(
        self,
        handlers: Handlers | None = None,
        idle_seconds: float = 0.2,
        webhook_workers: int | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        from chalicelib.config import get_settings

        chosen = handlers or default_handlers()
        workers = webhook_workers or int(os.environ.get("NOTIFIER_WEBHOOK_WORKERS") or WEBHOOK_WORKERS)
        self.stop_event = threading.Event()
        self.streams = StreamPoller(
            chosen.changes, stream_tables(), get_settings().aws_region, Checkpoint(checkpoint)
        )
        self.queue = notifications_poller(chosen.messages)
        self.webhooks = [webhook_poller(chosen.deliveries) for _ in range(workers)]
        steps: list[tuple[str, Callable[[], Any], float]] = [
            ("streams", self.streams.poll_once, idle_seconds),
            ("queue", lambda: self.queue.poll_once().received, 0),
        ]
        steps += [(f"webhooks-{n}", _polling(p), 0) for n, p in enumerate(self.webhooks, 1)]
        self.threads = [
            threading.Thread(target=_loop, args=(name, step, self.stop_event, idle), name=name, daemon=True)
            for name, step, idle in steps
        ]

    def start(self) -> Notifier:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)


def checkpoint_path() -> Path:
    from devstack import state_dir

    return state_dir() / "notifier-checkpoint.json"


def main() -> None:
    from devstack.bootstrap import load_stack_env

    configure_logging("notifier")
    load_stack_env()
    notifier = Notifier(checkpoint=checkpoint_path()).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    signal.signal(signal.SIGINT, lambda signum, frame: done.set())
    log.info("notifier: reading the table streams, the notifications queue and the webhook queue")
    done.wait()
    notifier.stop()


if __name__ == "__main__":
    main()
