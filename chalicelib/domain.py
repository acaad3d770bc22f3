"""The seed's nouns: workspace, membership, job, attempt, ledger entry, and the purchases that add
credits. Plain data, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


# A page cursor: the sort key of the page's last item (jobs and ledger entries both sort by
# `<ISO 8601 UTC time>#<uuid>`), written URL-safe as `<time>Z_<uuid>`. Every string of this
# shape is a valid cursor.
CURSOR_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z"
    r"_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
# A media type whose type is video (RFC 6838 subtype characters): it is signed into the upload.
VIDEO_TYPE_PATTERN = r"^[Vv][Ii][Dd][Ee][Oo]/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,120}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class JobStatus(StrEnum):
    UPLOADING = "uploading"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # a member stopped it; final, its charge refunded


class Trigger(StrEnum):
    """What queued an attempt."""

    INITIAL = "initial"
    MANUAL = "manual"
    BATCH = "batch"
    AUTO = "auto"  # a free automatic retry after a platform failure
    REPROCESS = "reprocess"  # an operator or automation re-queued it (cli reprocess, a queue message)


class Outcome(StrEnum):
    """How one attempt ended (or that it has not yet)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Preset(StrEnum):
    """What a job's attempt produces (chalicelib.outputs.presets describes each)."""

    MP4_720P = "mp4-720p"  # H.264/AAC MP4, the short side at most 720 (the seed's output)
    MP4_1080P = "mp4-1080p"
    MP4_480P = "mp4-480p"
    HLS = "hls"  # an adaptive ladder (1080p, 720p, 480p as the source allows) packaged as HLS


DEFAULT_PRESET = Preset.MP4_720P


class FailureKind(StrEnum):
    """Whose fault a failure is (chalicelib.processing.failures maps every error code to one)."""

    TRANSIENT = "transient"  # the platform's: retried automatically, refunded if it never works
    PERMANENT = "permanent"  # the input's, proven: the attempt is paid for
    UNKNOWN = "unknown"  # nobody can tell: tried once more, refunded if it fails again


class RetryPricing(StrEnum):
    """What a manual retry costs (the seed's "Partial Credits"); RETRY_PRICING, or a workspace's override."""

    FULL = "full"  # every retry costs 1 credit (the seed's rule)
    FIRST_FREE = "first_free"  # a job's first retry that fails for its input is free


class FreeRetry(StrEnum):
    """A job's free retry under first_free: spent only by a free retry that ran and failed for the input."""

    AVAILABLE = "available"
    RUNNING = "running"  # the current round is the free retry
    SPENT = "spent"


class LedgerReason(StrEnum):
    GRANT = "grant"  # credits given: a new workspace, an operator's --add
    ADJUSTMENT = "adjustment"  # an operator's --set
    JOB_START = "job_start"
    RETRY = "retry"
    RETRY_REFUND = "retry_refund"  # the retry could not be queued
    START_REFUND = "start_refund"  # the first attempt could not be queued
    SYSTEM_FAILURE_REFUND = "system_failure_refund"  # the platform failed the attempt for good
    OPERATOR_GRANT = "operator_grant"  # an operator paid for a reprocess (cli reprocess --free)
    CANCEL_REFUND = "cancel_refund"  # a member cancelled a queued or processing job
    PURCHASE = "purchase"  # a credit pack paid through Stripe Checkout
    PURCHASE_REVERSAL = "purchase_reversal"  # a purchase refunded or disputed: its credits taken back


class Role(StrEnum):
    OWNER = "owner"
    MEMBER = "member"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, from a verified token."""

    user_id: str  # Cognito `sub`
    email: str = ""


@dataclass
class Workspace:
    id: str
    name: str
    credits: int
    retry_pricing: RetryPricing | None = (
        None  # an operator's override of RETRY_PRICING; None: the deployment's
    )
    preset: Preset | None = None  # the preset its uploads start with (the last one used); None: the default
    # Days an upload is kept after its job completed or was cancelled (the owner's setting);
    # None: the deployment's ORIGINALS_RETENTION_DAYS. Outputs are kept until deleted.
    keep_originals_days: int | None = None
    # Jobs queued or processing now (MAX_ACTIVE_JOBS caps it): counted up by start and retry,
    # down by every move that leaves queued/processing for good. A workspace stored before it
    # was kept has none: 0.
    active_jobs: int = 0


@dataclass
class Membership:
    user_id: str
    workspace_id: str
    role: Role
    email: str = ""


@dataclass
class Job:
    id: str
    workspace_id: str
    status: JobStatus
    original_filename: str
    content_type: str
    size: int
    input_file_key: str
    created_at: datetime
    updated_at: datetime
    created_by: str = ""
    output_file_key: str | None = None
    error: str | None = None
    error_code: str | None = None
    completed_at: datetime | None = None
    attempt: int = 0  # the number of the current attempt; 0 until started
    retry_count: int = 0
    progress: float | None = None  # 0..1 while processing, when ffmpeg reports it
    dispatched_at: datetime | None = None  # last time a message for `attempt` was sent
    resends: int = 0  # how often the sweeper re-sent `attempt`
    lease_until: datetime | None = None  # a worker's claim on `attempt` runs until then
    lease_owner: str | None = None  # ... and whose claim it is (one token per delivery)
    sweep_at: datetime | None = None  # queued or processing: when the sweeper looks at it next
    # The segmented path, for `attempt`: the plan (JSON), its tasks (segments + audio), the video
    # segments, the tasks done (AUDIO_TASK for the audio) and who stitches until when.
    segment_plan: str | None = None
    segment_tasks: int | None = None
    segments_total: int | None = None
    tasks_done: frozenset[int] = frozenset()
    stitch_until: datetime | None = None
    auto_attempts: int = 0  # free automatic tries queued since the last charged attempt
    next_attempt_at: datetime | None = None  # when the waiting automatic try is due
    charged_attempt: int = 0  # the attempt that opened the current round (what a refund pays back)
    credits_paid: int = 0  # credits the workspace paid for this job and kept (refunds taken off)
    free_retry: FreeRetry = FreeRetry.AVAILABLE
    preset: Preset = DEFAULT_PRESET  # what the current attempt produces
    # What the completed attempt produced (None until then): the (top) output's size, its length,
    # the bytes stored for the download, the poster and the thumbnail index (a WebVTT file), and
    # for HLS the stream's index (chalicelib.outputs.hls).
    output_width: int | None = None
    output_height: int | None = None
    output_duration: float | None = None
    output_size: int | None = None
    poster_key: str | None = None
    thumbnails_key: str | None = None
    stream_key: str | None = None
    hls_published: int = 0  # a long HLS video: its video tasks whose segments are playable (in order)
    # A replacement of the input announced (`replace_input`) and not yet taken by a retry: the new
    # file's name, type and declared size (its bytes go to the same input key).
    pending_filename: str | None = None
    pending_content_type: str | None = None
    pending_size: int | None = None
    original_deleted_at: datetime | None = None  # the upload deleted under the workspace's retention
    # A file above UPLOAD_MULTIPART_THRESHOLD_BYTES is uploaded in parts: R2's multipart upload id
    # and the size of every part but the last (both None: one presigned PUT). While uploading,
    # `sweep_at` is when the sweeper aborts the upload if it is still unfinished.
    upload_id: str | None = None
    part_size: int | None = None

    @property
    def multipart(self) -> bool:
        return self.upload_id is not None

    @property
    def segments_done(self) -> int:
        return sum(1 for task in self.tasks_done if task >= 0)


@dataclass
class Attempt:
    job_id: str
    n: int
    trigger: Trigger
    credits_charged: int
    queued_at: datetime
    requested_by: str = ""
    outcome: Outcome = Outcome.QUEUED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    error_code: str | None = None
    stderr_tail: str | None = None  # operators only; never in the API
    plan: str | None = None  # a long video's segment plan, in words ("40 segments of about 60 s")
    refunded: bool = False  # its credit came back (a final platform failure)
    preset: Preset = DEFAULT_PRESET  # what it was asked to produce


@dataclass
class LedgerEntry:
    workspace_id: str
    delta: int
    reason: LedgerReason
    job_id: str | None = None
    actor: str = ""
    created_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_id)
    session_id: str | None = None  # a purchase (or its reversal): the Checkout session ...
    payment_id: str | None = None  # ... and the payment (Stripe's PaymentIntent id)


@dataclass(frozen=True)
class PaymentEvent:
    """A payment provider's event, applied once: its id is recorded with the change it made."""

    id: str  # Stripe's event id (evt_...)
    type: str  # checkout.session.completed, charge.refunded, ...
    created_at: datetime


@dataclass(frozen=True)
class Purchase:
    """A credit pack bought through one Checkout session: granted once, reversed at most once in
    full (a refund, a dispute, or both, each taking back only what is not back yet)."""

    session_id: str  # Stripe's Checkout session id (cs_...)
    workspace_id: str
    pack: str
    credits: int
    amount: int  # what was paid, in the currency's smallest unit (cents)
    currency: str
    payment_id: str | None  # Stripe's PaymentIntent id (pi_...): what refunds and disputes name
    buyer: str  # the owner who started the checkout (user id)
    event_id: str  # the event that granted it
    created_at: datetime
    reversed_credits: int = 0  # taken back so far by refunds and disputes


AUDIO_TASK = -1  # the segmented path's audio task; segment tasks are numbered from 0
MAX_RETENTION_DAYS = 3650  # the longest a workspace may keep uploads after their job (ten years)

MIB = 1024**2
GIB = 1024**3
# R2's multipart rules (developers.cloudflare.com/r2/objects/multipart-objects): parts of 5 MiB
# to 5 GiB, all but the last of one size, at most 10,000 of them; a single PUT is at most 5 GiB.
# Here, not in config.py, so the API's import (chalicelib.uploads.parts) loads no settings model.
PART_MIN_BYTES = 5 * MIB
PART_MAX_BYTES = 5 * GIB
MAX_PARTS = 10_000


@dataclass(frozen=True)
class QueueMessage:
    """What the jobs queue carries: one attempt of one job, or one task of a segmented attempt.

    task None: the attempt itself (plan or single pass). A number: that segment (from 0) or the
    audio (AUDIO_TASK) of the attempt's segment plan.
    """

    job_id: str
    workspace_id: str
    attempt: int
    task: int | None = None
    preset: Preset = DEFAULT_PRESET  # the attempt's preset (messages sent before presets: the default)


@dataclass(frozen=True)
class OutputFacts:
    """What a worker stored for a completed attempt, beside the download's key (the job records
    it in `complete`)."""

    width: int
    height: int
    duration: float
    size: int  # bytes of the download (the MP4, or the HLS package)
    poster_key: str | None = None
    thumbnails_key: str | None = None
    stream_key: str | None = None  # HLS: the stream's index


@dataclass(frozen=True)
class ReprocessRequest:
    """Re-queue a workspace's failed jobs (cli reprocess, or a `reprocess` queue message)."""

    workspace_id: str
    error_code: str | None = None  # only jobs that failed with this code
    since: datetime | None = None  # only jobs that failed at or after this time
    free: bool = False  # the operator pays (an operator_grant ledger entry), not the workspace
    dry_run: bool = False  # report what would be re-queued; change nothing
    # One request charges each job at most once, however often it is delivered or re-run
    # (a queue message's `requestId`, else its SQS message id; one per CLI run).
    request_id: str = ""
