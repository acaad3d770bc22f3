"""The four money holes of issue 8, on the in-memory fakes: each failure below used to lose the
truth (a 409 that left a job unstartable, a refund reported as success, a sweeper pass cut short)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import Job, JobStatus, QueueMessage
from chalicelib.errors import QueueSendError, ServiceUnavailableError, TransactionConflictError
from chalicelib.lifecycle import Move, Transition
from chalicelib.processing import jobs, retry, sweeper
from chalicelib.processing.context import Services
from chalicelib.processing.dispatch import Dispatch
from tests.support.fakes import ALICE, FakeQueue, make_services
from tests.support.lifecycle import claim, claim_and_fail


def failing_first(svc: Services, move: Move, *errors: BaseException) -> None:
    """Committing a transition of `move` raises `errors`, one per commit, then works again."""
    real, pending = svc.repo.commit, list(errors)

    def flaky(transition: Transition) -> None:
        if transition.move is move and pending:
            raise pending.pop(0)
        real(transition)

    svc.repo.commit = flaky  # type: ignore[method-assign]


def failing_reads(svc: Services, method: str, *errors: BaseException) -> None:
    """The repository's read `method` raises `errors`, one per call, then works again."""
    real, pending = getattr(svc.repo, method), list(errors)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if pending:
            raise pending.pop(0)
        return real(*args, **kwargs)

    setattr(svc.repo, method, flaky)


def uploaded_job(svc: Services) -> str:
    created = jobs.create_job(svc, ALICE, "clip.mov", "video/quicktime", 100, None)
    svc.store.objects[created.job.input_file_key] = 100  # type: ignore[attr-defined]
    return created.job.id


def failed_job(svc: Services) -> str:
    job_id = uploaded_job(svc)
    jobs.start_job(svc, ALICE, job_id, None)
    claim_and_fail(svc.repo, QueueMessage(job_id, "ws-a", 1))
    return job_id


class QueueFailingFor:
    """SQS refuses the messages of some jobs."""

    def __init__(self, *job_ids: str) -> None:
        self.refused, self.sent = set(job_ids), list[QueueMessage]()

    def send(self, message: QueueMessage) -> None:
        if message.job_id in self.refused:
            raise QueueSendError()
        self.sent.append(message)


def job_of(svc: Services, job_id: str) -> Job:
    job = svc.repo.get_job(job_id)
    assert job is not None
    return job


# --- start under TransactionConflict: the one contention policy -------------------------------


def test_start_is_tried_again_after_a_transaction_conflict() -> None:
    svc = make_services()
    job_id = uploaded_job(svc)
    failing_first(svc, Move.START, TransactionConflictError(), TransactionConflictError())
    started = jobs.start_job(svc, ALICE, job_id, None)
    assert started.job.status == JobStatus.QUEUED == job_of(svc, job_id).status
    assert svc.repo.get_workspace("ws-a").credits == 9  # type: ignore[union-attr]


# --- a refund that fails is not reported as success ----------------------------------------------


def test_a_refund_that_meets_a_conflict_is_tried_again_and_the_answer_is_refunded() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    failing_first(svc, Move.UNDO, TransactionConflictError())
    svc.queue = FakeQueue(fail=True)
    with pytest.raises(QueueSendError, match="refunded"):
        retry.retry_job(svc, ALICE, job_id)
    assert job_of(svc, job_id).status == JobStatus.FAILED
    assert svc.repo.get_workspace("ws-a").credits == 9  # type: ignore[union-attr]


def test_when_the_send_and_the_refund_fail_the_answer_is_deferred_and_the_sweeper_sends_it() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    failing_first(svc, Move.UNDO, ServiceUnavailableError())
    svc.queue = FakeQueue(fail=True)
    queued = retry.retry_job(svc, ALICE, job_id)
    assert queued.delivery == Dispatch.DEFERRED
    assert job_of(svc, job_id).status == JobStatus.QUEUED
    assert svc.repo.get_workspace("ws-a").credits == 8  # type: ignore[union-attr]
    svc.queue = FakeQueue()
    later = svc.clock() + timedelta(seconds=svc.settings.sweeper_requeue_after_seconds + 1)
    svc.clock = lambda: later
    assert sweeper.sweep(svc).requeued == 1
    assert svc.queue.sent == [QueueMessage(job_id, "ws-a", 2)]


def test_a_batch_counts_only_what_is_really_charged() -> None:
    svc = make_services()
    sent, refunded, deferred = failed_job(svc), failed_job(svc), failed_job(svc)
    svc.queue = QueueFailingFor(deferred, refunded)  # type: ignore[assignment]
    real_commit = svc.repo.commit

    def undo_unless_deferred(transition: Transition) -> None:  # DynamoDB fails for one refund only
        if transition.move is Move.UNDO and transition.jobs[0].job_id == deferred:
            raise ServiceUnavailableError()
        real_commit(transition)

    svc.repo.commit = undo_unless_deferred  # type: ignore[method-assign]
    result = retry.retry_jobs(svc, ALICE, [sent, refunded, deferred])
    by_id = {r.job_id: r for r in result.results}
    assert by_id[sent].success and by_id[sent].delivery == Dispatch.SENT
    assert by_id[deferred].success and by_id[deferred].delivery == Dispatch.DEFERRED
    assert not by_id[refunded].success and by_id[refunded].code == "SERVICE_UNAVAILABLE"
    assert (result.credits_charged, result.credits) == (2, 10 - 3 - 2)  # 3 starts, then 2 retries
    assert job_of(svc, deferred).status == JobStatus.QUEUED
    assert job_of(svc, refunded).status == JobStatus.FAILED


def test_a_batch_whose_balance_cannot_be_read_after_the_commit_still_answers_what_it_charged() -> None:
    svc = make_services()
    one, two = failed_job(svc), failed_job(svc)
    real_commit = svc.repo.commit

    def retry_then_break(transition: Transition) -> None:  # DynamoDB fails right after the commit
        real_commit(transition)
        if transition.move is Move.RETRY:
            failing_reads(svc, "get_workspace", ServiceUnavailableError())

    svc.repo.commit = retry_then_break  # type: ignore[method-assign]
    result = retry.retry_jobs(svc, ALICE, [one, two])
    assert (result.credits_charged, result.credits) == (2, None)
    assert all(r.success for r in result.results)


# --- one job's error does not abort a sweeper pass ------------------------------------------------


def test_one_jobs_error_does_not_cut_the_sweeper_pass_short() -> None:
    svc = make_services()
    resend = [uploaded_job(svc) for _ in range(3)]
    for job_id in resend:
        jobs.start_job(svc, ALICE, job_id, None)
    expired = [uploaded_job(svc) for _ in range(3)]
    past = svc.clock() - timedelta(seconds=1)
    for job_id in expired:
        jobs.start_job(svc, ALICE, job_id, None)
        assert claim(svc.repo, QueueMessage(job_id, "ws-a", 1), past, past)
    failing_first(svc, Move.DISPATCH, ServiceUnavailableError())
    failing_first(svc, Move.INTERRUPT, RuntimeError("boom"))  # an interrupted attempt is retried
    svc.queue = FakeQueue()
    later: datetime = svc.clock() + timedelta(seconds=svc.settings.sweeper_requeue_after_seconds + 1)
    svc.clock = lambda: later
    report = sweeper.sweep(svc)
    assert (report.requeued, report.interrupted) == (2, 2)
    assert set(resend) <= {m.job_id for m in svc.queue.sent}  # every due one was sent
    assert sum(job_of(svc, j).status != JobStatus.PROCESSING for j in expired) == 2
