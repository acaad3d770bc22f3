"""The seed's rules in chalicelib.processing, on in-memory fakes (no I/O)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from chalicelib.domain import JobStatus, LedgerReason, QueueMessage, Trigger
from chalicelib.errors import (
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobNotFailedError,
    JobNotFoundError,
    PayloadTooLargeError,
    QueueSendError,
    UploadGoneError,
    UploadIncompleteError,
    ValidationError,
    WorkspaceAmbiguousError,
)
from chalicelib.lifecycle import transitions
from chalicelib.processing import jobs, retry, sweeper
from chalicelib.processing.context import Services
from tests.support.fakes import ALICE, BOB, Clock, FakeQueue, FakeRepository, FakeStore, make_services
from tests.support.lifecycle import claim, claim_and_fail


def repo_of(svc: Services) -> FakeRepository:
    assert isinstance(svc.repo, FakeRepository)
    return svc.repo


def store_of(svc: Services) -> FakeStore:
    assert isinstance(svc.store, FakeStore)
    return svc.store


def started_job(svc: Services) -> str:
    created = jobs.create_job(svc, ALICE, "clip.mov", "video/quicktime", 100, None)
    store_of(svc).objects[created.job.input_file_key] = 100
    return jobs.start_job(svc, ALICE, created.job.id, None).job.id


def failed_job(svc: Services) -> str:
    job_id = started_job(svc)
    ref = QueueMessage(job_id, "ws-a", 1)
    claim_and_fail(svc.repo, ref)
    return job_id


# --- create and start --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "size", "error"),
    [
        ("image/png", 10, ValidationError),
        ("video/mp4", 0, ValidationError),
        ("video/mp4", -1, ValidationError),
        ("video/mp4", 50 * 1024**3 + 1, PayloadTooLargeError),
    ],
)
def test_create_rejects_non_video_empty_and_oversized(
    content_type: str, size: int, error: type[Exception]
) -> None:
    svc = make_services()
    with pytest.raises(error):
        jobs.create_job(svc, ALICE, "a.mp4", content_type, size, None)
    assert repo_of(svc).jobs == {}


def test_the_storage_key_never_holds_the_filename() -> None:
    svc = make_services()
    created = jobs.create_job(svc, ALICE, "../../etc/passwd video.mp4", "video/mp4", 5, None)
    assert "passwd" not in created.job.input_file_key
    assert created.job.input_file_key == f"uploads/ws-a/{created.job.id}/source"


def test_start_checks_the_upload_before_charging() -> None:
    svc = make_services()
    created = jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 100, None)
    with pytest.raises(UploadIncompleteError):
        jobs.start_job(svc, ALICE, created.job.id, None)
    store_of(svc).objects[created.job.input_file_key] = 99
    with pytest.raises(UploadIncompleteError):
        jobs.start_job(svc, ALICE, created.job.id, None)
    assert repo_of(svc).workspaces["ws-a"].credits == 10


def test_start_with_no_credits_is_refused_with_the_purchase_message() -> None:
    svc = make_services(credits=0)
    created = jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 1, None)
    store_of(svc).objects[created.job.input_file_key] = 1
    with pytest.raises(InsufficientCreditsError) as caught:
        jobs.start_job(svc, ALICE, created.job.id, None)
    assert caught.value.message == "Insufficient credits. Please purchase more credits."
    assert svc.queue.sent == []  # type: ignore[attr-defined]


def test_start_sends_one_message_for_the_first_attempt() -> None:
    svc = make_services()
    job_id = started_job(svc)
    assert svc.queue.sent == [QueueMessage(job_id, "ws-a", 1)]  # type: ignore[attr-defined]


def test_a_workspace_is_ambiguous_for_a_member_of_two() -> None:
    svc = make_services()
    from chalicelib.domain import Membership, Role

    svc.repo.commit(transitions.add_member(Membership(ALICE.user_id, "ws-b", Role.MEMBER), svc.clock()))
    with pytest.raises(WorkspaceAmbiguousError):
        jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 1, None)
    assert jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 1, "ws-b").job.workspace_id == "ws-b"


# --- retry: the order of the checks ----------------------------------------------------------


def test_retry_checks_in_the_seeds_order_not_found_first() -> None:
    svc = make_services(credits=1)
    job_id = failed_job(svc)  # uses the only credit
    store_of(svc).objects.clear()
    # BOB sees 404 even though the job is failed, the balance is 0 and the upload is gone
    with pytest.raises(JobNotFoundError):
        retry.retry_job(svc, BOB, job_id)
    with pytest.raises(InsufficientCreditsForRetryError):  # credits before the upload check
        retry.retry_job(svc, ALICE, job_id)
    repo_of(svc).workspaces["ws-a"].credits = 1
    with pytest.raises(UploadGoneError):
        retry.retry_job(svc, ALICE, job_id)


def test_retry_of_a_job_that_is_not_failed() -> None:
    svc = make_services()
    job_id = started_job(svc)
    with pytest.raises(JobNotFailedError) as caught:
        retry.retry_job(svc, ALICE, job_id)
    assert caught.value.message == "Only failed jobs can be retried"


def test_retry_resets_exactly_what_the_seed_says() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    before = repo_of(svc).jobs[job_id]
    queued = retry.retry_job(svc, ALICE, job_id).job
    stored = repo_of(svc).jobs[job_id]
    for job in (queued, stored):
        assert job.status == JobStatus.QUEUED
        assert (job.error, job.error_code, job.completed_at, job.output_file_key) == (None, None, None, None)
        assert (job.input_file_key, job.original_filename, job.created_at) == (
            before.input_file_key,
            before.original_filename,
            before.created_at,
        )
        assert (job.attempt, job.retry_count) == (2, 1)
    attempt = repo_of(svc).attempts[(job_id, 2)]
    assert (attempt.trigger, attempt.credits_charged, attempt.requested_by) == (
        Trigger.MANUAL,
        1,
        ALICE.user_id,
    )
    assert repo_of(svc).entries[-1].reason == LedgerReason.RETRY
    assert svc.queue.sent[-1] == QueueMessage(job_id, "ws-a", 2)  # type: ignore[attr-defined]


def test_a_failed_send_is_refunded_in_the_ledger_and_the_job_is_failed_again() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    svc.queue = FakeQueue(fail=True)
    with pytest.raises(QueueSendError) as caught:
        retry.retry_job(svc, ALICE, job_id)
    assert caught.value.message == "Could not queue the retry. Your credit was refunded."
    repo = repo_of(svc)
    assert repo.workspaces["ws-a"].credits == 9 == repo.ledger_sum("ws-a")
    assert [e.reason for e in repo.entries[-2:]] == [LedgerReason.RETRY, LedgerReason.RETRY_REFUND]
    assert repo.jobs[job_id].status == JobStatus.FAILED


# --- batch -----------------------------------------------------------------------------------------


def test_batch_all_or_nothing_on_credits() -> None:
    svc = make_services(credits=3)
    ids = [failed_job(svc) for _ in range(3)]  # balance 0 now
    repo_of(svc).workspaces["ws-a"].credits = 2
    with pytest.raises(InsufficientCreditsForRetryError):
        retry.retry_jobs(svc, ALICE, ids)
    assert all(repo_of(svc).jobs[i].status == JobStatus.FAILED for i in ids)


def test_batch_charges_only_eligible_jobs_and_reports_the_rest() -> None:
    svc = make_services()
    failed, queued = failed_job(svc), started_job(svc)
    result = retry.retry_jobs(svc, ALICE, [failed, queued, failed])
    assert result.credits_charged == 1
    assert [(r.job_id, r.success, r.code) for r in result.results] == [
        (failed, True, None),
        (queued, False, "BAD_REQUEST"),
    ]
    assert repo_of(svc).attempts[(failed, 2)].trigger == Trigger.BATCH


# --- sweeper -------------------------------------------------------------------------------------


def test_sweeper_resends_only_jobs_queued_past_the_threshold() -> None:
    clock = Clock()
    svc = make_services(clock=clock)
    old = started_job(svc)
    clock.advance(600)
    fresh = started_job(svc)
    svc.queue = FakeQueue()
    report = sweeper.sweep(svc)
    assert report.requeued == 1
    assert svc.queue.sent == [QueueMessage(old, "ws-a", 1)]
    assert fresh not in {m.job_id for m in svc.queue.sent}


def test_sweeper_turns_an_expired_lease_into_a_free_automatic_retry() -> None:
    clock = Clock()
    svc = make_services(clock=clock)
    job_id = started_job(svc)
    assert claim(svc.repo, QueueMessage(job_id, "ws-a", 1), clock(), clock() + timedelta(seconds=60))
    clock.advance(61)  # the worker died: its lease ran out
    svc.queue = FakeQueue()
    assert sweeper.sweep(svc).interrupted == 1
    repo = repo_of(svc)
    assert repo.attempts[(job_id, 1)].error_code == "WORKER_INTERRUPTED"
    auto = repo.attempts[(job_id, 2)]
    assert (auto.trigger, auto.credits_charged) == (Trigger.AUTO, 0)
    assert repo.jobs[job_id].status == JobStatus.QUEUED and repo.jobs[job_id].next_attempt_at is not None
    assert svc.queue.sent == [QueueMessage(job_id, "ws-a", 2)]
    assert repo.workspaces["ws-a"].credits == 9


def test_the_sweeper_waits_twice_as_long_after_each_resend_up_to_an_hour() -> None:
    clock = Clock()
    svc = make_services(clock=clock)
    job_id = started_job(svc)
    base = timedelta(seconds=svc.settings.sweeper_requeue_after_seconds)
    start = clock()
    svc.queue = FakeQueue()
    resent_at = []
    for minute in range(0, 24 * 60):
        now = clock.advance(60 if minute else 1)
        if sweeper.sweep(svc).requeued:
            resent_at.append(now - start)
    gaps = [b - a for a, b in zip([timedelta(0), *resent_at], resent_at, strict=False)]
    assert gaps[0] <= base + timedelta(minutes=1)  # the first re-send after the usual wait
    assert gaps[1] >= 2 * base and gaps[2] >= 4 * base  # then doubling
    assert max(gaps) <= timedelta(hours=1, minutes=1)  # never more than an hour apart
    assert repo_of(svc).jobs[job_id].resends == len(resent_at) < 30
    assert all(m == QueueMessage(job_id, "ws-a", 1) for m in svc.queue.sent)


def test_a_new_attempt_starts_the_sweeper_wait_over() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    repo_of(svc).jobs[job_id] = dataclasses.replace(repo_of(svc).jobs[job_id], resends=5)
    assert retry.retry_job(svc, ALICE, job_id).job.resends == 0
    assert repo_of(svc).jobs[job_id].resends == 0
