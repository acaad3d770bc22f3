"""Run in a subprocess whose AWS endpoints point at a closed loopback port: call every public
method of the Repository port, the ObjectStore and the JobQueue, and print what each raised.

`python -m tests.support.unreachable` prints one JSON object {method: exception class name}.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain import (
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    QueueMessage,
    Role,
    Trigger,
    Workspace,
    utcnow,
)
from chalicelib.processing.ports import KeyedAnswer, RecordedError, Release, Repository, RetryPlan


def repository_calls() -> dict[str, tuple[Any, ...]]:
    now, ws, job_id = utcnow(), "ws-x", str(uuid.uuid4())
    job = Job(job_id, ws, JobStatus.FAILED, "a.mp4", "video/mp4", 1, "k", now, now, attempt=1)
    attempt = Attempt(job_id, 2, Trigger.MANUAL, 1, now, "u")
    entry = LedgerEntry(ws, -1, LedgerReason.RETRY, job_id)
    answer = KeyedAnswer("r", "t", {}, now + timedelta(minutes=1))
    ref = QueueMessage(job_id, ws, 1)
    return {
        "get_workspace": (ws,),
        "get_workspaces": ([ws],),
        "create_workspace": (Workspace(ws, ws, 1), entry),
        "memberships_of": ("u",),
        "get_membership": ("u", ws),
        "put_membership": (Membership("u", ws, Role.OWNER),),
        "change_credits": (ws, entry),
        "ledger": (ws, 10, None),
        "ledger_sum": (ws,),
        "create_job": (job,),
        "get_job": (job_id,),
        "get_jobs": ([job_id],),
        "list_jobs": (ws, None, 10, None),
        "attempts_of": (job_id,),
        "get_attempt": (job_id, 1),
        "get_answer": ("r", now),
        "start_job": (job, attempt, entry, now, answer),
        "retry_jobs": (ws, [RetryPlan(job, attempt, (entry,))], now, answer),
        "undo_queueing": (job, entry, "e", "E", now, Release("r", whole=True)),
        "mark_dispatched": (job_id, 1, now, timedelta(0)),
        "set_retry_pricing": (ws, None),
        "claim": (ref, now, now),
        "extend_lease": (ref, now),
        "start_segments": (ref, "{}", "1 segments", 2, 1, now),
        "segment_state": (ref,),
        "finish_task": (ref, 0, now, now),
        "claim_stitch": (ref, now, now),
        "release_stitch": (ref,),
        "reschedule": (ref, RecordedError("e", "E"), attempt, now, now),
        "set_progress": (ref, 0.5),
        "complete": (ref, "out", now),
        "fail": (ref, "e", "E", None, now),
        "queued_not_dispatched_since": (now, 10),
        "processing_lease_expired": (now, 10),
    }


def port_methods() -> set[str]:
    return {name for name in dir(Repository) if not name.startswith("_")}


def outcome(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except Exception as exc:
        return type(exc).__name__
    return "returned"


def main() -> None:
    from chalicelib.adapters.dynamodb import DynamoRepository
    from chalicelib.adapters.r2 import R2Store
    from chalicelib.adapters.sqs import SqsJobQueue

    settings = Settings()
    repo = DynamoRepository(settings)
    seen = {f"repo.{name}": outcome(getattr(repo, name), *args) for name, args in repository_calls().items()}
    store = R2Store.from_settings(settings)
    source = Path(__file__)
    seen["store.head"] = outcome(store.head, "k")
    seen["store.upload_file"] = outcome(store.upload_file, source, "k", "video/mp4")
    seen["store.delete_prefix"] = outcome(store.delete_prefix, "work/")
    seen["store.presign_upload"] = outcome(store.presign_upload, "k", "video/mp4", 1, 60)
    seen["store.presign_download"] = outcome(store.presign_download, "k", 60)
    seen["queue.from_settings"] = outcome(
        SqsJobQueue.from_settings, settings.model_copy(update={"jobs_queue_url": ""})
    )
    queue = SqsJobQueue.from_settings(settings)
    seen["queue.send"] = outcome(queue.send, QueueMessage("j", "w", 1))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
