"""In-memory fakes of the ports, for unit tests of the service layer (no I/O).

The fake repository keeps the same conditions as the DynamoDB one, item by item; the real
transactions and their concurrency are proven on DynamoDB Local in tests/integration.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain import (
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    Outcome,
    Principal,
    QueueMessage,
    Role,
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
    QueueSendError,
    StorageError,
)
from chalicelib.processing.context import Services
from chalicelib.processing.ports import (
    KeyedAnswer,
    LedgerPage,
    Page,
    PresignedRequest,
    RecordedError,
    Refund,
    Release,
    RetryPlan,
    SegmentState,
    StoredObject,
)


class FakeRepository:
    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.members: dict[tuple[str, str], Membership] = {}
        self.jobs: dict[str, Job] = {}
        self.attempts: dict[tuple[str, int], Attempt] = {}
        self.entries: list[LedgerEntry] = []
        self.holds: dict[str, timedelta] = {}
        self.segments: dict[str, dict[str, Any]] = {}  # job id -> plan, tasks, done, stitch claim
        self.leases: list[datetime] = []  # every lease the heartbeat set
        self.answers: dict[str, tuple[KeyedAnswer, bool]] = {}  # record id -> (answer, released)

    # workspaces
    def get_workspace(self, workspace_id: str) -> Workspace | None:
        ws = self.workspaces.get(workspace_id)
        return copy.copy(ws) if ws else None

    def get_workspaces(self, workspace_ids: Sequence[str]) -> dict[str, Workspace]:
        return {i: copy.copy(self.workspaces[i]) for i in workspace_ids if i in self.workspaces}

    def create_workspace(self, workspace: Workspace, entry: LedgerEntry | None) -> bool:
        if workspace.id in self.workspaces:
            return False
        self.workspaces[workspace.id] = copy.copy(workspace)
        if entry:
            self.entries.append(entry)
        return True

    def memberships_of(self, user_id: str) -> list[Membership]:
        return [m for (u, _), m in self.members.items() if u == user_id]

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        return self.members.get((user_id, workspace_id))

    def put_membership(self, membership: Membership) -> None:
        self.members[(membership.user_id, membership.workspace_id)] = membership

    def change_credits(self, workspace_id: str, entry: LedgerEntry, expected: int | None = None) -> int:
        ws = self.workspaces.get(workspace_id)
        if ws is None or (expected is not None and ws.credits != expected) or ws.credits + entry.delta < 0:
            raise ConflictError()
        ws.credits += entry.delta
        self.entries.append(entry)
        return ws.credits

    def ledger(self, workspace_id: str, limit: int, cursor: str | None) -> LedgerPage:
        mine = [e for e in reversed(self.entries) if e.workspace_id == workspace_id]
        return LedgerPage(entries=mine[:limit], cursor=None)

    def ledger_sum(self, workspace_id: str) -> int:
        return sum(e.delta for e in self.entries if e.workspace_id == workspace_id)

    # jobs
    def create_job(self, job: Job) -> None:
        if job.id in self.jobs:
            raise JobExistsError()
        self.jobs[job.id] = copy.copy(job)

    def get_job(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return copy.copy(job) if job else None

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        return {i: copy.copy(self.jobs[i]) for i in job_ids if i in self.jobs}

    def list_jobs(self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None) -> Page:
        mine = [
            j for j in self.jobs.values() if j.workspace_id == workspace_id and status in (None, j.status)
        ]
        return Page(jobs=sorted(mine, key=lambda j: j.created_at, reverse=True)[:limit], cursor=None)

    def attempts_of(self, job_id: str) -> list[Attempt]:
        return sorted((a for (j, _), a in self.attempts.items() if j == job_id), key=lambda a: a.n)

    def get_attempt(self, job_id: str, n: int) -> Attempt | None:
        return self.attempts.get((job_id, n))

    # idempotency
    def get_answer(self, record_id: str, now: datetime) -> KeyedAnswer | None:
        stored = self.answers.get(record_id)
        if stored is None or stored[1] or stored[0].expires_at <= now:
            return None
        return stored[0]

    def _charge_guards(
        self, user_id: str | None, workspace_id: str, answer: KeyedAnswer | None, now: datetime
    ) -> None:
        if answer is not None and self.get_answer(answer.record_id, now) is not None:
            raise AnswerExistsError()
        if user_id is not None and (user_id, workspace_id) not in self.members:
            raise NotAMemberError()

    # transitions
    def start_job(
        self, job: Job, attempt: Attempt, entry: LedgerEntry, now: datetime, answer: KeyedAnswer | None = None
    ) -> None:
        self._charge_guards(attempt.requested_by, job.workspace_id, answer, now)
        current = self.jobs.get(job.id)
        if (
            current is None
            or current.status != JobStatus.UPLOADING
            or current.attempt != job.attempt
            or (job.id, attempt.n) in self.attempts
        ):
            raise JobNotStartableError()
        ws = self.workspaces.get(job.workspace_id)
        if ws is None or ws.credits < 1:
            raise InsufficientCreditsError()
        ws.credits -= 1
        self.entries.append(entry)
        self.attempts[(job.id, attempt.n)] = copy.copy(attempt)
        if answer is not None:
            self.answers[answer.record_id] = (answer, False)
        current.status, current.attempt, current.dispatched_at = JobStatus.QUEUED, attempt.n, now
        current.resends, current.charged_attempt, current.auto_attempts = 0, attempt.n, 0
        current.updated_at = now
        self.holds.pop(job.id, None)

    def retry_jobs(
        self,
        workspace_id: str,
        plans: Sequence[RetryPlan],
        now: datetime,
        answer: KeyedAnswer | None = None,
        member: str | None = None,
        pricing: str | None = None,
    ) -> None:
        self._charge_guards(member, workspace_id, answer, now)
        lost = {
            p.job.id
            for p in plans
            if (current := self.jobs.get(p.job.id)) is None
            or current.status != JobStatus.FAILED
            or current.attempt != p.job.attempt
            or current.retry_count != p.job.retry_count
            or (p.job.id, p.new_attempt.n) in self.attempts
        }
        if lost:
            raise JobsChangedError(lost)
        ws = self.workspaces.get(workspace_id)
        price = -sum(e.delta for p in plans for e in p.entries)
        if ws is None or ws.credits < price:
            raise InsufficientCreditsForRetryError()
        if pricing is not None and ws.retry_pricing not in (None, pricing):
            raise InsufficientCreditsForRetryError()
        ws.credits -= price
        for p in plans:
            self.entries.extend(p.entries)
            self.attempts[(p.job.id, p.new_attempt.n)] = copy.copy(p.new_attempt)
            self.jobs[p.job.id] = dataclasses.replace(
                self.jobs[p.job.id],
                status=JobStatus.QUEUED,
                attempt=p.new_attempt.n,
                retry_count=self.jobs[p.job.id].retry_count + 1,
                error=None,
                error_code=None,
                completed_at=None,
                output_file_key=None,
                dispatched_at=now,
                resends=0,
                segments_total=None,
                segments_done=0,
                charged_attempt=p.new_attempt.n,
                auto_attempts=0,
                next_attempt_at=None,
                updated_at=now,
            )
            self.holds.pop(p.job.id, None)
            self.segments.pop(p.job.id, None)
        if answer is not None:
            self.answers[answer.record_id] = (answer, False)

    def undo_queueing(
        self,
        job: Job,
        entry: LedgerEntry | None,
        error: str,
        error_code: str,
        now: datetime,
        release: Release | None = None,
    ) -> None:
        current = self.jobs.get(job.id)
        attempt = self.attempts.get((job.id, job.attempt))
        if (
            current is None
            or current.status != JobStatus.QUEUED
            or current.attempt != job.attempt
            or attempt is None
            or attempt.outcome != Outcome.QUEUED
        ):
            raise ConflictError()
        if entry is not None:
            self.workspaces[job.workspace_id].credits += entry.delta
            self.entries.append(entry)
        current.status, current.error, current.error_code = JobStatus.FAILED, error, error_code
        attempt.outcome, attempt.error, attempt.error_code = Outcome.FAILED, error, error_code
        if release is not None and release.record_id in self.answers:
            stored, released = self.answers[release.record_id]
            if release.whole:
                self.answers[release.record_id] = (stored, True)
            else:
                refunded = stored.refunded | {job.id}
                self.answers[release.record_id] = (dataclasses.replace(stored, refunded=refunded), released)

    def mark_dispatched(self, job_id: str, attempt: int, now: datetime, hold: timedelta) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status != JobStatus.QUEUED or job.attempt != attempt:
            return False
        job.dispatched_at, job.resends = now, job.resends + 1
        self.holds[job_id] = hold
        return True

    def _open_attempt(self, ref: QueueMessage) -> Attempt | None:
        attempt = self.attempts.get((ref.job_id, ref.attempt))
        if attempt is None or attempt.outcome not in (Outcome.QUEUED, Outcome.PROCESSING):
            return None
        return attempt

    def claim(self, ref: QueueMessage, now: datetime, lease_until: datetime) -> bool:
        job = self.jobs.get(ref.job_id)
        attempt = self._open_attempt(ref)
        if job is None or attempt is None or job.attempt != ref.attempt:
            return False
        stale = job.status == JobStatus.PROCESSING and job.lease_until is not None and job.lease_until < now
        if not (job.status == JobStatus.QUEUED or stale):
            return False
        job.status, job.lease_until, job.next_attempt_at = JobStatus.PROCESSING, lease_until, None
        job.updated_at = now
        attempt.outcome, attempt.started_at = Outcome.PROCESSING, now
        return True

    def extend_lease(self, ref: QueueMessage, lease_until: datetime) -> bool:
        job = self.jobs[ref.job_id]
        if job.status != JobStatus.PROCESSING or job.attempt != ref.attempt:
            return False
        job.lease_until = lease_until
        self.leases.append(lease_until)
        return True

    def set_retry_pricing(self, workspace_id: str, pricing: str | None) -> bool:
        if workspace_id not in self.workspaces:
            return False
        self.workspaces[workspace_id].retry_pricing = pricing
        return True

    def set_progress(self, ref: QueueMessage, progress: float) -> None:
        job = self.jobs.get(ref.job_id)
        if job is not None and job.status == JobStatus.PROCESSING and job.attempt == ref.attempt:
            job.progress = round(progress, 3)

    def complete(self, ref: QueueMessage, output_key: str, now: datetime) -> bool:
        job = self.jobs.get(ref.job_id)
        attempt = self._open_attempt(ref)
        if job is None or attempt is None or job.status != JobStatus.PROCESSING or job.attempt != ref.attempt:
            return False
        job.status, job.output_file_key, job.completed_at = JobStatus.COMPLETED, output_key, now
        job.error, job.error_code, job.lease_until, job.progress = None, None, None, 1
        attempt.outcome, attempt.finished_at = Outcome.SUCCEEDED, now
        return True

    def _settleable(
        self, ref: QueueMessage, allowed: tuple[JobStatus, ...], lease_expired_before: datetime | None
    ) -> bool:
        job = self.jobs.get(ref.job_id)
        attempt = self.attempts.get((ref.job_id, ref.attempt))
        if job is None or attempt is None or job.status not in allowed or job.attempt != ref.attempt:
            return False
        if attempt.outcome not in (Outcome.QUEUED, Outcome.PROCESSING):
            return False
        expired = (
            job.lease_until is not None
            and lease_expired_before is not None
            and job.lease_until < lease_expired_before
        )
        return lease_expired_before is None or expired

    def _fail_attempt(
        self, ref: QueueMessage, error: str, error_code: str, detail: str | None, now: datetime
    ) -> None:
        attempt = self.attempts[(ref.job_id, ref.attempt)]
        attempt.outcome, attempt.error, attempt.error_code, attempt.stderr_tail = (
            Outcome.FAILED,
            error,
            error_code,
            detail,
        )
        attempt.finished_at = now

    def fail(
        self,
        ref: QueueMessage,
        error: str,
        error_code: str,
        detail: str | None,
        now: datetime,
        refund: Refund | None = None,
        lease_expired_before: datetime | None = None,
    ) -> bool:
        if not self._settleable(ref, (JobStatus.PROCESSING, JobStatus.QUEUED), lease_expired_before):
            return False
        if refund is not None and self.attempts[(ref.job_id, refund.attempt)].refunded:
            return False
        job = self.jobs[ref.job_id]
        job.status, job.error, job.error_code, job.lease_until = JobStatus.FAILED, error, error_code, None
        job.next_attempt_at = None
        self._fail_attempt(ref, error, error_code, detail, now)
        if refund is not None:
            self.workspaces[ref.workspace_id].credits += refund.entry.delta
            self.entries.append(refund.entry)
            self.attempts[(ref.job_id, refund.attempt)].refunded = True
        return True

    def reschedule(
        self,
        ref: QueueMessage,
        error: RecordedError,
        retry: Attempt,
        due: datetime,
        now: datetime,
        lease_expired_before: datetime | None = None,
    ) -> bool:
        if not self._settleable(ref, (JobStatus.PROCESSING,), lease_expired_before):
            return False
        if (ref.job_id, retry.n) in self.attempts:
            return False
        self._fail_attempt(ref, error.message, error.code, error.detail, now)
        self.attempts[(ref.job_id, retry.n)] = retry
        job = self.jobs[ref.job_id]
        job.status, job.attempt, job.auto_attempts = JobStatus.QUEUED, retry.n, job.auto_attempts + 1
        job.next_attempt_at, job.dispatched_at, job.resends, job.lease_until = due, now, 0, None
        job.error = job.error_code = None
        job.segments_total, job.segments_done = None, 0
        self.segments.pop(job.id, None)  # the new attempt plans afresh (parts are reused by key)
        self.holds[job.id] = due - now
        return True

    # the segmented path: the same conditions as chalicelib/adapters/dynamodb/segments.py
    def _processing(self, ref: QueueMessage) -> Job | None:
        job = self.jobs.get(ref.job_id)
        ok = job is not None and job.status == JobStatus.PROCESSING and job.attempt == ref.attempt
        return job if ok else None

    def start_segments(
        self, ref: QueueMessage, plan: str, words: str, tasks: int, segments: int, lease_until: datetime
    ) -> bool:
        job = self._processing(ref)
        if job is None:
            return False
        self.attempts[(job.id, ref.attempt)].plan = words
        kept = self.segments.get(job.id, {}).get("done", frozenset())
        self.segments[job.id] = {"plan": plan, "tasks": tasks, "done": kept, "stitch": None}
        job.segments_total, job.lease_until = segments, lease_until
        job.progress = job.progress or 0.0
        return True

    def segment_state(self, ref: QueueMessage) -> SegmentState | None:
        job = self._processing(ref)
        seg = self.segments.get(ref.job_id)
        if job is None or seg is None:
            return None
        return SegmentState(plan=seg["plan"], tasks=seg["tasks"], done=seg["done"], newly_done=False)

    def finish_task(
        self, ref: QueueMessage, task: int, now: datetime, lease_until: datetime
    ) -> SegmentState | None:
        job, seg = self._processing(ref), self.segments.get(ref.job_id)
        if job is None or seg is None or task in seg["done"]:
            return self.segment_state(ref)
        seg["done"] = seg["done"] | {task}
        job.segments_done = sum(1 for t in seg["done"] if t >= 0)
        job.lease_until = lease_until
        return SegmentState(plan=seg["plan"], tasks=seg["tasks"], done=seg["done"], newly_done=True)

    def claim_stitch(self, ref: QueueMessage, now: datetime, until: datetime) -> bool:
        job, seg = self._processing(ref), self.segments.get(ref.job_id)
        if job is None or seg is None or (seg["stitch"] is not None and seg["stitch"] >= now):
            return False
        seg["stitch"], job.lease_until = until, until
        return True

    def release_stitch(self, ref: QueueMessage) -> None:
        if self._processing(ref) is not None and ref.job_id in self.segments:
            self.segments[ref.job_id]["stitch"] = None

    def queued_not_dispatched_since(self, cutoff: datetime, limit: int) -> list[Job]:
        return [
            copy.copy(j)
            for j in self.jobs.values()
            if j.status == JobStatus.QUEUED
            and j.dispatched_at
            and j.dispatched_at + self.holds.get(j.id, timedelta()) < cutoff
        ][:limit]

    def processing_lease_expired(self, now: datetime, limit: int) -> list[Job]:
        return [
            copy.copy(j)
            for j in self.jobs.values()
            if j.status == JobStatus.PROCESSING and j.lease_until and j.lease_until < now
        ][:limit]


class FakeStore:
    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.uploaded: dict[str, Path] = {}
        self.downloaded: list[str] = []

    def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> PresignedRequest:
        return PresignedRequest(
            url=f"https://r2.test/{key}?put",
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
        )

    def presign_download(self, key: str, expires: int, filename: str | None = None) -> str:
        return f"https://r2.test/{key}?get"

    def head(self, key: str) -> StoredObject | None:
        return (
            StoredObject(key=key, size=self.objects[key], content_type=None) if key in self.objects else None
        )

    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        self.uploaded[key] = path
        self.objects[key] = 1

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        # As the adapter: a missing object is a StorageError (R2 answers 404 to the ranged GET).
        if key not in self.objects:
            raise StorageError(f"no object {key}")
        path.write_bytes(b"\0" * self.objects[key])
        self.downloaded.append(key)

    def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self.objects if key.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
            self.uploaded.pop(key, None)
        return len(doomed)


class FakeQueue:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[QueueMessage] = []
        self.delays: list[int] = []
        self.visibility: list[tuple[str, int]] = []
        self.dead: list[tuple[str, str]] = []
        self.fail = fail

    def send(self, message: QueueMessage, delay_seconds: int = 0) -> None:
        if self.fail:
            raise QueueSendError()
        if not 0 <= delay_seconds <= 900:
            raise QueueSendError("DelaySeconds must be 0..900")
        self.sent.append(message)
        self.delays.append(delay_seconds)

    def extend_visibility(self, receipt_handle: str, seconds: int) -> None:
        if self.fail:
            raise QueueSendError()
        self.visibility.append((receipt_handle, seconds))

    def dead_letter(self, body: str, reason: str) -> None:
        if self.fail:
            raise QueueSendError()
        self.dead.append((body, reason))


ALICE = Principal(user_id="alice-sub", email="alice@example.com")
BOB = Principal(user_id="bob-sub", email="bob@example.com")


def make_services(credits: int = 10, queue: FakeQueue | None = None) -> Services:
    repo = FakeRepository()
    repo.create_workspace(Workspace("ws-a", "A", credits), LedgerEntry("ws-a", credits, LedgerReason.GRANT))
    repo.create_workspace(Workspace("ws-b", "B", 10), LedgerEntry("ws-b", 10, LedgerReason.GRANT))
    repo.put_membership(Membership(ALICE.user_id, "ws-a", Role.OWNER))
    repo.put_membership(Membership(BOB.user_id, "ws-b", Role.OWNER))
    return Services(
        settings=Settings(), repo=repo, store=FakeStore(), queue=queue or FakeQueue(), clock=utcnow
    )
