"""The repository's queries for the sweeper (the sparse `to-sweep` index)."""

from __future__ import annotations

from datetime import datetime

from chalicelib.adapters.dynamodb.mapping import job_from
from chalicelib.adapters.dynamodb.models import JobModel
from chalicelib.domain import Job, JobStatus


class SweeperQueries:
    """Jobs the sweeper must look at."""

    def queued_not_dispatched_since(self, cutoff: datetime, limit: int) -> list[Job]:
        return [
            job_from(m)
            for m in JobModel.to_sweep.query(JobStatus.QUEUED.value, JobModel.sweepAt < cutoff, limit=limit)
        ]

    def processing_lease_expired(self, now: datetime, limit: int) -> list[Job]:
        return [
            job_from(m)
            for m in JobModel.to_sweep.query(JobStatus.PROCESSING.value, JobModel.sweepAt < now, limit=limit)
        ]
