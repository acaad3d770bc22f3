"""Events from committed changes: what a change of a job, an attempt or a balance means.

The only source of events is the tables' change stream (DynamoDB Streams, NEW_AND_OLD_IMAGES):
a change that did not commit is not in the stream, and every committed change is. So there is
no event without its change and no change without its event, whoever wrote it (the API, the
worker, the sweeper, an operator), without touching the transactions that write them.

- job.completed: a job's status became `completed`;
- job.failed: a job's status became `failed` (final: a job waiting for an automatic retry
  stays `queued`);
- job.cancelled: a job's status became `cancelled`, with the credits that came back;
- job.retried: a new attempt queued by a person (`manual` or `batch`), with who and the credit;
- credits.low: a workspace's balance went from above its threshold to at or below it.

An event's id comes from the stream record's id, so a redelivered record yields the same event,
and everything downstream (emails, webhook deliveries) dedupes on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain import Attempt, Job, JobStatus, Trigger
from chalicelib.notifications.domain import DEFAULT_LOW_CREDITS_THRESHOLD, Event, EventType
from chalicelib.notifications.ports import NotifyServices

JobJson = Callable[[Job], dict[str, Any]]  # the job as the API returns it


@dataclass(frozen=True)
class Balance:
    workspace_id: str
    credits: int
    low_threshold: int | None


@dataclass(frozen=True)
class TableChange:
    """One stream record: which table, its id, when, and the item before and after."""

    change_id: str
    at: datetime
    old: Job | Attempt | Balance | None
    new: Job | Attempt | Balance | None


def event_id(change: TableChange) -> str:
    return "evt_" + "".join(c for c in change.change_id if c.isalnum())


def job_event(change: TableChange, job_json: JobJson) -> Event | None:
    new, old = change.new, change.old
    if not isinstance(new, Job) or (isinstance(old, Job) and old.status == new.status):
        return None
    kinds = {
        JobStatus.COMPLETED: EventType.JOB_COMPLETED,
        JobStatus.FAILED: EventType.JOB_FAILED,
        JobStatus.CANCELLED: EventType.JOB_CANCELLED,
    }
    kind = kinds.get(new.status)
    if kind is None:
        return None
    job = job_json(new)
    data: dict[str, Any] = {"job": job, "startedBy": new.created_by}
    if kind == EventType.JOB_FAILED:
        data["error"] = {
            "code": new.error_code,
            "message": new.error,
            "retryable": job.get("retryable"),
            "suggestion": job.get("suggestion"),
        }
    if kind == EventType.JOB_CANCELLED:
        paid_before = old.credits_paid if isinstance(old, Job) else new.credits_paid
        data["cancel"] = {"creditsRefunded": max(paid_before - new.credits_paid, 0)}
    return Event(event_id(change), kind, change.at, new.workspace_id, data)


def retried_event(
    change: TableChange, find_job: Callable[[str], Job | None], job_json: JobJson
) -> Event | None:
    new = change.new
    if not isinstance(new, Attempt) or change.old is not None:
        return None
    if new.trigger not in (Trigger.MANUAL, Trigger.BATCH):
        return None
    job = find_job(new.job_id)
    if job is None:
        return None
    retry = {
        "attempt": new.n,
        "trigger": new.trigger.value,
        "requestedBy": new.requested_by,
        "creditsCharged": new.credits_charged,
    }
    data = {"job": job_json(job), "startedBy": job.created_by, "retry": retry}
    return Event(event_id(change), EventType.JOB_RETRIED, change.at, job.workspace_id, data)


def low_credits_event(change: TableChange) -> Event | None:
    new, old = change.new, change.old
    if not isinstance(new, Balance) or not isinstance(old, Balance):
        return None
    threshold = new.low_threshold if new.low_threshold is not None else DEFAULT_LOW_CREDITS_THRESHOLD
    if not (old.credits > threshold >= new.credits):
        return None
    data = {"credits": new.credits, "threshold": threshold}
    return Event(event_id(change), EventType.CREDITS_LOW, change.at, new.workspace_id, data)


def event_of(change: TableChange, find_job: Callable[[str], Job | None], job_json: JobJson) -> Event | None:
    """The event a committed change means, if any."""
    if isinstance(change.new, Job):
        return job_event(change, job_json)
    if isinstance(change.new, Attempt):
        return retried_event(change, find_job, job_json)
    return low_credits_event(change)


def publish(ctx: NotifyServices, changes: list[TableChange], job_json: JobJson) -> int:
    """Put the event of each change on the notifications queue. Raises QueueSendError (the
    stream redelivers the batch: the same ids again, deduped downstream)."""
    sent = 0
    for change in changes:
        event = event_of(change, ctx.store.get_job, job_json)
        if event is not None:
            ctx.queue.send_event(event.payload())
            sent += 1
    return sent
