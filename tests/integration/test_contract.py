"""The Repository port's contract, run against BOTH the in-memory fake (tests/support/fakes.py) and
the DynamoDB adapter on DynamoDB Local: every transition of chalicelib.lifecycle commits the same
way in both, every guard refuses the same way, and every move the status table leaves out is
refused by both. A unit test on the fake therefore says what the real adapter does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from chalicelib import bootstrap
from chalicelib.domain import (
    Attempt,
    FailureKind,
    FreeRetry,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    Outcome,
    OutputFacts,
    PaymentEvent,
    Preset,
    Purchase,
    QueueMessage,
    RetryPricing,
    Role,
    Trigger,
    Workspace,
    utcnow,
)
from chalicelib.errors import (
    ActiveJobsLimitError,
    AnswerExistsError,
    ConflictError,
    DomainError,
    InsufficientCreditsError,
    InsufficientCreditsForRetryError,
    JobExistsError,
    JobNotReplaceableError,
    JobNotStartableError,
    JobsChangedError,
    NotAMemberError,
    PaymentAppliedError,
    TransitionRefusedError,
    WorkspaceNotFoundError,
)
from chalicelib.lifecycle import (
    MOVES,
    KeyedAnswer,
    Lease,
    Move,
    PricingBasis,
    RecordedError,
    Release,
    Transition,
    project,
    transitions,
)
from chalicelib.lifecycle.moves import allowed
from chalicelib.payments.ports import PurchaseRecords
from chalicelib.processing.contention import committed
from chalicelib.processing.ports import Repository
from tests.support.fakes import FakeRepository

USER = "contract-user"
FULL, FIRST_FREE = RetryPricing.FULL, RetryPricing.FIRST_FREE
BAD = RecordedError("The file is not a readable video", "INVALID_VIDEO")
CRASHED = RecordedError("FFmpeg stopped unexpectedly", "FFMPEG_CRASHED")


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
    job_ids: list[str] = dataclasses.field(default_factory=list)

    def commit(self, transition: Transition) -> bool:
        return committed(self.repo, transition)

    def new_job(self, due: datetime | None = None) -> Job:
        """A job waiting for its upload; with `due`, a multipart one the sweeper expires then."""
        now = utcnow()
        job_id = str(uuid.uuid4())
        job = Job(
            job_id, self.workspace, JobStatus.UPLOADING, "a.mp4", "video/mp4", 10, f"k/{job_id}", now, now
        )
        if due is not None:
            job = dataclasses.replace(job, upload_id=f"upload-{job_id}", part_size=5 * 1024**2, sweep_at=due)
        self.repo.commit(transitions.create_job(job))
        self.job_ids.append(job_id)
        return job

    def active(self) -> int:
        ws = self.repo.get_workspace(self.workspace)
        assert ws is not None
        return ws.active_jobs

    def counted(self) -> bool:
        """The workspace's active-job count is its jobs queued or processing, exactly."""
        live = sum(1 for j in self.job_ids if self.read(j).status in (JobStatus.QUEUED, JobStatus.PROCESSING))
        return self.active() == live

    def job(self, status: JobStatus = JobStatus.UPLOADING, lease: timedelta = timedelta(minutes=15)) -> Job:
        """A job of the workspace, brought to `status` through the port itself (processing: with a
        lease of `lease` from now)."""
        job = self.new_job()
        if status == JobStatus.UPLOADING:
            return job
        now = utcnow()
        self.repo.commit(transitions.start(job, USER, now))
        ref = self.ref(job.id)
        if status == JobStatus.CANCELLED:
            assert self.commit(self.cancel_of(job.id))
        elif status != JobStatus.QUEUED:
            assert self.commit(transitions.claim(ref, now, now + lease, "owner-1"))
        if status == JobStatus.FAILED:
            assert self.commit(transitions.fail(self.read(job.id), BAD, FailureKind.PERMANENT, now))
        elif status == JobStatus.COMPLETED:
            assert self.commit(transitions.complete(ref, "out", now))
        stored = self.read(job.id)
        assert stored.status == status
        return stored

    def read(self, job_id: str) -> Job:
        job = self.repo.get_job(job_id)
        assert job is not None
        return job

    def attempt(self, job_id: str, n: int) -> Attempt:
        attempt = self.repo.get_attempt(job_id, n)
        assert attempt is not None
        return attempt

    def ref(self, job_id: str, task: int | None = None) -> QueueMessage:
        return QueueMessage(job_id, self.workspace, self.read(job_id).attempt, task)

    def credits(self) -> int:
        ws = self.repo.get_workspace(self.workspace)
        assert ws is not None
        return ws.credits

    def balanced(self) -> bool:
        return self.credits() == self.repo.ledger_sum(self.workspace)

    def retry(self, *jobs: Job, basis: PricingBasis | None = None, **kwargs: object) -> Transition:
        basis = basis or PricingBasis.assumed(FULL)
        return transitions.retry(list(jobs), basis, Trigger.MANUAL, USER, USER, utcnow(), **kwargs)  # type: ignore[arg-type]

    @property
    def records(self) -> PurchaseRecords:
        """The payments port's reads over the same store (the fake is both)."""
        if isinstance(self.repo, FakeRepository):
            return self.repo
        from chalicelib.payments.adapters.dynamodb import DynamoPurchaseRecords

        return DynamoPurchaseRecords()

    def purchase(self, credits: int = 10, amount: int = 500, workspace: str | None = None) -> Purchase:
        tag = uuid.uuid4().hex
        return Purchase(
            f"cs_test_{tag}",
            workspace or self.workspace,
            "small",
            credits,
            amount,
            "usd",
            f"pi_test_{tag}",
            USER,
            f"evt_{tag}",
            utcnow(),
        )

    def cancel_of(self, job_id: str) -> Transition:
        job = self.read(job_id)
        charged = self.repo.get_attempt(job_id, job.charged_attempt) if job.charged_attempt else None
        return transitions.cancel(job, charged, USER, USER, utcnow())


@pytest.fixture
def world(repo: Repository) -> World:
    ws, now = f"ws-contract-{uuid.uuid4().hex[:8]}", utcnow()
    repo.commit(transitions.open_workspace(Workspace(ws, ws, 5), LedgerEntry(ws, 5, LedgerReason.GRANT), now))
    repo.commit(transitions.add_member(Membership(USER, ws, Role.OWNER), now))
    return World(repo, ws)


def answer(record: str, seconds: int = 600) -> KeyedAnswer:
    return KeyedAnswer(record, "target", {"ok": True}, utcnow() + timedelta(seconds=seconds))


def unchanged(world: World, job: Job) -> bool:
    now = world.read(job.id)
    return (now.status, now.attempt, now.retry_count, now.credits_paid) == (
        job.status,
        job.attempt,
        job.retry_count,
        job.credits_paid,
    )


# --- accounts --------------------------------------------------------------------------------


def test_opening_an_existing_workspace_is_refused(world: World) -> None:
    again = transitions.open_workspace(Workspace(world.workspace, "x", 99), None, utcnow())
    with pytest.raises(TransitionRefusedError):
        world.repo.commit(again)
    assert world.credits() == 5


@pytest.mark.parametrize("expected", [None, 4])
def test_credits_never_go_below_zero_nor_change_from_an_unexpected_balance(
    world: World, expected: int | None
) -> None:
    delta = -6 if expected is None else -1
    with pytest.raises(ConflictError):
        world.repo.commit(
            transitions.change_credits(LedgerEntry(world.workspace, delta, LedgerReason.ADJUSTMENT), expected)
        )
    assert world.credits() == 5 == world.repo.ledger_sum(world.workspace)


def test_a_grant_adds_to_the_balance_with_its_entry(world: World) -> None:
    world.repo.commit(transitions.change_credits(LedgerEntry(world.workspace, 3, LedgerReason.GRANT), 5))
    assert world.credits() == 8 and world.balanced()


def test_credits_of_a_missing_workspace_are_refused(repo: Repository) -> None:
    with pytest.raises(ConflictError):
        repo.commit(
            transitions.change_credits(LedgerEntry("ws-missing-" + uuid.uuid4().hex, 1, LedgerReason.GRANT))
        )


def test_pricing_of_a_missing_workspace_is_refused_and_an_override_can_be_removed(world: World) -> None:
    with pytest.raises(WorkspaceNotFoundError):
        world.repo.commit(transitions.set_pricing("ws-none-" + uuid.uuid4().hex, FIRST_FREE, utcnow()))
    world.repo.commit(transitions.set_pricing(world.workspace, FIRST_FREE, utcnow()))
    assert world.repo.get_workspace(world.workspace).retry_pricing == FIRST_FREE  # type: ignore[union-attr]
    world.repo.commit(transitions.set_pricing(world.workspace, None, utcnow()))
    assert world.repo.get_workspace(world.workspace).retry_pricing is None  # type: ignore[union-attr]


def test_retention_is_set_by_a_member_removed_and_refused_for_a_stranger_or_no_workspace(
    world: World,
) -> None:
    world.repo.commit(transitions.set_retention(world.workspace, 7, USER, utcnow()))
    assert world.repo.get_workspace(world.workspace).keep_originals_days == 7  # type: ignore[union-attr]
    world.repo.commit(transitions.set_retention(world.workspace, 0, None, utcnow()))  # an operator
    assert world.repo.get_workspace(world.workspace).keep_originals_days == 0  # type: ignore[union-attr]
    world.repo.commit(transitions.set_retention(world.workspace, None, USER, utcnow()))
    assert world.repo.get_workspace(world.workspace).keep_originals_days is None  # type: ignore[union-attr]
    with pytest.raises(NotAMemberError):
        world.repo.commit(transitions.set_retention(world.workspace, 1, "a-stranger", utcnow()))
    with pytest.raises(WorkspaceNotFoundError):
        world.repo.commit(transitions.set_retention("ws-none-" + uuid.uuid4().hex, 1, None, utcnow()))
    assert world.repo.get_workspace(world.workspace).keep_originals_days is None  # type: ignore[union-attr]


def test_a_finished_jobs_upload_is_due_a_look_until_it_is_deleted(world: World) -> None:
    completed, cancelled = world.job(JobStatus.COMPLETED), world.job(JobStatus.CANCELLED)
    soon = utcnow() + timedelta(seconds=1)
    for job in (completed, cancelled):
        assert job.id in {j.id for j in world.repo.jobs_to_sweep(job.status, soon, 500)}
    week = utcnow() + timedelta(days=7)
    assert world.commit(transitions.original_due(completed, week, utcnow()))
    assert completed.id not in {j.id for j in world.repo.jobs_to_sweep(JobStatus.COMPLETED, soon, 500)}
    assert world.read(completed.id).sweep_at == week
    now = utcnow()
    assert world.commit(transitions.original_deleted(cancelled, now))
    gone = world.read(cancelled.id)
    assert (gone.status, gone.original_deleted_at, gone.sweep_at) == (JobStatus.CANCELLED, now, None)
    assert cancelled.id not in {j.id for j in world.repo.jobs_to_sweep(JobStatus.CANCELLED, week, 500)}


def test_batch_reads_return_only_what_exists(world: World) -> None:
    job, missing = world.job(), str(uuid.uuid4())
    assert set(world.repo.get_jobs([job.id, missing])) == {job.id}
    assert set(world.repo.get_workspaces([world.workspace, "ws-none"])) == {world.workspace}
    assert [m.workspace_id for m in world.repo.memberships_of(USER) if m.workspace_id == world.workspace]


# --- create and start ---------------------------------------------------------------------------


def test_creating_an_existing_job_is_refused(world: World) -> None:
    job = world.job()
    with pytest.raises(JobExistsError):
        world.repo.commit(transitions.create_job(dataclasses.replace(job, original_filename="other.mp4")))


def test_start_charges_one_credit_and_queues_the_first_attempt(world: World) -> None:
    job = world.job()
    started = transitions.start(job, USER, utcnow())
    world.repo.commit(started)
    stored = world.read(job.id)
    assert stored == dataclasses.replace(project(job, started), sweep_at=stored.sweep_at)
    assert (stored.status, stored.attempt, stored.credits_paid) == (JobStatus.QUEUED, 1, 1)
    assert world.attempt(job.id, 1).trigger == Trigger.INITIAL and world.credits() == 4 and world.balanced()


def test_start_at_a_stale_attempt_or_status_is_refused(world: World) -> None:
    queued = world.job(JobStatus.QUEUED)
    again = transitions.start(
        dataclasses.replace(queued, status=JobStatus.UPLOADING, attempt=0), USER, utcnow()
    )
    with pytest.raises(JobNotStartableError):
        world.repo.commit(again)
    assert world.credits() == 4


def test_start_without_credits_is_refused(world: World) -> None:
    world.repo.commit(transitions.change_credits(LedgerEntry(world.workspace, -5, LedgerReason.ADJUSTMENT)))
    job = world.job()
    with pytest.raises(InsufficientCreditsError):
        world.repo.commit(transitions.start(job, USER, utcnow()))
    assert world.read(job.id).status == JobStatus.UPLOADING


def test_start_by_someone_who_is_not_a_member_is_refused(world: World) -> None:
    job = world.job()
    with pytest.raises(NotAMemberError):
        world.repo.commit(transitions.start(job, "stranger", utcnow()))
    assert world.credits() == 5


def test_a_key_with_a_live_answer_cannot_charge_again_until_it_is_released(world: World) -> None:
    record = f"contract#{uuid.uuid4()}"
    one, two = world.job(), world.job()
    world.repo.commit(transitions.start(one, USER, utcnow(), answer(record)))
    stored = world.repo.get_answer(record, utcnow())
    assert stored is not None and stored.response == {"ok": True} and stored.target == "target"
    with pytest.raises(AnswerExistsError):
        world.repo.commit(transitions.start(two, USER, utcnow(), answer(record)))
    assert world.credits() == 4
    queued = world.read(one.id)
    undo = transitions.undo(
        queued,
        world.attempt(one.id, 1),
        LedgerReason.START_REFUND,
        BAD,
        USER,
        utcnow(),
        Release(record, True),
    )
    world.repo.commit(undo)
    assert world.repo.get_answer(record, utcnow()) is None  # released: the key is free again
    world.repo.commit(transitions.start(two, USER, utcnow(), answer(record)))
    assert world.credits() == 4 and world.balanced()


def test_an_expired_answer_is_no_answer(world: World) -> None:
    record = f"contract#{uuid.uuid4()}"
    world.repo.commit(transitions.start(world.job(), USER, utcnow(), answer(record, seconds=1)))
    assert world.repo.get_answer(record, utcnow() + timedelta(seconds=2)) is None


# --- multipart uploads -----------------------------------------------------------------------------

EXPIRED = RecordedError("The upload was not finished within 48 hours and was discarded", "UPLOAD_EXPIRED")


def test_a_multipart_upload_is_stored_with_its_part_size_and_found_by_the_sweeper_when_due(
    world: World,
) -> None:
    now = utcnow()
    due, later = world.new_job(due=now - timedelta(seconds=1)), world.new_job(due=now + timedelta(hours=1))
    stored = world.read(due.id)
    assert (stored.upload_id, stored.part_size, stored.sweep_at) == (
        due.upload_id,
        due.part_size,
        due.sweep_at,
    )
    found = {j.id for j in world.repo.jobs_to_sweep(JobStatus.UPLOADING, now, 500)}
    assert due.id in found and later.id not in found and world.job().id not in found


def test_an_upload_expires_only_while_due_and_unfinished(world: World) -> None:
    now = utcnow()
    not_yet = world.new_job(due=now + timedelta(minutes=5))
    assert not world.commit(transitions.expire_upload(not_yet, EXPIRED, now))
    completed = world.new_job(due=now - timedelta(seconds=1))
    assert world.commit(transitions.uploaded(completed, now))
    assert world.read(completed.id).sweep_at is None
    assert not world.commit(transitions.expire_upload(completed, EXPIRED, now))  # completed meanwhile
    due = world.new_job(due=now - timedelta(seconds=1))
    assert world.commit(transitions.expire_upload(due, EXPIRED, now))
    failed = world.read(due.id)
    assert (failed.status, failed.error_code, failed.error, failed.sweep_at) == (
        JobStatus.FAILED,
        "UPLOAD_EXPIRED",
        EXPIRED.message,
        None,
    )
    assert world.read(completed.id).status == JobStatus.UPLOADING
    assert world.credits() == 5 and world.balanced()


def test_an_upload_is_recorded_complete_only_while_the_job_waits_for_it(world: World) -> None:
    queued = world.job(JobStatus.QUEUED)
    stale = dataclasses.replace(queued, status=JobStatus.UPLOADING, attempt=0)
    assert not world.commit(transitions.uploaded(stale, utcnow()))
    assert world.read(queued.id).status == JobStatus.QUEUED


# --- retry -------------------------------------------------------------------------------------


def test_retry_resets_the_job_as_the_seed_says_and_charges_the_price(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    retried = world.retry(failed)
    world.repo.commit(retried)
    stored = world.read(failed.id)
    assert stored == dataclasses.replace(project(failed, retried), sweep_at=stored.sweep_at)
    assert (stored.status, stored.error, stored.error_code, stored.output_file_key) == (
        JobStatus.QUEUED,
        None,
        None,
        None,
    )
    assert (stored.attempt, stored.retry_count, stored.credits_paid) == (2, 1, 2)
    assert stored.input_file_key == failed.input_file_key and stored.created_at == failed.created_at
    assert world.credits() == 3 and world.balanced()


def test_retry_of_jobs_that_are_not_failed_names_them(world: World) -> None:
    failed, completed = world.job(JobStatus.FAILED), world.job(JobStatus.COMPLETED)
    with pytest.raises(JobsChangedError) as refused:
        world.repo.commit(world.retry(failed, dataclasses.replace(completed, status=JobStatus.FAILED)))
    assert refused.value.job_ids == {completed.id}
    assert world.credits() == 3 and unchanged(world, failed)


def test_retry_at_a_stale_attempt_or_retry_count_is_refused(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    world.repo.commit(world.retry(failed))
    with pytest.raises(JobsChangedError):
        world.repo.commit(world.retry(failed))  # attempt 1 again
    refailed = world.read(failed.id)
    assert lifecycle_fail(world, refailed)
    with pytest.raises(JobsChangedError):
        world.repo.commit(world.retry(dataclasses.replace(world.read(failed.id), retry_count=0)))


def lifecycle_fail(world: World, job: Job) -> bool:
    now = utcnow()
    assert world.commit(transitions.claim(world.ref(job.id), now, now + timedelta(minutes=1), "o"))
    return world.commit(transitions.fail(world.read(job.id), BAD, FailureKind.PERMANENT, now))


def test_retry_beyond_the_balance_is_refused(world: World) -> None:
    jobs = [world.job(JobStatus.FAILED) for _ in range(3)]
    world.repo.commit(transitions.change_credits(LedgerEntry(world.workspace, -2, LedgerReason.ADJUSTMENT)))
    with pytest.raises(InsufficientCreditsForRetryError):
        world.repo.commit(world.retry(*jobs))
    assert world.credits() == 0 and all(unchanged(world, j) for j in jobs)


def test_a_price_assumed_under_the_deployment_pricing_needs_no_other_override(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    world.repo.commit(transitions.set_pricing(world.workspace, FIRST_FREE, utcnow()))
    with pytest.raises(InsufficientCreditsForRetryError):
        world.repo.commit(world.retry(failed, basis=PricingBasis.assumed(FULL)))
    world.repo.commit(transitions.set_pricing(world.workspace, FULL, utcnow()))
    world.repo.commit(world.retry(failed, basis=PricingBasis.assumed(FULL)))  # the same pricing in force
    assert world.credits() == 3


def test_a_price_read_from_an_override_holds_only_while_that_override_does(world: World) -> None:
    jobs = [world.job(JobStatus.FAILED) for _ in range(3)]
    world.repo.commit(transitions.set_pricing(world.workspace, FIRST_FREE, utcnow()))
    read = PricingBasis.read(world.repo.get_workspace(world.workspace), FULL)  # type: ignore[arg-type]
    free = world.retry(*jobs, basis=read)
    assert free.credits == 0  # each job's first retry is free under the override read
    world.repo.commit(transitions.set_pricing(world.workspace, None, utcnow()))  # removed meanwhile
    with pytest.raises(InsufficientCreditsForRetryError):
        world.repo.commit(free)
    assert world.credits() == 2 and all(unchanged(world, j) for j in jobs)


def test_retry_by_someone_who_is_not_a_member_is_refused(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    retried = transitions.retry(
        [failed], PricingBasis.assumed(FULL), Trigger.MANUAL, "x", "stranger", utcnow()
    )
    with pytest.raises(NotAMemberError):
        world.repo.commit(retried)


def test_a_granted_retry_leaves_the_balance_and_records_who_paid(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    granted = transitions.retry(
        [failed], PricingBasis.assumed(FULL), Trigger.REPROCESS, "ops", None, utcnow(), granted=True
    )
    world.repo.commit(granted)
    assert world.credits() == 4 and world.balanced()
    assert world.attempt(failed.id, 2).credits_charged == 0 and world.read(failed.id).credits_paid == 1
    reasons = [
        e.reason for e in world.repo.ledger(world.workspace, 10, None).entries if e.job_id == failed.id
    ]
    assert reasons[:2] == [LedgerReason.OPERATOR_GRANT, LedgerReason.RETRY] or set(reasons[:2]) == {
        LedgerReason.OPERATOR_GRANT,
        LedgerReason.RETRY,
    }


def test_a_batch_refund_notes_the_job_in_the_answer(world: World) -> None:
    record = f"contract#{uuid.uuid4()}"
    one, two = world.job(JobStatus.FAILED), world.job(JobStatus.FAILED)
    world.repo.commit(world.retry(one, two, answer=answer(record)))
    undo = transitions.undo(
        world.read(two.id),
        world.attempt(two.id, 2),
        LedgerReason.RETRY_REFUND,
        BAD,
        USER,
        utcnow(),
        Release(record, False, two.id),
    )
    world.repo.commit(undo)
    stored = world.repo.get_answer(record, utcnow())
    assert stored is not None and stored.refunded == {two.id}
    assert world.credits() == 2 and world.balanced()


# --- presets, a new file, what a completed attempt produced ----------------------------------------


def test_a_job_created_with_a_preset_is_remembered_by_the_workspace_in_the_same_write(world: World) -> None:
    now = utcnow()
    job = Job(
        str(uuid.uuid4()),
        world.workspace,
        JobStatus.UPLOADING,
        "a.mp4",
        "video/mp4",
        10,
        "k",
        now,
        now,
        preset=Preset.HLS,
    )
    world.repo.commit(transitions.create_job(job, remember=True))
    assert world.read(job.id).preset == Preset.HLS
    assert world.repo.get_workspace(world.workspace).preset == Preset.HLS  # type: ignore[union-attr]
    other = dataclasses.replace(job, id=str(uuid.uuid4()), workspace_id="ws-none-" + uuid.uuid4().hex)
    with pytest.raises(WorkspaceNotFoundError):
        world.repo.commit(transitions.create_job(other, remember=True))
    assert world.repo.get_job(other.id) is None  # nothing written without its workspace


def test_the_default_preset_is_a_members_choice_and_can_be_removed(world: World) -> None:
    world.repo.commit(transitions.set_preset(world.workspace, Preset.MP4_480P, USER, utcnow()))
    assert world.repo.get_workspace(world.workspace).preset == Preset.MP4_480P  # type: ignore[union-attr]
    with pytest.raises(NotAMemberError):
        world.repo.commit(transitions.set_preset(world.workspace, Preset.HLS, "stranger", utcnow()))
    world.repo.commit(transitions.set_preset(world.workspace, None, USER, utcnow()))
    assert world.repo.get_workspace(world.workspace).preset is None  # type: ignore[union-attr]


def test_a_retry_with_another_preset_records_it_on_the_job_and_the_attempt_at_the_same_price(
    world: World,
) -> None:
    failed = world.job(JobStatus.FAILED)
    assert failed.preset == Preset.MP4_720P
    world.repo.commit(world.retry(failed, preset=Preset.MP4_480P))
    assert world.read(failed.id).preset == Preset.MP4_480P
    assert (world.attempt(failed.id, 1).preset, world.attempt(failed.id, 2).preset) == (
        Preset.MP4_720P,
        Preset.MP4_480P,
    )
    assert world.attempt(failed.id, 2).credits_charged == 1 and world.credits() == 3 and world.balanced()


def test_a_new_file_is_announced_on_a_failed_job_and_taken_by_its_retry_keeping_the_history(
    world: World,
) -> None:
    failed = world.job(JobStatus.FAILED)
    now = utcnow()
    world.repo.commit(transitions.replace_input(failed, "fixed.mov", "video/quicktime", 99, USER, now))
    announced = world.read(failed.id)
    assert (announced.status, announced.pending_filename, announced.pending_size) == (
        JobStatus.FAILED,
        "fixed.mov",
        99,
    )
    assert announced.original_filename == "a.mp4" and world.credits() == 4  # nothing charged yet
    world.repo.commit(world.retry(announced, replaced=frozenset({failed.id})))
    taken = world.read(failed.id)
    assert (taken.original_filename, taken.content_type, taken.size, taken.pending_size) == (
        "fixed.mov",
        "video/quicktime",
        99,
        None,
    )
    assert (taken.status, taken.attempt, taken.retry_count) == (JobStatus.QUEUED, 2, 1)
    assert world.attempt(failed.id, 1).outcome == Outcome.FAILED  # the first attempt's history stays
    assert world.credits() == 3 and world.balanced()


def test_a_new_file_is_refused_for_a_job_that_is_not_failed_or_by_a_stranger(world: World) -> None:
    queued = world.job(JobStatus.QUEUED)
    stale = dataclasses.replace(queued, status=JobStatus.FAILED)
    with pytest.raises(JobNotReplaceableError):
        world.repo.commit(transitions.replace_input(stale, "b.mp4", "video/mp4", 5, USER, utcnow()))
    failed = world.job(JobStatus.FAILED)
    with pytest.raises(NotAMemberError):
        world.repo.commit(transitions.replace_input(failed, "b.mp4", "video/mp4", 5, "stranger", utcnow()))
    assert world.read(failed.id).pending_size is None and world.read(queued.id).pending_size is None


def test_complete_records_what_the_attempt_produced(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    facts = OutputFacts(1280, 720, 12.5, 4242, "p/poster.jpg", "p/thumbnails.vtt", "p/stream.json")
    assert world.commit(transitions.complete(world.ref(job.id), "p/package.zip", utcnow(), facts))
    done = world.read(job.id)
    assert (done.output_width, done.output_height, done.output_duration, done.output_size) == (
        1280,
        720,
        12.5,
        4242,
    )
    assert (done.poster_key, done.thumbnails_key, done.stream_key) == (
        "p/poster.jpg",
        "p/thumbnails.vtt",
        "p/stream.json",
    )
    failed = world.job(JobStatus.FAILED)
    world.repo.commit(world.retry(failed))
    assert world.read(failed.id).output_size is None


def test_publishing_moves_forward_from_the_step_it_was_built_on_only(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    ref, now = world.ref(job.id), utcnow()
    assert not world.commit(transitions.publish(ref, 0, 1, "live-1", now))  # no plan yet
    assert world.commit(transitions.plan(ref, "{}", "3 segments", 4, 3, now, now + timedelta(minutes=5)))
    assert world.commit(transitions.publish(ref, 0, 2, "live-2", now))
    assert not world.commit(transitions.publish(ref, 0, 1, "live-1", now))  # a slower publisher's step
    assert world.commit(transitions.publish(ref, 2, 3, "live-3", now))
    stored = world.read(job.id)
    assert (stored.hls_published, stored.stream_key) == (3, "live-3")
    assert world.commit(transitions.reschedule(stored, CRASHED, now, now))
    again = world.read(job.id)
    assert (again.hls_published, again.stream_key) == (0, None)  # a new attempt publishes afresh


# --- undo after a failed send -------------------------------------------------------------------


def test_undo_of_a_job_a_worker_claimed_is_refused(world: World) -> None:
    processing = world.job(JobStatus.PROCESSING)
    undo = transitions.undo(
        dataclasses.replace(processing, status=JobStatus.QUEUED),
        world.attempt(processing.id, 1),
        LedgerReason.START_REFUND,
        BAD,
        USER,
        utcnow(),
    )
    with pytest.raises(ConflictError):
        world.repo.commit(undo)
    assert world.credits() == 4 and unchanged(world, processing)


def test_undo_of_a_free_retry_gives_the_free_retry_and_the_count_back(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    retried = world.retry(failed, basis=PricingBasis.assumed(FIRST_FREE))
    world.repo.commit(retried)
    queued = world.read(failed.id)
    assert (queued.free_retry, queued.retry_count) == (FreeRetry.RUNNING, 1)
    undo = transitions.undo(
        queued, world.attempt(failed.id, 2), LedgerReason.RETRY_REFUND, BAD, USER, utcnow()
    )
    world.repo.commit(undo)
    back = world.read(failed.id)
    assert (back.status, back.free_retry, back.retry_count, back.credits_paid) == (
        JobStatus.FAILED,
        FreeRetry.AVAILABLE,
        0,
        1,
    )
    assert world.attempt(failed.id, 2).outcome == Outcome.FAILED and world.credits() == 4


# --- the worker -------------------------------------------------------------------------------


def test_a_claim_whose_lease_ran_out_can_be_taken_again_but_not_a_live_one(world: World) -> None:
    job = world.job(JobStatus.QUEUED)
    ref, now = world.ref(job.id), utcnow()
    assert world.commit(transitions.claim(ref, now, now - timedelta(seconds=1), "a"))
    assert world.commit(transitions.claim(ref, now, now + timedelta(minutes=1), "b"))
    assert not world.commit(transitions.claim(ref, now, now + timedelta(minutes=1), "c"))
    assert world.read(job.id).lease_owner == "b"


def test_claim_of_another_attempt_or_a_missing_job_is_refused(world: World) -> None:
    job = world.job(JobStatus.QUEUED)
    now = utcnow()
    assert not world.commit(transitions.claim(QueueMessage(job.id, world.workspace, 2), now, now, "o"))
    assert not world.commit(
        transitions.claim(QueueMessage(str(uuid.uuid4()), world.workspace, 1), now, now, "o")
    )


def test_progress_and_heartbeats_of_a_stale_attempt_change_nothing(world: World) -> None:
    job = world.job(JobStatus.FAILED)
    ref = QueueMessage(job.id, world.workspace, 1)
    assert not world.commit(transitions.progress(ref, 0.5, utcnow()))
    assert not world.commit(transitions.heartbeat(ref, utcnow(), utcnow()))
    assert world.read(job.id).progress is None


def test_complete_records_the_output_and_the_outcome(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    assert world.commit(transitions.complete(world.ref(job.id), "outputs/x.mp4", utcnow()))
    done = world.read(job.id)
    assert (done.status, done.output_file_key, done.progress, done.lease_until) == (
        JobStatus.COMPLETED,
        "outputs/x.mp4",
        1.0,
        None,
    )
    assert world.attempt(job.id, 1).outcome == Outcome.SUCCEEDED


def test_a_final_platform_failure_refunds_the_round_once(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    charged = world.attempt(job.id, 1)
    failed = transitions.fail(job, CRASHED, FailureKind.TRANSIENT, utcnow(), charged)
    assert world.commit(failed)
    assert world.credits() == 5 and world.balanced()
    assert world.attempt(job.id, 1).refunded and world.read(job.id).credits_paid == 0
    assert not world.commit(failed)  # one outcome per attempt, one refund per charge
    assert world.credits() == 5


def test_a_refund_of_a_charge_already_refunded_is_refused(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    charged = world.attempt(job.id, 1)
    assert world.commit(transitions.fail(job, CRASHED, FailureKind.TRANSIENT, utcnow(), charged))
    retried = world.retry(world.read(job.id))
    world.repo.commit(retried)  # a new round whose charged attempt is 2: attempt 1 stays refunded
    assert world.commit(transitions.claim(world.ref(job.id), utcnow(), utcnow() + timedelta(minutes=1), "o"))
    stale = transitions.fail(world.read(job.id), CRASHED, FailureKind.TRANSIENT, utcnow(), charged)
    assert not world.commit(stale)  # it names attempt 1's charge, which came back already
    assert world.credits() == 4 and world.balanced()


def test_fail_of_a_finished_attempt_is_refused(world: World) -> None:
    job = world.job(JobStatus.COMPLETED)
    assert not world.commit(
        transitions.fail(
            dataclasses.replace(job, status=JobStatus.PROCESSING), BAD, FailureKind.PERMANENT, utcnow()
        )
    )
    assert world.read(job.id).status == JobStatus.COMPLETED


def test_reschedule_queues_a_free_attempt_due_later_once(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    now = utcnow()
    again = transitions.reschedule(job, CRASHED, now, now + timedelta(seconds=30))
    assert world.commit(again)
    queued = world.read(job.id)
    assert (queued.status, queued.attempt, queued.auto_attempts, queued.charged_attempt) == (
        JobStatus.QUEUED,
        2,
        1,
        1,
    )
    assert queued.next_attempt_at is not None and queued.sweep_at == queued.next_attempt_at
    assert (world.attempt(job.id, 2).trigger, world.attempt(job.id, 2).credits_charged) == (Trigger.AUTO, 0)
    assert world.attempt(job.id, 1).outcome == Outcome.FAILED
    assert not world.commit(again)
    assert world.credits() == 4


def test_the_sweeper_settles_only_an_attempt_whose_lease_ran_out(world: World) -> None:
    live = world.job(JobStatus.PROCESSING)
    now = utcnow()
    interrupt = transitions.reschedule(live, CRASHED, now, now, Lease(now), Move.INTERRUPT)
    assert not world.commit(interrupt)
    expired = world.job(JobStatus.PROCESSING, lease=timedelta(seconds=-1))
    assert world.commit(transitions.reschedule(expired, CRASHED, now, now, Lease(now), Move.INTERRUPT))
    assert world.read(expired.id).status == JobStatus.QUEUED and unchanged(world, live)


def test_the_give_up_leaves_a_live_workers_claim_and_settles_its_own_or_a_dead_one(world: World) -> None:
    now = utcnow()

    def give_up(job: Job, owner: str) -> Transition:
        charged = world.attempt(job.id, 1)
        return transitions.fail(
            job, CRASHED, FailureKind.TRANSIENT, now, charged, Lease(now, owner), Move.GIVE_UP
        )

    held = world.job(JobStatus.PROCESSING)  # owner-1's live claim
    assert not world.commit(give_up(held, "another-delivery"))
    assert world.commit(give_up(held, "owner-1"))
    dead = world.job(JobStatus.PROCESSING, lease=timedelta(seconds=-1))
    assert world.commit(give_up(dead, "another-delivery"))
    queued = world.job(JobStatus.QUEUED)
    assert world.commit(give_up(queued, "another-delivery"))
    assert world.credits() == 5 and world.balanced()  # each given-up job refunded


def test_dispatch_counts_a_resend_of_the_current_attempt_only(world: World) -> None:
    job = world.job(JobStatus.QUEUED)
    assert not world.commit(
        transitions.dispatched(dataclasses.replace(job, attempt=2), utcnow(), timedelta(0))
    )
    hold = timedelta(minutes=4)
    now = utcnow()
    assert world.commit(transitions.dispatched(job, now, hold))
    stored = world.read(job.id)
    assert (
        stored.resends == 1 and stored.sweep_at is not None and stored.sweep_at > now + timedelta(minutes=3)
    )


# --- the segmented path -----------------------------------------------------------------------


def test_a_task_counts_once_and_only_one_caller_stitches(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    ref, now = world.ref(job.id), utcnow()
    assert not world.commit(transitions.finish_task(ref, 0, now, now))  # no plan yet
    assert world.commit(transitions.plan(ref, '{"p":1}', "2 segments", 3, 2, now, now + timedelta(minutes=5)))
    assert world.attempt(job.id, 1).plan == "2 segments"
    for task in (-1, 0, 1):
        assert world.commit(transitions.finish_task(ref, task, now, now + timedelta(minutes=5)))
    assert not world.commit(transitions.finish_task(ref, 1, now, now))  # a redelivery
    stored = world.read(job.id)
    assert (stored.tasks_done, stored.segments_done, stored.segment_tasks) == (frozenset({-1, 0, 1}), 2, 3)
    assert world.commit(transitions.claim_stitch(ref, now, now + timedelta(minutes=1)))
    assert not world.commit(transitions.claim_stitch(ref, now, now + timedelta(minutes=1)))
    assert world.commit(transitions.release_stitch(ref, now))
    assert world.commit(transitions.claim_stitch(ref, now, now + timedelta(minutes=1)))
    later = now + timedelta(minutes=2)  # a crashed stitcher's claim ran out
    assert world.commit(transitions.claim_stitch(ref, later, later + timedelta(minutes=1)))


def test_a_new_attempt_plans_its_segments_afresh(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    ref, now = world.ref(job.id), utcnow()
    assert world.commit(transitions.plan(ref, "{}", "1 segment", 2, 1, now, now))
    assert world.commit(transitions.finish_task(ref, 0, now, now))
    assert world.commit(transitions.reschedule(world.read(job.id), CRASHED, now, now))
    again = world.read(job.id)
    assert (again.segment_plan, again.tasks_done, again.segments_total) == (None, frozenset(), None)


# --- cancel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.PROCESSING])
def test_cancel_refunds_the_round_once(world: World, status: JobStatus) -> None:
    job = world.job(status)
    cancel = world.cancel_of(job.id)
    assert cancel.credits == 1
    world.repo.commit(cancel)
    stored = world.read(job.id)
    assert (stored.status, stored.credits_paid, stored.lease_until) == (JobStatus.CANCELLED, 0, None)
    attempt = world.attempt(job.id, 1)
    assert (attempt.outcome, attempt.refunded) == (Outcome.CANCELLED, True)
    assert world.credits() == 5 and world.balanced()
    with pytest.raises(TransitionRefusedError):
        world.repo.commit(cancel)
    assert world.credits() == 5


def test_cancel_during_a_free_automatic_try_refunds_the_charged_attempt(world: World) -> None:
    job = world.job(JobStatus.PROCESSING)
    now = utcnow()
    assert world.commit(transitions.reschedule(job, CRASHED, now, now))  # attempt 2, free, queued
    cancel = world.cancel_of(job.id)
    world.repo.commit(cancel)
    assert world.attempt(job.id, 1).refunded and world.attempt(job.id, 2).outcome == Outcome.CANCELLED
    assert world.credits() == 5 and world.balanced()


def test_cancel_of_an_upload_refunds_nothing_and_by_a_stranger_is_refused(world: World) -> None:
    job = world.job()
    stranger = transitions.cancel(job, None, "stranger", "stranger", utcnow())
    with pytest.raises(NotAMemberError):
        world.repo.commit(stranger)
    world.repo.commit(world.cancel_of(job.id))
    assert world.read(job.id).status == JobStatus.CANCELLED and world.credits() == 5


# --- purchases: one grant per event and per session, reversals that may go below 0 ---------------


def event(kind: str = "checkout.session.completed") -> PaymentEvent:
    return PaymentEvent(f"evt_{uuid.uuid4().hex}", kind, utcnow())


def test_a_purchase_grants_its_credits_with_its_entry_and_is_recorded(world: World) -> None:
    bought, paid = world.purchase(), event()
    world.repo.commit(transitions.purchase(bought, paid, utcnow()))
    assert world.credits() == 15 and world.balanced()
    [entry] = [e for e in world.repo.ledger(world.workspace, 10, None).entries if e.delta == 10]
    assert (entry.reason, entry.session_id, entry.payment_id) == (
        LedgerReason.PURCHASE,
        bought.session_id,
        bought.payment_id,
    )
    assert world.records.get_purchase(bought.session_id) == bought
    assert world.records.purchase_paid_by(bought.payment_id or "") == bought
    assert world.records.event_applied(paid.id)
    assert world.records.get_purchase("cs_test_none") is None and not world.records.event_applied("evt_none")


def test_the_same_event_or_another_for_the_session_grants_nothing_more(world: World) -> None:
    bought, paid = world.purchase(), event()
    world.repo.commit(transitions.purchase(bought, paid, utcnow()))
    again = transitions.purchase(
        dataclasses.replace(bought, session_id=f"cs_other_{uuid.uuid4().hex}", payment_id=None),
        paid,
        utcnow(),
    )
    with pytest.raises(PaymentAppliedError) as refused:
        world.repo.commit(again)  # the same event, even naming another session
    assert refused.value.labels == {"event"}
    other = event("checkout.session.async_payment_succeeded")
    with pytest.raises(PaymentAppliedError) as refused:
        world.repo.commit(transitions.purchase(bought, other, utcnow()))
    assert refused.value.labels == {"purchase"}
    assert not world.records.event_applied(other.id)
    assert world.credits() == 15 and world.balanced()


def test_a_payment_pays_for_one_purchase_only(world: World) -> None:
    bought = world.purchase()
    world.repo.commit(transitions.purchase(bought, event(), utcnow()))
    twin = dataclasses.replace(bought, session_id=f"cs_twin_{uuid.uuid4().hex}")
    with pytest.raises(PaymentAppliedError):
        world.repo.commit(transitions.purchase(twin, event(), utcnow()))
    assert world.records.get_purchase(twin.session_id) is None and world.credits() == 15


def test_a_purchase_for_a_missing_workspace_is_refused(world: World) -> None:
    bought = world.purchase(workspace=f"ws-missing-{uuid.uuid4().hex}")
    with pytest.raises(WorkspaceNotFoundError):
        world.repo.commit(transitions.purchase(bought, event(), utcnow()))
    assert world.records.get_purchase(bought.session_id) is None


def test_a_reversal_takes_the_credits_back_even_below_zero_and_blocks_charges(world: World) -> None:
    bought = world.purchase(credits=10)
    world.repo.commit(transitions.purchase(bought, event(), utcnow()))
    world.repo.commit(transitions.change_credits(LedgerEntry(world.workspace, -12, LedgerReason.ADJUSTMENT)))
    refund = event("charge.refunded")
    world.repo.commit(transitions.purchase_reversal(bought, refund, 10, utcnow()))
    assert world.credits() == -7 and world.balanced()
    stored = world.records.get_purchase(bought.session_id)
    assert stored is not None and stored.reversed_credits == 10
    [entry] = [e for e in world.repo.ledger(world.workspace, 10, None).entries if e.delta == -10]
    assert (entry.reason, entry.payment_id) == (LedgerReason.PURCHASE_REVERSAL, bought.payment_id)
    with pytest.raises(InsufficientCreditsError):  # owed: the start's own guard refuses
        world.repo.commit(transitions.start(world.job(), USER, utcnow()))
    assert world.credits() == -7


def test_a_reversal_applies_once_and_only_from_what_it_was_decided_from(world: World) -> None:
    bought = world.purchase(credits=10)
    world.repo.commit(transitions.purchase(bought, event(), utcnow()))
    refund = event("charge.refunded")
    world.repo.commit(transitions.purchase_reversal(bought, refund, 4, utcnow()))
    stored = world.records.get_purchase(bought.session_id)
    assert stored is not None
    with pytest.raises(PaymentAppliedError):  # the same event again
        world.repo.commit(transitions.purchase_reversal(stored, refund, 10, utcnow()))
    with pytest.raises(TransitionRefusedError):  # decided from the purchase before the refund
        world.repo.commit(
            transitions.purchase_reversal(bought, event("charge.dispute.created"), 10, utcnow())
        )
    world.repo.commit(transitions.purchase_reversal(stored, event("charge.dispute.created"), 10, utcnow()))
    assert world.credits() == 5 and world.balanced()
    with pytest.raises(ValueError):  # nothing left to take back
        transitions.purchase_reversal(dataclasses.replace(stored, reversed_credits=10), event(), 10, utcnow())


def test_a_reversal_of_a_purchase_never_recorded_is_refused(world: World) -> None:
    with pytest.raises(TransitionRefusedError):
        world.repo.commit(
            transitions.purchase_reversal(world.purchase(), event("charge.refunded"), 10, utcnow())
        )
    assert world.credits() == 5 and world.balanced()


# --- the cap on active jobs (MAX_ACTIVE_JOBS) -------------------------------------------------


def test_start_and_retry_count_a_job_in_and_every_move_out_of_queued_or_processing_counts_it_out(
    world: World,
) -> None:
    queued = world.job(JobStatus.QUEUED)
    processing = world.job(JobStatus.PROCESSING)
    assert world.active() == 2 and world.counted()
    now = utcnow()
    assert world.commit(transitions.reschedule(processing, CRASHED, now, now))  # a free try: kept
    assert world.active() == 2
    world.repo.commit(world.cancel_of(queued.id))
    assert world.active() == 1
    failed = world.job(JobStatus.FAILED)  # started, claimed, failed: in, then out
    completed = world.job(JobStatus.COMPLETED)
    world.repo.commit(world.cancel_of(world.job().id))  # an upload never counted: nothing out
    assert world.active() == 1 and world.counted()
    world.repo.commit(world.retry(failed))
    assert world.active() == 2 and completed.status == JobStatus.COMPLETED and world.counted()


def test_at_the_cap_start_and_retry_are_refused_and_charge_nothing(world: World) -> None:
    failed = world.job(JobStatus.FAILED)
    world.job(JobStatus.QUEUED)
    waiting, credits = world.job(), world.credits()
    with pytest.raises(ActiveJobsLimitError):
        world.repo.commit(transitions.start(waiting, USER, utcnow(), cap=1))
    with pytest.raises(ActiveJobsLimitError):
        world.repo.commit(world.retry(failed, cap=1))
    assert world.credits() == credits and unchanged(world, waiting) and unchanged(world, failed)
    assert world.active() == 1
    world.repo.commit(transitions.start(waiting, USER, utcnow(), cap=2))  # one more fits
    assert world.active() == 2 and world.credits() == credits - 1 and world.counted()


def test_a_batch_fits_the_cap_whole_or_not_at_all(world: World) -> None:
    jobs = [world.job(JobStatus.FAILED) for _ in range(3)]
    world.repo.commit(transitions.change_credits(LedgerEntry(world.workspace, 5, LedgerReason.GRANT)))
    with pytest.raises(ActiveJobsLimitError):
        world.repo.commit(world.retry(*jobs, cap=2))
    assert world.active() == 0 and all(unchanged(world, j) for j in jobs)
    world.repo.commit(world.retry(*jobs, cap=3))
    assert world.active() == 3 and world.counted()


def test_short_of_credits_and_at_the_cap_the_credits_are_named(world: World) -> None:
    world.job(JobStatus.QUEUED)
    world.repo.commit(transitions.change_credits(LedgerEntry(world.workspace, -4, LedgerReason.ADJUSTMENT)))
    with pytest.raises(InsufficientCreditsError) as refused:
        world.repo.commit(transitions.start(world.job(), USER, utcnow(), cap=1))
    assert not isinstance(refused.value, ActiveJobsLimitError)


def test_a_workspace_stored_before_the_count_was_kept_counts_from_zero(
    world: World, request: pytest.FixtureRequest
) -> None:
    if isinstance(world.repo, FakeRepository):
        world.repo.workspaces[world.workspace].active_jobs = 0
    else:
        from chalicelib.adapters.dynamodb.models import WorkspaceModel

        WorkspaceModel(id=world.workspace).update(
            actions=[WorkspaceModel.activeJobs.remove()], add_version_condition=False
        )
    assert world.active() == 0
    world.repo.commit(transitions.start(world.job(), USER, utcnow(), cap=1))
    assert world.active() == 1
    with pytest.raises(ActiveJobsLimitError):
        world.repo.commit(transitions.start(world.job(), USER, utcnow(), cap=1))


# --- the sweeper's query ----------------------------------------------------------------------


def test_the_sweeper_finds_queued_jobs_due_and_leases_that_ran_out(world: World) -> None:
    queued = world.job(JobStatus.QUEUED)
    expired = world.job(JobStatus.PROCESSING, lease=timedelta(seconds=-1))
    live = world.job(JobStatus.PROCESSING)
    now = utcnow()
    due = {j.id for j in world.repo.jobs_to_sweep(JobStatus.QUEUED, now + timedelta(seconds=1), 500)}
    assert queued.id in due
    not_yet = {j.id for j in world.repo.jobs_to_sweep(JobStatus.QUEUED, now - timedelta(minutes=1), 500)}
    assert queued.id not in not_yet
    ran_out = {j.id for j in world.repo.jobs_to_sweep(JobStatus.PROCESSING, now, 500)}
    assert expired.id in ran_out and live.id not in ran_out
    finished = world.job(JobStatus.COMPLETED)
    assert finished.id not in {j.id for j in world.repo.jobs_to_sweep(JobStatus.PROCESSING, now, 500)}


# --- the status table, enumerated ---------------------------------------------------------------

Build = Callable[[World, Job, datetime], Transition]


def _charged(world: World, job: Job) -> Attempt | None:
    return world.repo.get_attempt(job.id, job.charged_attempt) if job.charged_attempt else None


# Each job move, built from the job as if it were read at `source` (the guard then meets whatever
# status the job really has).
BUILDERS: dict[Move, Build] = {
    Move.UPLOADED: lambda w, j, now: transitions.uploaded(j, now),
    Move.EXPIRE_UPLOAD: lambda w, j, now: transitions.expire_upload(j, EXPIRED, now),
    Move.START: lambda w, j, now: transitions.start(j, USER, now),
    Move.RETRY: lambda w, j, now: transitions.retry(
        [j], PricingBasis.assumed(FULL), Trigger.MANUAL, USER, USER, now
    ),
    Move.UNDO: lambda w, j, now: transitions.undo(
        j,
        w.repo.get_attempt(j.id, j.attempt) or Attempt(j.id, j.attempt, Trigger.INITIAL, 1, now),
        LedgerReason.START_REFUND,
        BAD,
        USER,
        now,
    ),
    Move.DISPATCH: lambda w, j, now: transitions.dispatched(j, now, timedelta(0)),
    Move.CLAIM: lambda w, j, now: transitions.claim(w.ref(j.id), now, now + timedelta(minutes=1), "o"),
    Move.PROGRESS: lambda w, j, now: transitions.progress(w.ref(j.id), 0.5, now),
    Move.HEARTBEAT: lambda w, j, now: transitions.heartbeat(w.ref(j.id), now, now + timedelta(minutes=1)),
    Move.PLAN: lambda w, j, now: transitions.plan(w.ref(j.id), "{}", "1", 2, 1, now, now),
    Move.FINISH_TASK: lambda w, j, now: transitions.finish_task(w.ref(j.id), 0, now, now),
    Move.CLAIM_STITCH: lambda w, j, now: transitions.claim_stitch(w.ref(j.id), now, now),
    Move.RELEASE_STITCH: lambda w, j, now: transitions.release_stitch(w.ref(j.id), now),
    Move.COMPLETE: lambda w, j, now: transitions.complete(w.ref(j.id), "out", now),
    Move.FAIL: lambda w, j, now: transitions.fail(j, BAD, FailureKind.PERMANENT, now),
    Move.RESCHEDULE: lambda w, j, now: transitions.reschedule(j, CRASHED, now, now),
    Move.INTERRUPT: lambda w, j, now: transitions.fail(
        j, CRASHED, FailureKind.TRANSIENT, now, _charged(w, j), Lease(now), Move.INTERRUPT
    ),
    Move.GIVE_UP: lambda w, j, now: transitions.fail(
        j, CRASHED, FailureKind.TRANSIENT, now, _charged(w, j), Lease(now, "nobody"), Move.GIVE_UP
    ),
    Move.CANCEL: lambda w, j, now: transitions.cancel(j, _charged(w, j), USER, USER, now),
    Move.REPLACE_INPUT: lambda w, j, now: transitions.replace_input(j, "new.mp4", "video/mp4", 7, USER, now),
    Move.PUBLISH: lambda w, j, now: transitions.publish(w.ref(j.id), j.hls_published, 1, "live", now),
    Move.EXPIRE_ORIGINAL: lambda w, j, now: transitions.original_deleted(j, now),
}
JOB_MOVES = [m for m in MOVES if m is not Move.CREATE]
STATUSES = list(JobStatus)


def test_every_job_move_has_a_builder() -> None:
    assert set(BUILDERS) == set(JOB_MOVES)


def _prepared(world: World, move: Move, status: JobStatus) -> Job:
    """A job at `status` that `move` could leave if the table allowed it (its plan recorded for
    the segment moves; a processing lease that ran out for the moves that need one; a multipart
    upload past its expiry for the sweeper's)."""
    lease = timedelta(seconds=-1) if MOVES[move].lease else timedelta(minutes=15)
    if move is Move.EXPIRE_UPLOAD and status == JobStatus.UPLOADING:
        return world.new_job(due=utcnow() - timedelta(seconds=1))  # an unfinished upload, due
    job = world.job(status, lease=lease)
    if status == JobStatus.PROCESSING and move in (
        Move.FINISH_TASK,
        Move.CLAIM_STITCH,
        Move.RELEASE_STITCH,
        Move.PUBLISH,
    ):
        ref, now = world.ref(job.id), utcnow()
        assert world.commit(transitions.plan(ref, "{}", "1", 2, 1, now, now + lease))
    return world.read(job.id)


@pytest.mark.parametrize(
    ("move", "status"),
    [(m, s) for m in JOB_MOVES for s in STATUSES if s not in MOVES[m].sources],
    ids=str,
)
def test_a_move_the_table_leaves_out_is_refused(world: World, move: Move, status: JobStatus) -> None:
    job = _prepared(world, move, status)
    source = sorted(MOVES[move].sources)[0]
    credits = world.credits()
    built = BUILDERS[move](world, dataclasses.replace(job, status=source), utcnow())
    with pytest.raises(DomainError):  # the move's own refusal (a 400 or a 409)
        world.repo.commit(built)
    assert unchanged(world, job) and world.credits() == credits and world.counted()


@pytest.mark.parametrize(
    ("move", "status"), [(m, s) for m in JOB_MOVES for s in sorted(MOVES[m].sources)], ids=str
)
def test_a_move_the_table_allows_arrives_where_the_table_says(
    world: World, move: Move, status: JobStatus
) -> None:
    job = _prepared(world, move, status)
    built = BUILDERS[move](world, job, utcnow())
    world.repo.commit(built)
    assert allowed(move, status, world.read(job.id).status)  # (a move that stays, stays)
    assert world.balanced() and world.counted()
