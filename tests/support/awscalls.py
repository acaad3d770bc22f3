"""Counting the AWS calls a piece of code makes, with botocore's own event hooks.

Each client (the one DynamoDB client every model and transaction shares, the R2 client, the SQS
client) emits `before-send.<service>.<Operation>` once per HTTP round trip (a retry included);
a handler registered on the clients' event systems counts them. Only the calls of the thread
that opened the block and of the thread pools code starts (batch retry, boto3's transfers) are
counted: the suite's background worker and notifier threads share the same clients.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.processing.context import Services

_SHORT = {"dynamodb": "ddb", "s3": "s3", "sqs": "sqs"}


def clients_of(svc: Services) -> list[Any]:
    from chalicelib.adapters.dynamodb.connection import connection

    return [connection().client, getattr(svc.store, "client", None), getattr(svc.queue, "client", None)]


@contextmanager
def counting(svc: Services) -> Iterator[Counter[str]]:
    """Count the round trips made through the services' clients inside the block, as
    {"ddb:GetItem": 1, "s3:HeadObject": 1, ...}."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    me = threading.get_ident()

    def count(event_name: str, **_: Any) -> None:
        if threading.get_ident() != me and not threading.current_thread().name.startswith("ThreadPool"):
            return  # another test's background thread on the shared client
        _event, service, operation = event_name.split(".", 2)
        with lock:
            counts[f"{_SHORT.get(service, service)}:{operation}"] += 1

    clients = [c for c in clients_of(svc) if c is not None]
    for client in clients:
        client.meta.events.register("before-send", count, unique_id="awscalls-count")
    try:
        yield counts
    finally:
        for client in clients:
            client.meta.events.unregister("before-send", unique_id="awscalls-count")


def shape(counts: Counter[str]) -> str:
    """'ddb:GetItem x2, s3:HeadObject, sqs:SendMessage', in a stable order."""
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in sorted(counts.items())) or "none"
