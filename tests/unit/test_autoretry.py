"""Issue 7 on in-memory fakes: the failure taxonomy, automatic retries with backoff, refunds,
retry pricing, the invocation-time check, the heartbeat, malformed messages, reprocessing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.sqs import decode
from chalicelib.domain import (
    FailureKind,
    JobStatus,
    LedgerReason,
    Outcome,
    QueueMessage,
    ReprocessRequest,
    RetryPricing,
    Trigger,
)
from chalicelib.errors import (
    DownloadError,
    FFmpegCrashedError,
    FFmpegNotFoundError,
    InvalidVideoError,
    ProcessingError,
    TranscodeFailedError,
    ValidationError,
)
from chalicelib.lifecycle import Move, Transition
from chalicelib.processing import autoretry, failures, jobs, pricing, reprocess, retry, worker
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


def repo_of(svc: Services) -> FakeRepository:
    assert isinstance(svc.repo, FakeRepository)
    return svc.repo


def queue_of(svc: Services) -> FakeQueue:
    assert isinstance(svc.queue, FakeQueue)
    return svc.queue


def setup(*errors: ProcessingError, **settings: Any) -> tuple[Services, str]:
    svc = make_services()
    svc.settings = svc.settings.model_copy(update={"auto_retry_base_seconds": 8, **settings})
    svc.transcoder = ScriptedTranscoder(*errors)
    created = jobs.create_job(svc, ALICE, "clip.mov", "video/quicktime", 100, None)
    assert isinstance(svc.store, FakeStore)
    svc.store.objects[created.job.input_file_key] = 100
    return svc, jobs.start_job(svc, ALICE, created.job.id, None).job.id


def run_queue(svc: Services) -> list[worker.Handled]:
    """Deliver every message sent so far, in order, as SQS would (delays elapsed)."""
    outcomes = []
    queue = queue_of(svc)
    while queue.sent:
        outcomes.append(worker.process(svc, queue.sent.pop(0)))
    return outcomes


def assert_invariants(svc: Services) -> None:
    repo = repo_of(svc)
    for ws in repo.workspaces.values():
        assert repo.ledger_sum(ws.id) == ws.credits >= 0
    assert all(a.outcome in (Outcome.SUCCEEDED, Outcome.FAILED) for a in repo.attempts.values())
    assert not any(j.status == JobStatus.PROCESSING for j in repo.jobs.values())


# --- the taxonomy ------------------------------------------------------------------------------


def _all_subclasses(cls: type[ProcessingError]) -> Iterator[type[ProcessingError]]:
    sub: type[ProcessingError]
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_processing_error_code_has_a_kind_message_and_suggestion() -> None:
    classes: list[type[ProcessingError]] = [ProcessingError, *_all_subclasses(ProcessingError)]
    for cls in classes:
        entry = failures.describe(cls.code)
        assert entry is not None and entry.error_code == cls.code
        assert entry.message and entry.suggestion
        assert entry.kind in FailureKind


@pytest.mark.parametrize(
    ("code", "kind", "retryable"),
    [
        ("R2_DOWNLOAD_FAILED", FailureKind.TRANSIENT, True),
        ("R2_UPLOAD_FAILED", FailureKind.TRANSIENT, True),
        ("FFMPEG_NOT_FOUND", FailureKind.TRANSIENT, True),
        ("FFMPEG_CRASHED", FailureKind.TRANSIENT, True),
        ("WORKER_INTERRUPTED", FailureKind.TRANSIENT, True),
        ("INVALID_VIDEO", FailureKind.PERMANENT, False),
        ("INPUT_MISSING", FailureKind.PERMANENT, False),
        ("TRANSCODE_TIMEOUT", FailureKind.PERMANENT, False),
        ("TRANSCODE_FAILED", FailureKind.UNKNOWN, True),
        ("SOMETHING_NEW", FailureKind.UNKNOWN, True),
    ],
)
def test_kinds(code: str, kind: FailureKind, retryable: bool) -> None:
    entry = failures.describe(code)
    assert entry is not None and (entry.kind, entry.retryable) == (kind, retryable)


def test_the_corrupt_file_suggestion_says_upload_a_different_file() -> None:
    entry = failures.describe("INVALID_VIDEO")
    assert entry is not None and entry.suggestion.startswith("Upload a different file")


def test_unknown_is_transient_once_then_permanent() -> None:
    assert failures.retry_automatically(FailureKind.UNKNOWN, 1, 3)
    assert not failures.retry_automatically(FailureKind.UNKNOWN, 2, 3)
    assert failures.retry_automatically(FailureKind.TRANSIENT, 2, 3)
    assert not failures.retry_automatically(FailureKind.TRANSIENT, 3, 3)
    assert not failures.retry_automatically(FailureKind.PERMANENT, 1, 3)


def test_backoff_is_full_jitter_under_the_cap_and_sqs_limit() -> None:
    svc = make_services()
    svc.settings = svc.settings.model_copy(
        update={"auto_retry_base_seconds": 10, "auto_retry_cap_seconds": 900}
    )
    for tries in (1, 2, 3, 8, 30):
        samples = [autoretry.backoff_seconds(svc, tries) for _ in range(300)]
        ceiling = min(900, 10 * 2 ** (tries - 1))
        assert all(0 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1  # jittered, not a fixed wait
    svc.settings = svc.settings.model_copy(update={"auto_retry_base_seconds": 0})
    assert {autoretry.backoff_seconds(svc, 3) for _ in range(20)} == {0}


# --- automatic retries --------------------------------------------------------------------------


def test_a_transient_failure_is_retried_for_free_and_completes_paid_once() -> None:
    svc, job_id = setup(DownloadError(detail="connection refused"))
    outcomes = run_queue(svc)
    assert outcomes == [worker.Handled.RETRYING, worker.Handled.COMPLETED]
    repo = repo_of(svc)
    first, auto = repo.attempts[(job_id, 1)], repo.attempts[(job_id, 2)]
    assert (first.outcome, first.error_code) == (Outcome.FAILED, "R2_DOWNLOAD_FAILED")
    assert (auto.trigger, auto.credits_charged, auto.outcome) == (Trigger.AUTO, 0, Outcome.SUCCEEDED)
    assert repo.workspaces["ws-a"].credits == 9
    assert repo.jobs[job_id].status == JobStatus.COMPLETED
    assert_invariants(svc)


def test_the_retry_message_is_delayed_by_the_backoff_and_the_job_waits_queued() -> None:
    svc, job_id = setup(FFmpegCrashedError())
    queue = queue_of(svc)
    assert worker.process(svc, queue.sent.pop(0)) == worker.Handled.RETRYING
    job = repo_of(svc).jobs[job_id]
    assert job.status == JobStatus.QUEUED and job.attempt == 2 and job.auto_attempts == 1
    assert job.next_attempt_at is not None
    assert queue.sent == [QueueMessage(job_id, "ws-a", 2)]
    assert 0 <= queue.delays[-1] <= 8
    due_in = (job.next_attempt_at - svc.clock()).total_seconds()
    assert abs(due_in - queue.delays[-1]) < 2


def test_after_the_last_automatic_try_the_job_fails_and_the_credit_is_refunded() -> None:
    svc, job_id = setup(FFmpegNotFoundError(), FFmpegNotFoundError(), FFmpegNotFoundError())
    assert run_queue(svc) == [worker.Handled.RETRYING, worker.Handled.RETRYING, worker.Handled.FAILED]
    repo = repo_of(svc)
    job = repo.jobs[job_id]
    assert (job.status, job.error, job.error_code) == (
        JobStatus.FAILED,
        "FFmpeg not found",
        "FFMPEG_NOT_FOUND",
    )
    assert [a.trigger for a in repo.attempts_of(job_id)] == [Trigger.INITIAL, Trigger.AUTO, Trigger.AUTO]
    assert repo.attempts[(job_id, 1)].refunded
    assert repo.workspaces["ws-a"].credits == 10
    assert [e.reason for e in repo.entries if e.job_id == job_id] == [
        LedgerReason.JOB_START,
        LedgerReason.SYSTEM_FAILURE_REFUND,
    ]
    assert_invariants(svc)


def test_a_permanent_failure_fails_at_once_without_a_refund() -> None:
    svc, job_id = setup(InvalidVideoError())
    assert run_queue(svc) == [worker.Handled.FAILED]
    repo = repo_of(svc)
    assert len(repo.attempts_of(job_id)) == 1 and not repo.attempts[(job_id, 1)].refunded
    assert repo.workspaces["ws-a"].credits == 9
    assert_invariants(svc)


def test_an_unknown_failure_is_retried_once_then_refunded() -> None:
    # Only a failure proven to be the input's keeps the credit; nobody can tell whose this is.
    svc, job_id = setup(TranscodeFailedError(), TranscodeFailedError())
    assert run_queue(svc) == [worker.Handled.RETRYING, worker.Handled.FAILED]
    assert repo_of(svc).attempts[(job_id, 1)].refunded
    assert repo_of(svc).workspaces["ws-a"].credits == 10
    assert_invariants(svc)


def test_max_auto_attempts_1_fails_the_charged_attempt_itself_with_a_refund() -> None:
    svc, job_id = setup(FFmpegCrashedError(), max_auto_attempts=1)
    assert run_queue(svc) == [worker.Handled.FAILED]
    assert repo_of(svc).attempts[(job_id, 1)].refunded
    assert repo_of(svc).workspaces["ws-a"].credits == 10
    assert_invariants(svc)


def test_a_lost_retry_message_leaves_the_job_queued_for_the_sweeper() -> None:
    svc, job_id = setup(FFmpegCrashedError())
    message = queue_of(svc).sent.pop(0)
    queue_of(svc).fail = True
    assert worker.process(svc, message) == worker.Handled.RETRYING
    job = repo_of(svc).jobs[job_id]
    assert job.status == JobStatus.QUEUED and job.attempt == 2  # committed; the sweeper re-sends


def test_a_manual_retry_after_a_refunded_failure_charges_and_refunds_again_on_its_own() -> None:
    svc, job_id = setup(*[FFmpegNotFoundError()] * 6)
    run_queue(svc)
    retried = retry.retry_job(svc, ALICE, job_id)
    assert retried.credits_charged == 1
    run_queue(svc)
    repo = repo_of(svc)
    assert repo.workspaces["ws-a"].credits == 10  # both charges came back
    assert repo.attempts[(job_id, 4)].refunded and repo.attempts[(job_id, 4)].trigger == Trigger.MANUAL
    assert_invariants(svc)


# --- the heartbeat -----------------------------------------------------------------------------


def test_the_watch_renews_the_lease_and_the_message_visibility_while_ffmpeg_runs() -> None:
    svc, job_id = setup(pulse_seconds=0.05, heartbeat_seconds=0.05)
    svc.transcoder = ScriptedTranscoder(seconds=0.4)
    message = queue_of(svc).sent.pop(0)
    outcome = worker.process(svc, message, worker.Receipt("receipt-1"))
    assert outcome == worker.Handled.COMPLETED
    leases = [t.jobs[0].changes["lease_until"] for t in repo_of(svc).committed if t.move is Move.HEARTBEAT]
    assert len(leases) >= 3
    assert queue_of(svc).visibility[0] == ("receipt-1", svc.settings.claim_lease_seconds)
    assert leases == sorted(leases)


# --- pricing -------------------------------------------------------------------------------------


def _failed(svc: Services) -> str:
    svc.transcoder = ScriptedTranscoder(InvalidVideoError())
    created = jobs.create_job(svc, ALICE, "clip.mov", "video/quicktime", 100, None)
    assert isinstance(svc.store, FakeStore)
    svc.store.objects[created.job.input_file_key] = 100
    job_id = jobs.start_job(svc, ALICE, created.job.id, None).job.id
    run_queue(svc)
    return job_id


def test_first_free_makes_only_the_first_manual_retry_free() -> None:
    svc = make_services()
    svc.settings = svc.settings.model_copy(update={"retry_pricing": RetryPricing.FIRST_FREE})
    job_id = _failed(svc)
    before = repo_of(svc).workspaces["ws-a"].credits
    first = retry.retry_job(svc, ALICE, job_id)
    assert first.credits_charged == 0 and repo_of(svc).attempts[(job_id, 2)].credits_charged == 0
    assert repo_of(svc).workspaces["ws-a"].credits == before
    svc.transcoder = ScriptedTranscoder(InvalidVideoError())
    run_queue(svc)
    second = retry.retry_job(svc, ALICE, job_id)
    assert second.credits_charged == 1 and repo_of(svc).workspaces["ws-a"].credits == before - 1
    run_queue(svc)
    assert_invariants(svc)


def test_a_workspace_override_wins_over_the_deployment_setting() -> None:
    svc = make_services()
    job_id = _failed(svc)
    assert pricing.set_pricing(svc, "ws-a", "first_free") == "first_free"
    assert jobs.get_job(svc, ALICE, job_id, None).pricing == "first_free"
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0
    assert pricing.set_pricing(svc, "ws-a", None) == "full"
    with pytest.raises(ValidationError):
        pricing.set_pricing(svc, "ws-a", "half")


def test_a_free_retry_needs_no_credit() -> None:
    svc = make_services(credits=1)
    svc.settings = svc.settings.model_copy(update={"retry_pricing": RetryPricing.FIRST_FREE})
    job_id = _failed(svc)
    assert repo_of(svc).workspaces["ws-a"].credits == 0
    assert retry.retry_job(svc, ALICE, job_id).credits_charged == 0


# --- reprocess -----------------------------------------------------------------------------------


def test_reprocess_dry_run_changes_nothing_and_free_is_paid_by_the_operator() -> None:
    svc = make_services()
    job_id = _failed(svc)
    credits = repo_of(svc).workspaces["ws-a"].credits
    dry = reprocess.reprocess(svc, ReprocessRequest("ws-a", error_code="INVALID_VIDEO", dry_run=True), "op")
    assert dry.selected == [job_id] and dry.requeued == 0
    assert repo_of(svc).jobs[job_id].status == JobStatus.FAILED
    none = reprocess.reprocess(svc, ReprocessRequest("ws-a", error_code="FFMPEG_NOT_FOUND"), "op")
    assert none.selected == []
    free = reprocess.reprocess(svc, ReprocessRequest("ws-a", free=True), "op")
    assert (free.requeued, free.credits_charged) == (1, 0)
    assert repo_of(svc).workspaces["ws-a"].credits == credits
    assert [e.reason for e in repo_of(svc).entries if e.job_id == job_id][-2:] == [
        LedgerReason.RETRY,
        LedgerReason.OPERATOR_GRANT,
    ]
    attempt = repo_of(svc).attempts[(job_id, 2)]
    assert (attempt.trigger, attempt.credits_charged) == (Trigger.REPROCESS, 0)


def test_reprocess_charged_reports_jobs_it_could_not_requeue() -> None:
    svc = make_services()
    ok, gone = _failed(svc), _failed(svc)
    assert isinstance(svc.store, FakeStore)
    del svc.store.objects[repo_of(svc).jobs[gone].input_file_key]
    ticks: list[tuple[int, int]] = []
    report = reprocess.reprocess(svc, ReprocessRequest("ws-a"), "op", each=lambda *tick: ticks.append(tick))
    assert ticks == [(1, 2), (2, 2)]  # every job counts for the operator's progress, refused ones too
    assert report.requeued == 1 and report.credits_charged == 1
    assert set(report.refused) == {gone} and "CONFLICT" in report.refused[gone]
    assert repo_of(svc).jobs[ok].status == JobStatus.QUEUED


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"type": "reprocess"}),
        json.dumps({"type": "reprocess", "workspaceId": "ws-a", "free": "yes"}),
        json.dumps({"type": "reprocess", "workspaceId": "ws-a", "since": "yesterday"}),
        json.dumps({"type": "reprocess", "workspaceId": "ws-a", "extra": 1}),
        json.dumps({"type": "nuke", "workspaceId": "ws-a"}),
        json.dumps({"jobId": "j", "workspaceId": "w", "attempt": 0}),
        json.dumps({"jobId": "", "workspaceId": "w", "attempt": 1}),
    ],
)
def test_bad_messages_are_refused(body: str) -> None:
    with pytest.raises(ValidationError):
        decode(body)


def test_a_reprocess_message_decodes() -> None:
    message = decode(
        json.dumps({"type": "reprocess", "workspaceId": "ws-a", "errorCode": "X", "since": "2026-01-01"})
    )
    assert isinstance(message, ReprocessRequest)
    assert (message.workspace_id, message.error_code, message.since and message.since.year) == (
        "ws-a",
        "X",
        2026,
    )


# --- the handler: invocation time, malformed bodies, the last delivery ----------------------------


class LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.function_name, self.aws_request_id = "worker", "req-1"
        self.memory_limit_in_mb, self.invoked_function_arn = (
            2048,
            "arn:aws:lambda:us-east-1:1:function:worker",
        )

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def installed() -> Iterator[Callable[[Services], None]]:
    yield lambda svc: bootstrap.override(svc)
    bootstrap.override(None)


def _body(m: QueueMessage) -> str:
    return json.dumps({"jobId": m.job_id, "workspaceId": m.workspace_id, "attempt": m.attempt})


def test_a_record_without_time_for_a_transcode_is_handed_back_unclaimed(
    installed: Callable[[Services], None],
) -> None:
    from chalicelib.handlers import worker as handler

    svc, job_id = setup()
    installed(svc)
    body = _body(queue_of(svc).sent.pop(0))
    short = LambdaContext(remaining_ms=(svc.settings.transcode_timeout_seconds + 30) * 1000)
    result = handler.handle(sqs_events.event(sqs_events.record(body, message_id="m-1")), short)
    assert result["batchItemFailures"] == [{"itemIdentifier": "m-1"}]
    job = repo_of(svc).jobs[job_id]
    assert job.status == JobStatus.QUEUED and repo_of(svc).attempts[(job_id, 1)].outcome == Outcome.QUEUED
    assert ("rh-m-1", 0) in queue_of(svc).visibility  # back at once, to an invocation with time
    assert svc.transcoder is not None and svc.transcoder.calls == 0  # type: ignore[attr-defined]
    plenty = LambdaContext(remaining_ms=900_000)
    again = sqs_events.event(sqs_events.record(body, 2, message_id="m-1"))  # SQS's redelivery
    assert handler.handle(again, plenty)["batchItemFailures"] == []
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED


def test_a_malformed_body_goes_to_the_dlq_and_the_rest_of_the_batch_runs(
    installed: Callable[[Services], None],
) -> None:
    from chalicelib.handlers import worker as handler

    svc, job_id = setup()
    installed(svc)
    body = _body(queue_of(svc).sent.pop(0))
    event = sqs_events.event(
        sqs_events.record("{not json", message_id="bad"), sqs_events.record(body, message_id="good")
    )
    result = handler.handle(event, LambdaContext(900_000))
    assert result["batchItemFailures"] == []
    assert [b for b, _ in queue_of(svc).dead] == ["{not json"]
    assert repo_of(svc).jobs[job_id].status == JobStatus.COMPLETED
    assert repo_of(svc).workspaces["ws-a"].credits == 9


class ExplodingRepository(FakeRepository):
    """Completing fails as if DynamoDB were down: the outcome cannot be recorded."""

    def commit(self, transition: Transition) -> None:
        if transition.move is Move.COMPLETE:
            raise RuntimeError("the database is down")
        super().commit(transition)


def test_the_last_delivery_that_still_fails_gives_the_job_up_with_a_refund(
    installed: Callable[[Services], None],
) -> None:
    from chalicelib.handlers import worker as handler

    svc, job_id = setup()
    exploding = ExplodingRepository()
    exploding.__dict__.update(repo_of(svc).__dict__)
    svc.repo = exploding
    installed(svc)
    body = _body(queue_of(svc).sent.pop(0))
    first = sqs_events.event(sqs_events.record(body, 1, message_id="m"))
    early = handler.handle(first, LambdaContext(900_000))
    assert early["batchItemFailures"] == [{"itemIdentifier": "m"}]
    assert exploding.jobs[job_id].status == JobStatus.PROCESSING  # the sweeper's, or a later delivery's
    exploding.jobs[job_id].lease_until = svc.clock()  # the first invocation died
    fifth = sqs_events.event(sqs_events.record(body, 5, message_id="m"))
    last = handler.handle(fifth, LambdaContext(900_000))
    assert last["batchItemFailures"] == [{"itemIdentifier": "m"}]  # to the DLQ, for an operator
    job = exploding.jobs[job_id]
    assert (job.status, job.error) == (
        JobStatus.FAILED,
        "Processing failed repeatedly. Your credit was refunded.",
    )
    assert exploding.workspaces["ws-a"].credits == 10
    assert exploding.ledger_sum("ws-a") == 10


def test_a_reprocess_message_requeues_through_the_handler(installed: Callable[[Services], None]) -> None:
    from chalicelib.handlers import worker as handler

    svc = make_services()
    job_id = _failed(svc)
    installed(svc)
    body = json.dumps({"type": "reprocess", "workspaceId": "ws-a", "errorCode": "INVALID_VIDEO"})
    event = sqs_events.event(sqs_events.record(body, message_id="r"))
    assert handler.handle(event, LambdaContext(900_000))["batchItemFailures"] == []
    assert repo_of(svc).jobs[job_id].status == JobStatus.QUEUED
    assert repo_of(svc).attempts[(job_id, 2)].trigger == Trigger.REPROCESS


def test_threads_left_behind_are_none() -> None:
    svc, _ = setup(pulse_seconds=0.01)
    run_queue(svc)
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("watch-")]


def test_infra_alarms_when_the_dead_letter_queue_holds_a_message() -> None:
    from tests.unit.test_infra import _resource, resources

    alarm = _resource(resources(), "JobsDeadLetterAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["JobsDeadLetterQueue", "QueueName"]}}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    redrive = _resource(resources(), "JobsQueue")["Properties"]["RedrivePolicy"]
    from chalicelib.config import Settings

    assert redrive["maxReceiveCount"] == Settings().max_receive_count  # the last-receive check's number
