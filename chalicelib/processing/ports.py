"""What the service layer needs from the outside world. Adapters implement these; tests fake them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from chalicelib.domain import (
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    Membership,
    QueueMessage,
    Workspace,
)
from chalicelib.processing.segment_plan import Span


@dataclass(frozen=True)
class PresignedRequest:
    url: str
    method: str
    headers: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str | None


class ObjectStore(Protocol):
    """R2 through its S3-compatible API. Raises StorageError when R2 itself fails."""

    def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> PresignedRequest: ...

    def presign_download(self, key: str, expires: int, filename: str | None = None) -> str: ...

    def head(self, key: str) -> StoredObject | None:
        """The object's metadata, or None when it does not exist."""
        ...

    def upload_file(self, path: Path, key: str, content_type: str) -> None: ...

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        """Copy the object (of `size` bytes, when known) to a local file with parallel ranged
        reads. StorageError when it fails."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with prefix; how many were deleted."""
        ...


class JobQueue(Protocol):
    """Raises QueueSendError when the message could not be sent."""

    def send(self, message: QueueMessage, delay_seconds: int = 0) -> None:
        """Send; SQS holds it back `delay_seconds` (at most 900) before any worker sees it."""
        ...

    def extend_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Keep a received message hidden `seconds` more (a heartbeat). QueueSendError on failure."""
        ...

    def dead_letter(self, body: str, reason: str) -> None:
        """Put a message body on the dead-letter queue (a message that can never succeed)."""
        ...


@dataclass(frozen=True)
class TranscodeResult:
    width: int
    height: int
    duration_seconds: float
    elapsed_seconds: float


class Transcoder(Protocol):
    """FFmpeg. Raises a chalicelib.errors.ProcessingError subclass on failure."""

    def transcode(
        self,
        input_url: str,
        output_path: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> TranscodeResult: ...


@dataclass(frozen=True)
class SourceSurvey:
    """What the segmented path needs to know about a source before it plans."""

    duration_seconds: float
    video_stream: int
    audio_stream: int | None
    frame_times: tuple[float, ...]  # seconds from the file's start, sorted
    keyframe_times: tuple[float, ...]
    audio_copy: bool = False  # the audio is already what the output carries: stream-copy it


class Segmenter(Protocol):
    """FFmpeg's segmented path. Raises a chalicelib.errors.ProcessingError subclass on failure."""

    def probe_duration(self, input_url: str) -> float | None:
        """The source's duration in seconds (None when its container does not say)."""
        ...

    def survey(self, input_url: str) -> SourceSurvey: ...

    def encode_segment(
        self,
        input_url: str,
        span: Span,
        video_stream: int,
        output_path: Path,
        on_progress: Callable[[float], None] | None = None,
    ) -> float:
        """Encode one span of the video; the seconds it took."""
        ...

    def encode_audio(self, input_url: str, audio_stream: int, output_path: Path, copy: bool = False) -> float:
        """The whole file's audio, stream-copied (copy) or encoded; the seconds it took."""
        ...

    def stitch(
        self, segments: Sequence[tuple[str, float]], audio_url: str | None, output_path: Path
    ) -> TranscodeResult:
        """Join (segment URL or path, planned duration) pairs and the audio into one MP4."""
        ...


@dataclass(frozen=True)
class SegmentState:
    """A segmented attempt as the repository holds it."""

    plan: str  # the plan as start_segments stored it (JSON)
    tasks: int  # segments + the audio task
    done: frozenset[int]  # tasks recorded done (AUDIO_TASK for the audio)
    newly_done: bool  # finish_task recorded the task just now (False: it was done before)

    @property
    def complete(self) -> bool:
        return len(self.done) >= self.tasks


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    cursor: str | None


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerEntry]
    cursor: str | None


@dataclass(frozen=True)
class RetryPlan:
    """One job to re-queue in a retry transaction: the attempt read, the one to create, and its
    ledger entries (none for a free retry; a charge and an operator's grant for `reprocess --free`).

    The price (new_attempt.credits_charged) was decided from the job as read; the transaction's
    condition on the job's attempt and retry count makes it hold at the commit.
    """

    job: Job
    new_attempt: Attempt
    entries: tuple[LedgerEntry, ...]


@dataclass(frozen=True)
class Refund:
    """A final platform failure gives back the credit of the job's charged attempt."""

    entry: LedgerEntry
    attempt: int  # the charged attempt, marked refunded in the same transaction


@dataclass(frozen=True)
class RecordedError:
    """What an attempt failed with, as stored on the attempt (and, when final, on the job)."""

    message: str
    code: str
    detail: str | None = None


@dataclass(frozen=True)
class KeyedAnswer:
    """An Idempotency-Key's record: the request it answers (`target`) and its answer.

    `refunded`: jobs of a batch whose send failed after the commit and whose credit came back.
    """

    record_id: str
    target: str
    response: dict[str, Any]
    expires_at: datetime
    refunded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Release:
    """What a refund does to its request's Idempotency-Key record, in the refund's transaction:
    `whole` frees the key (the request was undone); otherwise the job is noted as refunded."""

    record_id: str
    whole: bool


class Repository(Protocol):
    """DynamoDB. Every multi-item write is one transaction; failed conditions become domain errors."""

    # workspaces, members, credits
    def get_workspace(self, workspace_id: str) -> Workspace | None: ...
    def create_workspace(self, workspace: Workspace, entry: LedgerEntry | None) -> bool: ...
    def get_workspaces(self, workspace_ids: Sequence[str]) -> dict[str, Workspace]: ...
    def memberships_of(self, user_id: str) -> list[Membership]: ...
    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None: ...
    def put_membership(self, membership: Membership) -> None: ...
    def change_credits(self, workspace_id: str, entry: LedgerEntry, expected: int | None = None) -> int: ...
    def ledger(self, workspace_id: str, limit: int, cursor: str | None) -> LedgerPage: ...
    def ledger_sum(self, workspace_id: str) -> int: ...

    # jobs
    def create_job(self, job: Job) -> None: ...
    def get_job(self, job_id: str) -> Job | None: ...
    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs that exist among `job_ids`, in one round trip."""
        ...

    def list_jobs(
        self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None
    ) -> Page: ...
    def attempts_of(self, job_id: str) -> list[Attempt]: ...
    def get_attempt(self, job_id: str, n: int) -> Attempt | None: ...

    # idempotency
    def get_answer(self, record_id: str, now: datetime) -> KeyedAnswer | None:
        """The key's stored answer; None when there is none, it expired, or it was released."""
        ...

    # transitions: each ONE transaction whose conditions include the requester's membership
    # (attempt.requested_by), the status and attempt read, the credits, and the key's record
    def start_job(
        self, job: Job, attempt: Attempt, entry: LedgerEntry, now: datetime, answer: KeyedAnswer | None = None
    ) -> None: ...
    def retry_jobs(
        self,
        workspace_id: str,
        plans: Sequence[RetryPlan],
        now: datetime,
        answer: KeyedAnswer | None = None,
        member: str | None = None,
        pricing: str | None = None,
    ) -> None:
        """`member`: whose membership the transaction checks (None: an operator's command).
        `pricing`: the RETRY_PRICING the prices were decided under; the transaction then also
        requires the workspace's override to be absent or that one (else
        InsufficientCreditsForRetryError, and the caller reads the workspace to tell why)."""
        ...

    def undo_queueing(
        self,
        job: Job,
        entry: LedgerEntry | None,
        error: str,
        error_code: str,
        now: datetime,
        release: Release | None = None,
    ) -> None:
        """The message could not be sent: the refund `entry` (None: nothing was charged), job
        failed, and the request's Idempotency-Key answer released (`release`)."""
        ...

    def mark_dispatched(self, job_id: str, attempt: int, now: datetime, hold: timedelta) -> bool:
        """A re-send at `now`: count it, and keep the job from being due again for `hold` more."""
        ...

    def set_retry_pricing(self, workspace_id: str, pricing: str | None) -> bool: ...

    def claim(self, ref: QueueMessage, now: datetime, lease_until: datetime) -> bool:
        """queued → processing for this attempt (or a processing one whose lease ran out)."""
        ...

    def extend_lease(self, ref: QueueMessage, lease_until: datetime) -> bool:
        """The heartbeat: the claim on this attempt runs until `lease_until` (False: not ours now)."""
        ...

    def set_progress(self, ref: QueueMessage, progress: float) -> None: ...
    def complete(self, ref: QueueMessage, output_key: str, now: datetime) -> bool: ...
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
        """The attempt failed for good: attempt and job failed, and the refund if any, in one
        transaction. With `lease_expired_before`, only if the claim's lease ran out before then
        (the sweeper: never fail an attempt a live worker just re-claimed)."""
        ...

    def reschedule(
        self,
        ref: QueueMessage,
        error: RecordedError,
        retry: Attempt,
        due: datetime,
        now: datetime,
        lease_expired_before: datetime | None = None,
    ) -> bool:
        """An automatic retry, in one transaction: the attempt failed with `error`, the free
        attempt `retry` is created, and the job is queued again for it, due at `due`."""
        ...

    # the segmented path (chalicelib.processing.segmented)
    def start_segments(
        self, ref: QueueMessage, plan: str, words: str, tasks: int, segments: int, lease_until: datetime
    ) -> bool:
        """Record the plan (JSON) on the job and in words on the attempt; False if it moved on."""
        ...

    def segment_state(self, ref: QueueMessage) -> SegmentState | None: ...
    def finish_task(
        self, ref: QueueMessage, task: int, now: datetime, lease_until: datetime
    ) -> SegmentState | None: ...
    def claim_stitch(self, ref: QueueMessage, now: datetime, until: datetime) -> bool: ...
    def release_stitch(self, ref: QueueMessage) -> None: ...

    # sweeper
    def queued_not_dispatched_since(self, cutoff: datetime, limit: int) -> list[Job]: ...
    def processing_lease_expired(self, now: datetime, limit: int) -> list[Job]: ...
