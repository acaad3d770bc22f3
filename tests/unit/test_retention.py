"""The workspace's retention of uploads (chalicelib.processing.retention) and the sweeper's part of
it, on the in-memory fakes. The same transitions on DynamoDB Local: tests/integration/test_contract.py;
the routes and a real sweeper pass: tests/integration/test_retention.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chalicelib.domain import UTC, JobStatus, Membership, Principal, QueueMessage, Role
from chalicelib.errors import ForbiddenError, StorageError, ValidationError
from chalicelib.lifecycle import transitions
from chalicelib.processing import retention, sweeper
from chalicelib.processing.context import Services
from tests.support.fakes import ALICE, Clock, FakeStore, make_services
from tests.support.lifecycle import claim
from tests.unit.test_service_rules import failed_job, repo_of, started_job, store_of

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CAROL = Principal(user_id="carol-sub", email="carol@example.com")  # a member of ws-a, not an owner


def services() -> tuple[Services, Clock]:
    clock = Clock(START)
    svc = make_services(clock=clock)
    svc.repo.commit(transitions.add_member(Membership(CAROL.user_id, "ws-a", Role.MEMBER), START))
    return svc, clock


def completed_job(svc: Services) -> str:
    job_id = started_job(svc)
    ref = QueueMessage(job_id, "ws-a", 1)
    assert claim(svc.repo, ref)
    svc.repo.commit(transitions.complete(ref, f"outputs/ws-a/{job_id}/attempt-1.mp4", svc.clock()))
    store_of(svc).objects[f"outputs/ws-a/{job_id}/attempt-1.mp4"] = 10
    return job_id


def upload_kept(svc: Services, job_id: str) -> bool:
    return repo_of(svc).jobs[job_id].input_file_key in store_of(svc).objects


def test_the_default_is_the_deployments_and_only_owners_change_it() -> None:
    svc, _ = services()
    assert retention.retention_of(svc, ALICE, "ws-a") == retention.Retention("ws-a", 30, False, 30, True)
    assert retention.retention_of(svc, CAROL, "ws-a").can_change is False
    with pytest.raises(ForbiddenError):
        retention.set_retention(svc, CAROL, "ws-a", 7)
    with pytest.raises(ValidationError):
        retention.set_retention(svc, ALICE, "ws-a", -1)
    assert retention.set_retention(svc, ALICE, "ws-a", 7).days == 7
    assert retention.retention_of(svc, CAROL, "ws-a") == retention.Retention("ws-a", 7, True, 30, False)
    back = retention.set_retention(svc, ALICE, "ws-a", None)
    assert back == retention.Retention("ws-a", 30, False, 30, True)


def test_an_upload_is_deleted_once_its_retention_ran_out_and_the_output_stays() -> None:
    svc, clock = services()
    retention.set_retention(svc, ALICE, "ws-a", 2)
    job_id = completed_job(svc)

    clock.now = START + timedelta(days=1)
    assert sweeper.sweep(svc).originals_deleted == 0
    assert upload_kept(svc, job_id)
    assert repo_of(svc).jobs[job_id].sweep_at == START + timedelta(days=2)  # looked at again then

    clock.now = START + timedelta(days=2, seconds=1)
    assert sweeper.sweep(svc).originals_deleted == 1
    job = repo_of(svc).jobs[job_id]
    assert not upload_kept(svc, job_id) and job.original_deleted_at == clock.now
    assert (job.status, job.output_file_key in store_of(svc).objects) == (JobStatus.COMPLETED, True)
    assert job.sweep_at is None and sweeper.sweep(svc).originals_deleted == 0  # once


def test_a_long_retention_is_looked_at_weekly_so_a_shorter_one_reaches_waiting_uploads() -> None:
    svc, clock = services()
    job_id = completed_job(svc)  # the default: 30 days
    clock.now = START + timedelta(minutes=1)
    sweeper.sweep(svc)
    assert repo_of(svc).jobs[job_id].sweep_at == clock.now + timedelta(days=7)

    retention.set_retention(svc, ALICE, "ws-a", 3)  # the owner shortens it
    clock.now = START + timedelta(days=7, minutes=2)
    assert sweeper.sweep(svc).originals_deleted == 1 and not upload_kept(svc, job_id)


def test_zero_days_deletes_a_cancelled_jobs_upload_at_the_next_pass_and_a_failed_one_keeps_it() -> None:
    svc, clock = services()
    retention.set_retention(svc, ALICE, "ws-a", 0)
    cancelled = started_job(svc)
    job = repo_of(svc).jobs[cancelled]
    charged = repo_of(svc).attempts[(cancelled, 1)]
    svc.repo.commit(transitions.cancel(job, charged, ALICE.user_id, None, START))
    failed = failed_job(svc)  # a retry needs its upload
    clock.now = START + timedelta(seconds=1)

    assert sweeper.sweep(svc).originals_deleted == 1
    assert not upload_kept(svc, cancelled) and upload_kept(svc, failed)


def test_an_upload_that_could_not_be_deleted_is_tried_again_at_the_next_pass() -> None:
    svc, clock = services()
    retention.set_retention(svc, ALICE, "ws-a", 0)
    job_id = completed_job(svc)
    clock.now = START + timedelta(seconds=1)
    store = store_of(svc)
    deleting = FakeStore.delete_prefix

    def broken(prefix: str) -> int:
        raise StorageError("R2 said 503")

    store.delete_prefix = broken  # type: ignore[method-assign]
    assert sweeper.sweep(svc).originals_deleted == 0
    assert repo_of(svc).jobs[job_id].original_deleted_at is None  # not recorded: not deleted
    store.delete_prefix = lambda prefix: deleting(store, prefix)  # type: ignore[method-assign]
    assert sweeper.sweep(svc).originals_deleted == 1 and not upload_kept(svc, job_id)
