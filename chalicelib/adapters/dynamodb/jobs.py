"""The repository's reads of jobs and attempts."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamodb.mapping import (
    attempt_from,
    decode_cursor,
    encode_cursor,
    job_from,
    job_model,
    page_of,
    ws_status,
)
from chalicelib.adapters.dynamodb.models import AttemptModel, JobModel
from chalicelib.domain import Attempt, Job, JobStatus
from chalicelib.processing.ports import Page


class JobReads:
    """Creating and reading jobs and their attempts."""

    def create_job(self, job: Job) -> None:
        job_model(job).save(JobModel.id.does_not_exist())

    def get_job(self, job_id: str) -> Job | None:
        try:
            return job_from(JobModel.get(job_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_jobs(self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None) -> Page:
        if status is None:
            result = JobModel.by_workspace.query(
                workspace_id, scan_index_forward=False, limit=limit, last_evaluated_key=decode_cursor(cursor)
            )
        else:
            result = JobModel.by_workspace_status.query(
                ws_status(workspace_id, status.value),
                scan_index_forward=False,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor),
            )
        items, next_key = page_of(result, limit)
        return Page(jobs=[job_from(m) for m in items], cursor=encode_cursor(next_key))

    def attempts_of(self, job_id: str) -> list[Attempt]:
        return [attempt_from(m) for m in AttemptModel.query(job_id, consistent_read=True)]

    def get_attempt(self, job_id: str, n: int) -> Attempt | None:
        try:
            return attempt_from(AttemptModel.get(job_id, n, consistent_read=True))
        except DoesNotExist:
            return None
