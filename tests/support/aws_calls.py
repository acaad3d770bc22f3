"""Every AWS call this process makes, seen through botocore's own event hooks.

The one place where tests and benchmarks see the calls the code makes: `install()` registers
`before-call` / `after-call` handlers on every botocore client created from then on (boto3's,
pynamodb's and Powertools' alike), and `record()` collects the calls made inside a block.
`iam_actions()` turns calls into the IAM actions and resources they need (each item of a
TransactWriteItems is authorised as its own PutItem / UpdateItem / DeleteItem /
ConditionCheckItem).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session


@dataclass(frozen=True)
class Call:
    service: str  # botocore's service name: dynamodb, s3, sqs, secretsmanager, ...
    operation: str  # GetItem, TransactWriteItems, SendMessage, ...
    params: dict[str, Any]
    started: float  # time.perf_counter() when it was made
    seconds: float
    thread: int  # threading.get_ident() of the caller
    thread_name: str


@dataclass
class Recording:
    calls: list[Call] = field(default_factory=list)

    def operations(self) -> list[str]:
        return [f"{c.service}:{c.operation}" for c in self.calls]


_lock = threading.Lock()
_recordings: list[Recording] = []
_installed = False


def _before(context: dict[str, Any], **_: Any) -> None:
    context["aws_calls_started"] = time.perf_counter()


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
    )
    with _lock:
        for recording in _recordings:
            recording.calls.append(call)


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["aws_calls_params"] = params


def _register(client: Any) -> None:
    events = client.meta.events
    events.register("provide-client-params", _keep_params, unique_id="aws_calls.params")
    events.register("before-call", _before, unique_id="aws_calls.before")
    events.register("after-call", _after, unique_id="aws_calls.after")


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
            _register(client)
            return client

        botocore.session.Session.create_client = create_client
        _installed = True


@contextmanager
def record() -> Iterator[Recording]:
    """The calls made (in any thread) while the block runs."""
    recording = Recording()
    with _lock:
        _recordings.append(recording)
    try:
        yield recording
    finally:
        with _lock:
            _recordings.remove(recording)


_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(calls: list[Call], table_prefix: str) -> set[tuple[str, str]]:
    """(IAM action, resource) pairs the calls need. Resources: a table's kind ("jobs"), an
    index ("jobs/index"), "queue" for SQS, "secret" for Secrets Manager. S3 calls go to R2,
    which IAM does not govern: they are left out."""
    needed: set[tuple[str, str]] = set()

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
            needed.add((f"sqs:{call.operation}", "queue"))
        elif call.service == "secretsmanager":
            needed.add((f"secretsmanager:{call.operation}", "secret"))
        elif call.service != "s3":
            needed.add((f"{call.service}:{call.operation}", "?"))
    return needed
