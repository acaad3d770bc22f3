"""Every AWS call this process makes, seen through botocore's own event hooks.

The one place where tests and benchmarks see the calls the code makes. A hooked client records
each call that gets an answer: its service and operation, its parameters, when it started, how
long it took, the thread that made it, and how many HTTP round trips it took (`before-send`
fires once per try, so a retry is counted).

- `install()` hooks every botocore client created from then on (boto3's, pynamodb's and
  Powertools' alike); `record()` collects the calls made inside a block, in any thread.
- `counting(svc)` counts the round trips of the calling thread (and the thread pools it starts)
  inside a block, as {"ddb:GetItem": 1, ...}, hooking the services' clients for the block when
  `install()` did not (they may have been built before).
- `iam_actions()` turns calls into the IAM actions and resources they need (each item of a
  TransactWriteItems is authorised as its own PutItem / UpdateItem / DeleteItem /
  ConditionCheckItem); `shape()` writes counts on one line.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from chalicelib.processing.context import Services

_SHORT = {"dynamodb": "ddb"}  # how an operation is written: "ddb:GetItem", "s3:HeadObject", ...
_ORDER = {"ddb": 0, "s3": 1, "sqs": 2}  # shape(): DynamoDB first, then S3, then SQS, then the rest


@dataclass(frozen=True)
class Call:
    service: str  # botocore's service name: dynamodb, s3, sqs, secretsmanager, ...
    operation: str  # GetItem, TransactWriteItems, SendMessage, ...
    params: dict[str, Any]
    started: float  # time.perf_counter() when it was made
    seconds: float
    thread: int  # threading.get_ident() of the caller
    thread_name: str
    round_trips: int = 1  # HTTP requests sent for it (botocore's retries included)

    @property
    def op(self) -> str:
        """'ddb:GetItem', 's3:HeadObject', 'sqs:SendMessage', ..."""
        return f"{_SHORT.get(self.service, self.service)}:{self.operation}"


@dataclass
class Recording:
    calls: list[Call] = field(default_factory=list)
    thread: int = field(default_factory=threading.get_ident)  # the thread that opened it

    def operations(self) -> list[str]:
        return [f"{c.service}:{c.operation}" for c in self.calls]

    def own(self) -> list[Call]:
        """The calls of the thread that opened the recording and of the thread pools code starts
        (batch retry, boto3's transfers); not the test stack's background pollers (the local
        worker and notifier), which share the clients."""
        return [c for c in self.calls if c.thread == self.thread or c.thread_name.startswith("ThreadPool")]


_lock = threading.Lock()
_recordings: list[Recording] = []
_hooked: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["aws_calls_params"] = params


def _before(context: dict[str, Any], **_: Any) -> None:
    context["aws_calls_started"] = time.perf_counter()
    context["aws_calls_round_trips"] = 0


def _sending(request: Any, **_: Any) -> None:
    context = request.context  # the operation's context (the one before-call and after-call get)
    context["aws_calls_round_trips"] = context.get("aws_calls_round_trips", 0) + 1


def _after(model: Any, context: dict[str, Any], **_: Any) -> None:
    started = context.get("aws_calls_started", time.perf_counter())
    call = Call(
        service=model.service_model.service_name,
        operation=model.name,
        params=context.get("aws_calls_params", {}),
        started=started,
        seconds=time.perf_counter() - started,
        thread=threading.get_ident(),
        thread_name=threading.current_thread().name,
        round_trips=context.get("aws_calls_round_trips", 1),
    )
    with _lock:
        for recording in _recordings:
            recording.calls.append(call)


_HANDLERS = (
    ("provide-client-params", _keep_params, "aws_calls.params"),
    ("before-call", _before, "aws_calls.before"),
    ("before-send", _sending, "aws_calls.send"),
    ("after-call", _after, "aws_calls.after"),
)


def hook(client: Any) -> bool:
    """Record the client's calls; False when it already was hooked."""
    with _lock:
        if client in _hooked:
            return False
        _hooked.add(client)
    for event, handler, unique_id in _HANDLERS:
        client.meta.events.register(event, handler, unique_id=unique_id)
    return True


def unhook(client: Any) -> None:
    with _lock:
        _hooked.discard(client)
    for event, _handler, unique_id in _HANDLERS:
        client.meta.events.unregister(event, unique_id=unique_id)


def install() -> None:
    """Hook every botocore client created from now on (idempotent). Clients made before are not
    seen: reset the code's cached clients (bootstrap.reset()) after installing."""
    global _installed
    with _lock:
        if _installed:
            return
        original = botocore.session.Session.create_client

        def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(self, *args, **kwargs)
            hook(client)
            return client

        botocore.session.Session.create_client = create_client
        _installed = True


@contextmanager
def record() -> Iterator[Recording]:
    """The calls made (in any thread) through hooked clients while the block runs."""
    recording = Recording()
    with _lock:
        _recordings.append(recording)
    try:
        yield recording
    finally:
        with _lock:
            _recordings.remove(recording)


def clients_of(svc: Services) -> list[Any]:
    """The clients the services call AWS with: the one DynamoDB client every model and
    transaction shares, the R2 client, the SQS client."""
    from chalicelib.adapters.dynamodb.connection import connection

    clients = [connection().client, getattr(svc.store, "client", None), getattr(svc.queue, "client", None)]
    return [c for c in clients if c is not None]


def round_trips(calls: Iterable[Call]) -> Counter[str]:
    """{"ddb:GetItem": 2, "s3:HeadObject": 1, ...}: HTTP round trips per operation."""
    counts: Counter[str] = Counter()
    for call in calls:
        counts[call.op] += call.round_trips
    return counts


@contextmanager
def counting(svc: Services) -> Iterator[Counter[str]]:
    """Count the round trips this thread (and the pools it starts) makes inside the block, as
    {"ddb:GetItem": 1, "s3:HeadObject": 1, ...}; the counter is filled when the block ends."""
    added = [client for client in clients_of(svc) if hook(client)]
    counts: Counter[str] = Counter()
    try:
        with record() as recording:
            yield counts
        counts.update(round_trips(recording.own()))
    finally:
        for client in added:
            unhook(client)


def shape(counts: Counter[str]) -> str:
    """'ddb:GetItem x2, s3:HeadObject, sqs:SendMessage' (DynamoDB first, then S3, then SQS)."""
    ordered = sorted(counts.items(), key=lambda kv: (_ORDER.get(kv[0].split(":")[0], 9), kv[0]))
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in ordered) or "none"


_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(
    calls: list[Call],
    table_prefix: str,
    queues: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> set[tuple[str, str]]:
    """(IAM action, resource) pairs the calls need. Resources: a table's kind ("jobs"), an
    index ("jobs/index"), "queue:<label>" for SQS (`queues` maps a queue's URL or name to its
    label; else "queue"), "secret:<label>" for Secrets Manager (`secrets` maps a secret id),
    "ses:identity" for an email. S3 calls go to R2, which IAM does not govern: they are left out."""
    needed: set[tuple[str, str]] = set()
    queues, secrets = queues or {}, secrets or {}

    def table(name: str) -> str:
        return name.removeprefix(f"{table_prefix}-")

    for call in calls:
        p = call.params
        if call.service == "dynamodb":
            if call.operation == "TransactWriteItems":
                for item in p.get("TransactItems", []):
                    [(kind, body)] = item.items()
                    needed.add((f"dynamodb:{_TRANSACT_ITEM_ACTIONS[kind]}", table(body["TableName"])))
            elif call.operation == "TransactGetItems":
                for item in p.get("TransactItems", []):
                    needed.add(("dynamodb:GetItem", table(item["Get"]["TableName"])))
            elif call.operation in ("BatchGetItem", "BatchWriteItem"):
                for name in p.get("RequestItems", {}):
                    needed.add((f"dynamodb:{call.operation}", table(name)))
            else:
                where = table(p["TableName"]) + ("/index" if p.get("IndexName") else "")
                needed.add((f"dynamodb:{call.operation}", where))
        elif call.service == "sqs":
            queue = queues.get(p.get("QueueUrl") or p.get("QueueName") or "")
            needed.add((f"sqs:{call.operation}", f"queue:{queue}" if queue else "queue"))
        elif call.service == "secretsmanager":
            secret = secrets.get(p.get("SecretId", ""))
            needed.add((f"secretsmanager:{call.operation}", f"secret:{secret}" if secret else "secret"))
        elif call.service in ("sesv2", "ses"):
            needed.add((f"ses:{call.operation}", "ses:identity"))
        elif call.service != "s3":
            needed.add((f"{call.service}:{call.operation}", "?"))
    return needed
