"""Setting the scene quickly (never timed): tenants, uploaded / queued / failed jobs, a quiet queue.

Failed jobs are made as the test suite makes them (tests/integration/test_retry.py `fail_job`):
claim the attempt and record a failure in DynamoDB, as the worker would, without running ffmpeg.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import requests
from botocore.exceptions import ClientError

from chalicelib import bootstrap
from chalicelib.domain import JobStatus, QueueMessage, utcnow
from chalicelib.processing.ports import Repository
from tests.support.api import Api, Tenant, new_tenant
from tests.support.lifecycle import claim, fail
from tests.support.stack import AwsStack

NOT_A_VIDEO = b"this is not a video at all" * 40
FAILED_ERROR = "The file is not a readable video"
SETUP_THREADS = 8

T = TypeVar("T")
U = TypeVar("U")


def repo() -> Repository:
    """The process's one repository (a new DynamoRepository() would re-bind every model)."""
    return bootstrap.services().repo


def parallel(fn: Callable[[T], U], items: Iterable[T], threads: int = SETUP_THREADS) -> list[U]:
    with cf.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


@dataclass
class KeepAliveApi(Api):
    """The test suite's client on one keep-alive session (not thread-safe: one thread only)."""

    session: requests.Session = field(default_factory=requests.Session)

    def call(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        h.update(headers or {})
        return self.session.request(method, self.base + path, json=json, headers=h, timeout=60, **kwargs)


def tenant(stack: AwsStack, api_url: str, credits: int) -> Tenant:
    return new_tenant(stack, api_url, credits=credits)


def upload(job_and_upload: dict[str, Any], data: bytes = NOT_A_VIDEO) -> None:
    """PUT the file of a `POST /jobs` answer to its presigned URL."""
    put = job_and_upload["upload"]
    r = requests.put(put["url"], data=data, headers=put["headers"], timeout=60)
    assert r.status_code == 200, r.text


def uploaded(api: Api, source: Path, **fields: Any) -> dict[str, Any]:
    """`POST /jobs` for the file at `source` (with `fields`, a preset say) and its bytes sent the
    way the answer says: one presigned PUT, or parts (a file above the multipart threshold); the
    job, its upload complete."""
    from tests.support.multipart import PartsUpload

    size = source.stat().st_size
    body = {"filename": source.name, "contentType": "video/mp4", "size": size, **fields}
    r = api.post("/jobs", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    if created["upload"].get("method") == "MULTIPART":
        parts = PartsUpload(api=api, source=source, job=created["job"], upload=created["upload"])
        parts.send(threads=4)
        done = parts.complete()
        assert done.status_code == 200, done.text
    else:
        put = requests.put(
            created["upload"]["url"],
            data=source.read_bytes(),
            headers=created["upload"]["headers"],
            timeout=600,
        )
        assert put.status_code == 200, put.text
    return dict(created["job"])


def submitted_jobs(api: Api, count: int, data: bytes = NOT_A_VIDEO) -> list[dict[str, Any]]:
    """`count` queued jobs (create, upload, start), charged 1 credit each."""
    return parallel(lambda _: api.submit(data), range(count))


def fail_attempt(
    job_id: str, workspace_id: str, attempt: int, error: str = FAILED_ERROR, strict: bool = True
) -> bool:
    """What the worker does on failure, without running it: claim the attempt, record the failure."""
    ref = QueueMessage(job_id, workspace_id, attempt)
    store = repo()
    done = claim(store, ref, utcnow(), utcnow()) and fail(
        store, ref, error, "INVALID_VIDEO", "ffmpeg said no"
    )
    assert done or not strict, f"could not fail {ref}"
    return done


def fail_jobs(jobs: Sequence[dict[str, Any]]) -> None:
    """Fail each job's current attempt (a job as the API returned it, `attempt` included)."""
    parallel(lambda j: fail_attempt(j["id"], j["workspaceId"], int(j["attempt"])), jobs)


def failed_jobs(api: Api, count: int) -> list[dict[str, Any]]:
    jobs = submitted_jobs(api, count)
    fail_jobs(jobs)
    return jobs


def bump(jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The jobs as a successful retry left them: the next attempt."""
    return [{**j, "attempt": int(j["attempt"]) + 1} for j in jobs]


def idempotency_key() -> str:
    return str(uuid.uuid4())


# --- a quiet stack: nothing queued, no message waiting ---------------------------------------------


def fail_all_queued() -> int:
    """Fail every queued job of every workspace (leftovers of earlier benchmarks)."""
    total = 0
    for _ in range(20):  # the index can lag a write: a few passes, never an endless loop
        later = utcnow() + timedelta(days=1)
        queued = repo().jobs_to_sweep(JobStatus.QUEUED, later, 500)
        jobs = [(j.id, j.workspace_id, j.attempt) for j in queued]
        if not jobs:
            break
        total += sum(parallel(lambda j: fail_attempt(*j, strict=False), jobs))
    return total


_sqs_clients: dict[str, Any] = {}


def _sqs(stack: AwsStack) -> Any:
    if stack.moto_url not in _sqs_clients:
        _sqs_clients[stack.moto_url] = stack.client("sqs")
    return _sqs_clients[stack.moto_url]


def drain_messages(stack: AwsStack) -> int:
    """Empty the jobs queue; the number of messages it held.

    moto's SendMessage takes longer the more messages wait in the queue (about 3 ms empty, 24 ms
    with 1,000 waiting, 43 ms with 2,000), unlike SQS. Nothing consumes the queue during most
    benchmarks, so each one empties it before it measures anything that sends. PurgeQueue is
    allowed once a minute; otherwise messages are received and deleted.
    """
    sqs = _sqs(stack)
    url = stack.env["JOBS_QUEUE_URL"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    waiting = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    if waiting == 0:
        return 0
    try:
        sqs.purge_queue(QueueUrl=url)
        return waiting
    except ClientError:  # PurgeQueueInProgress: purged less than a minute ago
        pass
    drained = 0
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return drained
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        drained += len(messages)


def quiesce(stack: AwsStack) -> tuple[int, int]:
    """No queued job and no message left: (jobs failed, messages deleted)."""
    failed = fail_all_queued()
    time.sleep(0.05)
    return failed, drain_messages(stack)
