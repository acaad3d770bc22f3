"""The repository's reads of jobs and attempts, and the sweeper's query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamodb.mapping import (
    attempt_from,
    decode_cursor,
    encode_cursor,
    job_from,
    page_of,
    ws_status,
)
from chalicelib.adapters.dynamodb.models import AttemptModel, JobModel
from chalicelib.domain import Attempt, Job, JobStatus
from chalicelib.processing.ports import Page


class JobReads:
    """Reading jobs and their attempts."""

    def get_job(self, job_id: str) -> Job | None:
        try:
            return job_from(JobModel.get(job_id, consistent_read=True))
        except DoesNotExist:
            return None

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """One BatchGetItem for up to 100 ids (pynamodb re-asks for unprocessed keys)."""
        return {
            m.id: job_from(m) for m in JobModel.batch_get(list(dict.fromkeys(job_ids)), consistent_read=True)
        }

    def list_jobs(self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None) -> Page:
        if status is None:
            start = decode_cursor(cursor, "createdKey", workspaceId=workspace_id, id=_job_of(cursor))
            result = JobModel.by_workspace.query(
                workspace_id, scan_index_forward=False, limit=limit, last_evaluated_key=start
            )
        else:
            partition = ws_status(workspace_id, status.value)
            start = decode_cursor(cursor, "createdKey", wsStatus=partition, id=_job_of(cursor))
            result = JobModel.by_workspace_status.query(
                partition, scan_index_forward=False, limit=limit, last_evaluated_key=start
            )
        items, next_key = page_of(result, limit)
        return Page(jobs=[job_from(m) for m in items], cursor=encode_cursor(next_key, "createdKey"))

    def attempts_of(self, job_id: str) -> list[Attempt]:
        return [attempt_from(m) for m in AttemptModel.query(job_id, consistent_read=True)]

    def get_attempt(self, job_id: str, n: int) -> Attempt | None:
        try:
            return attempt_from(AttemptModel.get(job_id, n, consistent_read=True))
        except DoesNotExist:
            return None

    def jobs_to_sweep(self, status: JobStatus, before: datetime, limit: int) -> list[Job]:
        """Jobs in `status` whose `sweepAt` is before `before` (the sparse `to-sweep` index)."""
        return [
            job_from(m) for m in JobModel.to_sweep.query(status.value, JobModel.sweepAt < before, limit=limit)
        ]


def _job_of(cursor: str | None) -> str:
    """The job id a jobs cursor ends with (`<time>Z_<job id>`)."""
    return (cursor or "").rsplit("_", 1)[-1]  # (decode_cursor refuses what is not a cursor)
