"""The Repository port's contract, run against BOTH the in-memory fake (tests/unit/fakes.py) and
the DynamoDB adapter on DynamoDB Local: every conditional refusal is the same refusal in both, so
a unit test on the fake says what the real adapter does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from chalicelib import bootstrap
from chalicelib.domain import (
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
from chalicelib.errors import (
    AnswerExistsError,
    ConflictError,
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobExistsError,
    JobNotStartableError,
    JobsChangedError,
    NotAMemberError,
)
from chalicelib.processing.dispatch import next_attempt
from chalicelib.processing.ports import KeyedAnswer, Release, Repository, RetryPlan
from tests.unit.fakes import FakeRepository

USER = "contract-user"


@pytest.fixture(params=["fake", "dynamodb"])
def repo(request: pytest.FixtureRequest) -> Iterator[Repository]:
    if request.param == "fake":
        yield FakeRepository()
    else:
        request.getfixturevalue("aws_stack")
        yield bootstrap.services().repo


@dataclass
class World:
    repo: Repository
    workspace: str

    def job(self, status: JobStatus = JobStatus.UPLOADING) -> Job:
        """A job of the workspace, brought to `status` through the port itself."""
        now = utcnow()
        job_id = str(uuid.uuid4())
        job = Job(
            job_id, self.workspace, JobStatus.UPLOADING, "a.mp4", "video/mp4", 10, f"k/{job_id}", now, now
        )
        self.repo.create_job(job)
        if status == JobStatus.UPLOADING:
            return job
        plan = next_attempt(job, Trigger.INITIAL, LedgerReason.JOB_START, USER, now)
        self.repo.start_job(job, plan.new_attempt, plan.entries[0], now)
        ref = QueueMessage(job_id, self.workspace, 1)
        if status == JobStatus.PROCESSING:
            assert self.repo.claim(ref, now, now + timedelta(minutes=15))
        elif status == JobStatus.FAILED:
            assert self.repo.claim(ref, now, now + timedelta(minutes=15))
            assert self.repo.fail(ref, "bad", "INVALID_VIDEO", None, now)
        elif status == JobStatus.COMPLETED:
            assert self.repo.claim(ref, now, now + timedelta(minutes=15))
            assert self.repo.complete(ref, "out", now)
        stored = self.repo.get_job(job_id)
        assert stored is not None and stored.status == status
        return stored

    def credits(self) -> int:
        ws = self.repo.get_workspace(self.workspace)
        assert ws is not None
        return ws.credits

    def retry_plan(self, job: Job, actor: str = USER) -> RetryPlan:
        return next_attempt(job, Trigger.MANUAL, LedgerReason.RETRY, actor, utcnow())


@pytest.fixture
def world(repo: Repository) -> World:
    ws = f"ws-contract-{uuid.uuid4().hex[:8]}"
    assert repo.create_workspace(Workspace(ws, ws, 5), LedgerEntry(ws, 5, LedgerReason.GRANT))
    repo.put_membership(Membership(USER, ws, Role.OWNER))
    return World(repo, ws)


def answer(record: str, seconds: int = 600) -> KeyedAnswer:
    return KeyedAnswer(record, "target", {"ok": True}, utcnow() + timedelta(seconds=seconds))


# --- accounts --------------------------------------------------------------------------------


def test_creating_an_existing_workspace_is_refused(world: World) -> None:
    assert not world.repo.create_workspace(Workspace(world.workspace, "x", 99), None)
    assert world.credits() == 5


@pytest.mark.parametrize("expected", [None, 4])
def test_credits_never_go_below_zero_nor_change_from_an_unexpected_balance(
    world: World, expected: int | None
) -> None:
    delta = -6 if expected is None else -1
    with pytest.raises(ConflictError):
        world.repo.change_credits(
            world.workspace, LedgerEntry(world.workspace, delta, LedgerReason.ADJUSTMENT), expected
        )
    assert world.credits() == 5 == world.repo.ledger_sum(world.workspace)


def test_credits_of_a_missing_workspace_are_refused(repo: Repository) -> None:
    with pytest.raises(ConflictError):
        repo.change_credits("ws-missing-" + uuid.uuid4().hex, LedgerEntry("x", 1, LedgerReason.GRANT))


def test_batch_reads_return_only_what_exists(world: World) -> None:
    job, missing = world.job(), str(uuid.uuid4())
    assert set(world.repo.get_jobs([job.id, missing])) == {job.id}
    assert set(world.repo.get_workspaces([world.workspace, "ws-none"])) == {world.workspace}


# --- create and start ---------------------------------------------------------------------------


def test_creating_an_existing_job_is_refused(world: World) -> None:
    job = world.job()
    with pytest.raises(JobExistsError):
        world.repo.create_job(dataclasses.replace(job, original_filename="other.mp4"))


def test_start_at_a_stale_attempt_or_status_is_refused(world: World) -> None:
    queued = world.job(JobStatus.QUEUED)
    plan = next_attempt(
        dataclasses.replace(queued, status=JobStatus.UPLOADING, attempt=0),
        Trigger.INITIAL,
        LedgerReason.JOB_START,
        USER,
        utcnow(),
    )
    with pytest.raises(JobNotStartableError):
        world.repo.start_job(plan.job, plan.new_attempt, plan.entries[0], utcnow())
    assert world.credits() == 4


def test_start_without_credits_is_refused(world: World) -> None:
    world.repo.change_credits(world.workspace, LedgerEntry(world.workspace, -5, LedgerReason.ADJUSTMENT))
    job = world.job()
    plan = next_attempt(job, Trigger.INITIAL, LedgerReason.JOB_START, USER, utcnow())
    with pytest.raises(InsufficientCreditsError):
        world.repo.start_job(job, plan.new_attempt, plan.entries[0], utcnow())
    assert world.repo.get_job(job.id).status == JobStatus.UPLOADING  # type: ignore[union-attr]


def test_start_by_someone_who_is_not_a_member_is_refused(world: World) -> None:
    job = world.job()
    plan = next_attempt(job, Trigger.INITIAL, LedgerReason.JOB_START, "stranger", utcnow())
    with pytest.raises(NotAMemberError):
        world.repo.start_job(job, plan.new_attempt, plan.entries[0], utcnow())
    assert world.credits() == 5


def test_a_key_with_a_live_answer_cannot_charge_again_until_it_is_released(world: World) -> None:
    record = f"contract#{uuid.uuid4()}"
    one, two = world.job(), world.job()
    plan = next_attempt(one, Trigger.INITIAL, LedgerReason.JOB_START, USER, utcnow())
    world.repo.start_job(one, plan.new_attempt, plan.entries[0], utcnow(), answer(record))
    stored = world.repo.get_answer(record, utcnow())
    assert stored is not None and stored.response == {"ok": True} and stored.target == "target"
    plan = next_attempt(two, Trigger.INITIAL, LedgerReason.JOB_START, USER, utcnow())
    with pytest.raises(AnswerExistsError):
        world.repo.start_job(two, plan.new_attempt, plan.entries[0], utcnow(), answer(record))
    assert world.credits() == 4
    queued = world.repo.get_job(one.id)
    assert queued is not None
    refund = LedgerEntry(world.workspace, 1, LedgerReason.START_REFUND, one.id)
    world.repo.undo_queueing(queued, refund, "x", "QUEUE_SEND_FAILED", utcnow(), Release(record, whole=True))
    assert world.repo.get_answer(record, utcnow()) is None  # released: the key is free again
    world.repo.start_job(two, plan.new_attempt, plan.entries[0], utcnow(), answer(record))
    assert world.credits() == 4


def test_an_expired_answer_is_no_answer(world: World) -> None:
    record = f"contract#{uuid.uuid4()}"
    job = world.job()
    plan = next_attempt(job, Trigger.INITIAL, LedgerReason.JOB_START, USER, utcnow())
    world.repo.start_job(job, plan.new_attempt, plan.entries[0], utcnow(), answer(record, seconds=1))
    assert world.repo.get_answer(record, utcnow() + timedelta(seconds=2)) is None


# --- retry -------------------------------------------------------------------------------------


def test_retry_of_jobs_that_are_not_failed_names_them(world: World) -> None:
    failed, completed = world.job(JobStatus.FAILED), world.job(JobStatus.COMPLETED)
    with pytest.raises(JobsChangedError) as refused:
        world.repo.retry_jobs(
            world.workspace, [world.retry_plan(failed), world.retry_plan(completed)], utcnow()
        )
    assert refused.value.job_ids == {completed.id}
    assert world.credits() == 3


def test_retry_at_a_stale_attempt_is_refused(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    world.repo.retry_jobs(world.workspace, [world.retry_plan(failed)], utcnow())
    with pytest.raises(JobsChangedError):
        world.repo.retry_jobs(world.workspace, [world.retry_plan(failed)], utcnow())  # attempt 1 again


def test_retry_beyond_the_balance_is_refused(world: World) -> None:
    jobs = [world.job(JobStatus.FAILED) for _ in range(3)]
    world.repo.change_credits(world.workspace, LedgerEntry(world.workspace, -2, LedgerReason.ADJUSTMENT))
    with pytest.raises(InsufficientCreditsForRetryError):
        world.repo.retry_jobs(world.workspace, [world.retry_plan(j) for j in jobs], utcnow())
    assert world.credits() == 0


def test_retry_priced_under_another_pricing_than_the_workspace_override_is_refused(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    assert world.repo.set_retry_pricing(world.workspace, "first_free")
    with pytest.raises(InsufficientCreditsForRetryError):
        world.repo.retry_jobs(world.workspace, [world.retry_plan(failed)], utcnow(), None, None, "full")
    assert world.credits() == 4
    world.repo.retry_jobs(world.workspace, [world.retry_plan(failed)], utcnow(), None, None, "first_free")
    assert world.credits() == 3


def test_retry_priced_under_the_deployment_pricing_passes_without_an_override(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    world.repo.retry_jobs(world.workspace, [world.retry_plan(failed)], utcnow(), None, None, "full")
    assert world.credits() == 3


def test_retry_by_someone_who_is_not_a_member_is_refused(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    with pytest.raises(NotAMemberError):
        world.repo.retry_jobs(world.workspace, [world.retry_plan(failed)], utcnow(), None, "stranger")


def test_a_batch_refund_notes_the_job_in_its_answer(world: World) -> None:
    record = f"contract#{uuid.uuid4()}"
    one, two = world.job(JobStatus.FAILED), world.job(JobStatus.FAILED)
    world.repo.retry_jobs(
        world.workspace, [world.retry_plan(one), world.retry_plan(two)], utcnow(), answer(record)
    )
    queued = world.repo.get_job(two.id)
    assert queued is not None
    refund = LedgerEntry(world.workspace, 1, LedgerReason.RETRY_REFUND, two.id)
    world.repo.undo_queueing(queued, refund, "x", "QUEUE_SEND_FAILED", utcnow(), Release(record, whole=False))
    stored = world.repo.get_answer(record, utcnow())
    assert stored is not None and stored.refunded == {two.id}


# --- queueing and the worker ----------------------------------------------------------------------


def test_undo_of_a_job_a_worker_claimed_is_refused(world: World) -> None:
    processing = world.job(JobStatus.PROCESSING)
    refund = LedgerEntry(world.workspace, 1, LedgerReason.START_REFUND, processing.id)
    with pytest.raises(ConflictError):
        world.repo.undo_queueing(processing, refund, "x", "QUEUE_SEND_FAILED", utcnow())
    assert world.credits() == 4


@pytest.mark.parametrize(
    "status", [JobStatus.UPLOADING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.PROCESSING]
)
def test_claim_of_an_attempt_that_is_not_queued_is_refused(world: World, status: JobStatus) -> None:
    job = world.job(status)
    now = utcnow()
    assert not world.repo.claim(QueueMessage(job.id, world.workspace, max(job.attempt, 1)), now, now)


def test_claim_of_another_attempt_or_a_missing_job_is_refused(world: World) -> None:
    job = world.job(JobStatus.QUEUED)
    now = utcnow()
    assert not world.repo.claim(QueueMessage(job.id, world.workspace, 2), now, now)
    assert not world.repo.claim(QueueMessage(str(uuid.uuid4()), world.workspace, 1), now, now)


def test_a_claim_whose_lease_ran_out_can_be_taken_again(world: World) -> None:
    job = world.job(JobStatus.QUEUED)
    ref, now = QueueMessage(job.id, world.workspace, 1), utcnow()
    assert world.repo.claim(ref, now, now - timedelta(seconds=1))
    assert world.repo.claim(ref, now, now + timedelta(minutes=1))
    assert not world.repo.claim(ref, now, now + timedelta(minutes=1))  # that lease is still running


def test_progress_for_a_stale_attempt_changes_nothing(world: World) -> None:
    job = world.job(JobStatus.FAILED)
    world.repo.set_progress(QueueMessage(job.id, world.workspace, 1), 0.5)
    assert world.repo.get_job(job.id).progress is None  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED])
def test_complete_of_an_attempt_that_is_not_processing_is_refused(world: World, status: JobStatus) -> None:
    job = world.job(status)
    assert not world.repo.complete(QueueMessage(job.id, world.workspace, 1), "out", utcnow())
    assert world.repo.get_job(job.id).status == status  # type: ignore[union-attr]


def test_fail_of_a_finished_attempt_is_refused(world: World) -> None:
    job = world.job(JobStatus.COMPLETED)
    assert not world.repo.fail(QueueMessage(job.id, world.workspace, 1), "x", "X", None, utcnow())
    assert world.repo.get_job(job.id).status == JobStatus.COMPLETED  # type: ignore[union-attr]


def test_mark_dispatched_of_another_attempt_is_refused(world: World) -> None:
    job = world.job(JobStatus.QUEUED)
    assert not world.repo.mark_dispatched(job.id, 2, utcnow(), timedelta(0))
    assert world.repo.mark_dispatched(job.id, 1, utcnow(), timedelta(0))
