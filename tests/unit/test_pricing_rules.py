"""The pricing rules of issue 14, on in-memory fakes: a workspace pays for an attempt only when it
completes or fails because of its input, never twice for one intent, and never for what the
platform did wrong. Each test here failed on the code before the lifecycle module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.domain import JobStatus, LedgerReason, RetryPricing, utcnow
from chalicelib.errors import (
    FFmpegCrashedError,
    InvalidVideoError,
    ProcessingError,
    QueueSendError,
    ServiceUnavailableError,
)
from chalicelib.lifecycle import Move, Transition, transitions
from chalicelib.processing import jobs, retry, worker
from chalicelib.processing.context import Services
from tests.support import sqs_events
from tests.support.fakes import (
    ALICE,
    FakeQueue,
    FakeRepository,
    FakeStore,
    ScriptedTranscoder,
    make_services,
)
from tests.support.lifecycle import claim

FIRST_FREE = RetryPricing.FIRST_FREE


def services(pricing: RetryPricing = RetryPricing.FULL, credits: int = 10) -> Services:
    svc = make_services(credits=credits)
    svc.settings = svc.settings.model_copy(update={"retry_pricing": pricing, "auto_retry_base_seconds": 0})
    return svc


def repo_of(svc: Services) -> FakeRepository:
    assert isinstance(svc.repo, FakeRepository)
    return svc.repo


def queue_of(svc: Services) -> FakeQueue:
    assert isinstance(svc.queue, FakeQueue)
    return svc.queue


def credits(svc: Services) -> int:
    ws = svc.repo.get_workspace("ws-a")
    assert ws is not None and ws.credits == svc.repo.ledger_sum("ws-a")
    return ws.credits


def run(svc: Services, *errors: BaseException) -> list[worker.Handled]:
    """Deliver every message sent so far (delays elapsed), the transcoder failing with `errors`."""
    svc.transcoder = ScriptedTranscoder(*errors)
    handled = []
    while queue_of(svc).sent:
        handled.append(worker.process(svc, queue_of(svc).sent.pop(0)))
    return handled


def uploaded(svc: Services) -> str:
    created = jobs.create_job(svc, ALICE, "clip.mov", "video/quicktime", 100, None)
    assert isinstance(svc.store, FakeStore)
    svc.store.objects[created.job.input_file_key] = 100
    return created.job.id


def failed_for_its_input(svc: Services) -> str:
    job_id = uploaded(svc)
    jobs.start_job(svc, ALICE, job_id, None)
    assert run(svc, InvalidVideoError()) == [worker.Handled.FAILED]
    return job_id


# --- first_free: the free retry is spent only by a retry that ran and failed for the input --------


def test_a_free_retry_whose_send_failed_leaves_the_next_retry_free() -> None:
    svc = services(FIRST_FREE)
    job_id = failed_for_its_input(svc)
    svc.queue = FakeQueue(fail=True)
    with pytest.raises(QueueSendError, match="Nothing was charged"):
        retry.retry_job(svc, ALICE, job_id)
    svc.queue = FakeQueue()
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0
    assert repo_of(svc).jobs[job_id].retry_count == 1  # the retry that never went out is not counted
    assert credits(svc) == 9


def test_a_free_retry_the_platform_failed_to_the_end_leaves_the_next_retry_free() -> None:
    svc = services(FIRST_FREE)
    job_id = failed_for_its_input(svc)
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0
    crashes = [FFmpegCrashedError() for _ in range(svc.settings.max_auto_attempts)]
    assert run(svc, *crashes)[-1] == worker.Handled.FAILED
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0
    assert credits(svc) == 9


def test_a_free_retry_that_failed_for_the_input_is_spent() -> None:
    svc = services(FIRST_FREE)
    job_id = failed_for_its_input(svc)
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0
    assert run(svc, InvalidVideoError()) == [worker.Handled.FAILED]
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 1
    assert credits(svc) == 8


# --- a job whose start was refunded pays its first attempt as a start ------------------------------


def test_a_job_whose_start_was_refunded_pays_its_first_retry_as_a_start() -> None:
    svc = services(FIRST_FREE)
    job_id = uploaded(svc)
    svc.queue = FakeQueue(fail=True)
    with pytest.raises(QueueSendError):
        jobs.start_job(svc, ALICE, job_id, None)
    assert credits(svc) == 10
    svc.queue = FakeQueue()
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 1  # not a free "retry"
    assert run(svc, InvalidVideoError()) == [worker.Handled.FAILED]
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0  # now its free retry
    assert credits(svc) == 9


def test_a_job_whose_start_the_platform_failed_and_refunded_pays_its_retry_as_a_start() -> None:
    svc = services(FIRST_FREE)
    job_id = uploaded(svc)
    jobs.start_job(svc, ALICE, job_id, None)
    assert run(svc, *[FFmpegCrashedError() for _ in range(svc.settings.max_auto_attempts)])[-1] == (
        worker.Handled.FAILED
    )
    assert credits(svc) == 10
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 1


# --- what the platform cannot explain is refunded --------------------------------------------------


def test_a_crash_the_platform_cannot_explain_is_refunded_when_the_tries_run_out() -> None:
    svc = services()
    job_id = uploaded(svc)
    jobs.start_job(svc, ALICE, job_id, None)
    handled = run(svc, RuntimeError("No space left on device"), OSError("a bug"))
    assert handled == [worker.Handled.RETRYING, worker.Handled.FAILED]
    assert repo_of(svc).attempts[(job_id, 1)].refunded
    assert credits(svc) == 10


def test_only_a_failure_proven_to_be_the_inputs_keeps_the_credit() -> None:
    svc = services()
    job_id = failed_for_its_input(svc)
    assert not repo_of(svc).attempts[(job_id, 1)].refunded
    assert credits(svc) == 9


# --- the pricing override pinned at the commit ------------------------------------------------


class OverrideRemovedAfterTheRead(FakeRepository):
    """An operator removes the workspace's override between the batch's read and its commit."""

    def __init__(self, base: FakeRepository) -> None:
        self.__dict__.update(base.__dict__)
        self.pending = True

    def get_workspace(self, workspace_id: str) -> Any:
        read = super().get_workspace(workspace_id)
        if self.pending and read is not None and read.retry_pricing is not None:
            self.pending = False
            self.commit(transitions.set_pricing(workspace_id, None, utcnow()))
        return read


@pytest.mark.parametrize(
    ("deployment", "override", "due"),
    [(RetryPricing.FULL, FIRST_FREE, 3), (FIRST_FREE, RetryPricing.FULL, 0)],
)
def test_a_batch_is_charged_under_the_pricing_in_force_at_its_commit(
    deployment: RetryPricing, override: RetryPricing, due: int
) -> None:
    svc = services(deployment)
    failed = [failed_for_its_input(svc) for _ in range(3)]
    svc.repo.commit(transitions.set_pricing("ws-a", override, utcnow()))
    svc.repo = OverrideRemovedAfterTheRead(repo_of(svc))
    result = retry.retry_jobs(svc, ALICE, failed)
    assert all(r.success for r in result.results)
    assert result.credits_charged == due
    assert credits(svc) == 10 - 3 - due


# --- a reprocess request charges each job once ------------------------------------------------


@pytest.fixture
def installed() -> Iterator[Any]:
    yield bootstrap.override
    bootstrap.override(None)


class Context:
    function_name, aws_request_id, memory_limit_in_mb = "worker", "req", 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:worker"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def test_a_reprocess_message_delivered_twice_charges_each_job_once(installed: Any) -> None:
    from chalicelib.handlers import worker as handler

    svc = services()
    job_id = failed_for_its_input(svc)
    installed(svc)
    body = json.dumps({"type": "reprocess", "workspaceId": "ws-a"})
    handler.handle(sqs_events.event(sqs_events.record(body, 1, "m-1")), Context())
    assert credits(svc) == 8 and repo_of(svc).jobs[job_id].attempt == 2
    assert run(svc, InvalidVideoError()) == [worker.Handled.FAILED]  # it fails again, quickly
    handler.handle(sqs_events.event(sqs_events.record(body, 2, "m-1")), Context())  # SQS delivers it again
    assert credits(svc) == 8 and repo_of(svc).jobs[job_id].status == JobStatus.FAILED
    retries = [e for e in repo_of(svc).entries if e.job_id == job_id and e.reason == LedgerReason.RETRY]
    assert len(retries) == 1
    other = json.dumps({"type": "reprocess", "workspaceId": "ws-a", "requestId": "another"})
    handler.handle(
        sqs_events.event(sqs_events.record(other, 1, "m-2")), Context()
    )  # a new request is a new intent
    assert credits(svc) == 7


# --- the DLQ's give-up leaves a live worker's attempt alone --------------------------------------


class ThrottledClaims(FakeRepository):
    """DynamoDB throttles this delivery's claim: processing raises before anything is recorded."""

    def __init__(self, base: FakeRepository) -> None:
        self.__dict__.update(base.__dict__)

    def commit(self, transition: Transition) -> None:
        if transition.move is Move.CLAIM:
            raise ServiceUnavailableError()
        super().commit(transition)


def test_the_last_delivery_does_not_give_up_an_attempt_a_live_worker_holds() -> None:
    svc = services()
    job_id = uploaded(svc)
    jobs.start_job(svc, ALICE, job_id, None)
    ref = queue_of(svc).sent.pop(0)
    assert claim(svc.repo, ref, owner="live-worker")  # worker A runs it, its lease is live
    live = svc.repo
    svc.repo = ThrottledClaims(repo_of(svc))
    last = worker.Receipt("rh-b", receive_count=svc.settings.max_receive_count)
    with pytest.raises(ServiceUnavailableError):
        worker.deliver(svc, ref, last, None)  # worker B's last delivery fails
    svc.repo = live
    assert repo_of(svc).jobs[job_id].status == JobStatus.PROCESSING
    assert svc.repo.get_job(job_id).error is None  # type: ignore[union-attr]
    done = transitions.complete(ref, "outputs/x.mp4", utcnow())
    svc.repo.commit(done)  # worker A's output stands
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED and credits(svc) == 9


def test_the_last_delivery_gives_up_its_own_attempt_with_a_refund() -> None:
    svc = services()
    job_id = uploaded(svc)
    jobs.start_job(svc, ALICE, job_id, None)
    ref = queue_of(svc).sent.pop(0)

    class Exploding(FakeRepository):
        def __init__(self, base: FakeRepository) -> None:
            self.__dict__.update(base.__dict__)

        def commit(self, transition: Transition) -> None:
            if transition.move is Move.COMPLETE:
                raise ProcessingError("the database is down")
            super().commit(transition)

    svc.repo = Exploding(repo_of(svc))
    svc.transcoder = ScriptedTranscoder()
    last = worker.Receipt("rh", receive_count=svc.settings.max_receive_count)
    with pytest.raises(ProcessingError):
        worker.deliver(svc, ref, last, None)
    job = svc.repo.get_job(job_id)
    assert job is not None and job.status == JobStatus.FAILED and credits(svc) == 10
