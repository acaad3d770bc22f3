"""Request and response bodies: pydantic models with the seed's camelCase names.

They validate what clients send and generate /openapi.json.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
)
from pydantic.alias_generators import to_camel

from chalicelib.domain import (
    CURSOR_PATTERN,
    MAX_RETENTION_DAYS,
    UUID_PATTERN,
    VIDEO_TYPE_PATTERN,
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    RetryPricing,
)
from chalicelib.lifecycle.pricing import retry_price
from chalicelib.outputs.playback import playable
from chalicelib.processing.failures import describe
from chalicelib.processing.retention import Retention

StatusName = Literal["uploading", "queued", "processing", "completed", "failed", "cancelled"]
# The presets (chalicelib.outputs.presets; docs/outputs.md). A name outside the list is refused
# with 400 by the service, naming the valid ones; the document lists them.
PresetName = Literal["mp4-720p", "mp4-1080p", "mp4-480p", "hls"]
PRESET_NAMES: list[str] = list(get_args(PresetName))


def _optional_preset_schema(schema: dict[str, Any]) -> None:
    schema.pop("anyOf", None)
    schema["anyOf"] = [{"type": "string", "enum": PRESET_NAMES}, {"type": "null"}]


def preset_field() -> Any:
    """An optional preset in a request: documented as the list, checked by the service."""
    return Field(default=None, json_schema_extra=_optional_preset_schema)


def _whole(value: Any) -> Any:
    """A JSON number without a fraction (10 or 10.0, as JSON Schema's `integer`); not `true`, not
    "10" (lax pydantic would take both)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole)]


class Schema(BaseModel):
    # defer_build: each model builds its validator on first use, not at import (a cold start
    # pays only for the models its request uses).
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", defer_build=True
    )


# Present only as "deferred": the send failed and so did the refund; the job is queued and
# charged, and the sweeper sends it within a few minutes.
Delivery = Literal["deferred"]


class _Sparse(Schema):
    @model_serializer(mode="wrap")
    def _only_what_is_known(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


# --- requests ----------------------------------------------------------------------------------
class WorkspaceIn(Schema):
    workspace_id: str | None = Field(default=None, min_length=1, max_length=64)


# Constraints below marked "documented" appear in /openapi.json and are enforced by the service
# layer (or the adapter), which words the refusal for a person ("The file is empty ...").


class UploadIn(WorkspaceIn):
    """A file about to be uploaded: its name, type and size (signed into the presigned PUT)."""

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=127, json_schema_extra={"pattern": VIDEO_TYPE_PATTERN})
    # documented: at least 1, at most UPLOAD_MAX_BYTES (413 above it)
    size: WholeNumber = Field(json_schema_extra={"minimum": 1})

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # Only a display name (the storage key never contains it): keep the last path part,
        # without control characters; a name with nothing left becomes "video".
        name = "".join(c for c in value.replace("\\", "/") if ord(c) >= 32 and ord(c) != 127)
        parts = [p.strip() for p in name.split("/") if p.strip()]
        return parts[-1] if parts else "video"


class CreateJobIn(UploadIn):
    # Omitted: the workspace's (the last one used there, or mp4-720p). Given: it becomes the
    # workspace's too. Checked by the service, whose 400 names the valid presets.
    preset: str | None = preset_field()


class ReplaceInputIn(UploadIn):
    """The new file for a failed job ("Upload a new file")."""


class RetryIn(WorkspaceIn):
    # "Retry with different settings": what this retry produces (at the same price); omitted: the
    # job's current preset.
    preset: str | None = preset_field()


class BatchRetryIn(WorkspaceIn):
    # documented: 1 to BATCH_RETRY_MAX UUIDs
    job_ids: list[str] = Field(
        json_schema_extra={"minItems": 1, "items": {"type": "string", "pattern": UUID_PATTERN}}
    )


class ListJobsQuery(WorkspaceIn):
    status: StatusName | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, json_schema_extra={"pattern": CURSOR_PATTERN})  # documented


class LedgerQuery(WorkspaceIn):
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = Field(default=None, json_schema_extra={"pattern": CURSOR_PATTERN})  # documented


# --- responses -------------------------------------------------------------------------------
class ErrorOut(Schema):
    code: str
    message: str


class HealthOut(Schema):
    status: Literal["ok"]


class AttemptOut(Schema):
    n: int
    trigger: Literal["initial", "manual", "batch", "auto", "reprocess"]
    credits_charged: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outcome: Literal["queued", "processing", "succeeded", "failed", "cancelled"]
    error: str | None
    error_code: str | None
    refunded: bool  # its credit came back: the platform failed it for good
    plan: str | None = None  # a long video: how it was cut ("3 segments of about 60 s; ...")
    preset: PresetName = "mp4-720p"  # what it was asked to produce

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(
            preset=a.preset.value,
            refunded=a.refunded,
            n=a.n,
            trigger=a.trigger.value,
            credits_charged=a.credits_charged,
            queued_at=a.queued_at,
            started_at=a.started_at,
            finished_at=a.finished_at,
            outcome=a.outcome.value,
            error=a.error,
            error_code=a.error_code,
            plan=a.plan,
        )


class JobOut(Schema):
    id: str
    workspace_id: str
    status: StatusName
    original_filename: str
    content_type: str
    size: int
    input_file_key: str
    output_file_key: str | None
    error: str | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    attempt: int
    retry_count: int
    progress: float | None
    retryable: bool | None  # failed jobs: would a manual retry plausibly help?
    suggestion: str | None  # failed jobs: what to do about it
    retry_price: int | None  # failed jobs: credits a manual retry costs now (0 or 1)
    next_attempt_at: datetime | None  # queued for a free automatic try, due then
    auto_attempts: int  # free automatic tries queued since the last charged attempt
    max_auto_attempts: int  # tries per charged attempt, the charged one included
    segments_total: int | None = None  # a long video processed in segments: how many
    segments_done: int | None = None  # ... and how many are encoded
    preset: PresetName = "mp4-720p"  # what the current attempt produces
    # What the completed attempt produced: the (largest) output's size, its length, and the bytes
    # of the download (the MP4, or the HLS package).
    output_width: int | None = None
    output_height: int | None = None
    duration_seconds: float | None = None
    output_size: int | None = None
    poster_url: str | None = None  # a completed job's poster (a presigned URL; lists and GET only)
    playable: bool = False  # it plays now: completed, or a long HLS video with its first segments
    has_thumbnails: bool = False  # the player's seek bar shows thumbnails
    input_failure: bool = False  # failed because of its file: "Upload a new file" helps
    pending_upload: bool = False  # a new file was announced (POST /jobs/{id}/replace), not yet retried
    original_deleted_at: datetime | None = None  # the upload deleted under the workspace's retention
    part_size: int | None = None  # a file uploaded in parts: every part but the last has this size
    upload_expires_at: datetime | None = None  # an unfinished multipart upload is discarded then

    @classmethod
    def of(
        cls,
        job: Job,
        pricing: RetryPricing | None = None,
        max_tries: int = 3,
        poster_url: str | None = None,
    ) -> JobOut:
        failure = describe(job.error_code) if job.status == JobStatus.FAILED else None
        unfinished = job.status == JobStatus.UPLOADING and job.multipart
        return cls(
            preset=job.preset.value,
            output_width=job.output_width,
            output_height=job.output_height,
            duration_seconds=job.output_duration,
            output_size=job.output_size,
            poster_url=poster_url,
            playable=playable(job),
            has_thumbnails=bool(job.thumbnails_key) and job.status == JobStatus.COMPLETED,
            input_failure=failure is not None and failure.input_at_fault,
            pending_upload=job.pending_size is not None,
            part_size=job.part_size,
            upload_expires_at=job.sweep_at if unfinished else None,
            retryable=failure.retryable if failure else None,
            suggestion=failure.suggestion if failure else None,
            retry_price=retry_price(pricing or RetryPricing.FULL, job)
            if job.status == JobStatus.FAILED
            else None,
            next_attempt_at=job.next_attempt_at if job.status == JobStatus.QUEUED else None,
            auto_attempts=job.auto_attempts,
            max_auto_attempts=max_tries,
            id=job.id,
            workspace_id=job.workspace_id,
            status=job.status.value,
            original_filename=job.original_filename,
            content_type=job.content_type,
            size=job.size,
            input_file_key=job.input_file_key,
            output_file_key=job.output_file_key,
            error=job.error,
            error_code=job.error_code,
            created_at=job.created_at,
            updated_at=job.updated_at,
            completed_at=job.completed_at,
            attempt=job.attempt,
            retry_count=job.retry_count,
            progress=job.progress,
            segments_total=job.segments_total,
            segments_done=job.segments_done if job.segments_total else None,
            original_deleted_at=job.original_deleted_at,
        )


class JobDetailOut(JobOut):
    """A job with its retry history, oldest attempt first."""

    attempts: list[AttemptOut]

    @classmethod
    def of_detail(
        cls,
        job: Job,
        attempts: list[Attempt],
        pricing: RetryPricing,
        max_tries: int,
        poster_url: str | None = None,
    ) -> JobDetailOut:
        job_out = JobOut.of(job, pricing, max_tries, poster_url)
        return cls(**dict(job_out), attempts=[AttemptOut.of(a) for a in attempts])


class JobDetailEnvelope(Schema):
    job: JobDetailOut


class JobEnvelope(Schema):
    job: JobOut


class StartedOut(_Sparse):
    job: JobOut
    delivery: Delivery | None = None


class UploadOut(Schema):
    """One PUT of the whole file to `url` with exactly `headers`."""

    url: str
    method: Literal["PUT"]
    headers: dict[str, str]


class MultipartUploadOut(Schema):
    """The file in `partCount` parts of `partSize` bytes (the last one shorter): presign them with
    POST /jobs/{jobId}/upload/parts, PUT each, then POST /jobs/{jobId}/upload/complete."""

    method: Literal["MULTIPART"]
    part_size: int
    part_count: int
    max_parts_per_request: int  # part numbers one POST /jobs/{jobId}/upload/parts may sign
    expires_at: datetime  # unfinished by then, the upload is discarded and the job fails


class CreatedJobOut(Schema):
    job: JobOut
    upload: Annotated[UploadOut | MultipartUploadOut, Field(discriminator="method")]


class JobPageOut(Schema):
    jobs: list[JobOut]
    cursor: str | None


class DownloadOut(Schema):
    url: str


class RetryOut(_Sparse):
    success: bool
    job_id: str
    credits_charged: int
    delivery: Delivery | None = None
    preset: PresetName | None = None  # what the retry produces, when the request named a preset


class ReplacedOut(Schema):
    job: JobOut
    upload: UploadOut


class CancelOut(Schema):
    success: bool
    job_id: str
    status: Literal["cancelled"]
    credits_refunded: int  # 0 when the job was cancelled before, or nothing was charged


class RetryItemOut(_Sparse):
    job_id: str
    success: bool
    code: str | None = None  # `code` and `message` explain a refusal; a success has neither
    message: str | None = None
    delivery: Delivery | None = None
    credits_charged: int | None = None  # a success: what this job's retry cost


class BatchRetryOut(Schema):
    results: list[RetryItemOut]
    credits_charged: int
    credits: int | None  # null when the balance could not be read after the commit


class UserOut(Schema):
    id: str
    email: str


class WorkspaceOut(Schema):
    id: str
    name: str
    role: Literal["owner", "member"]
    credits: int


class MeOut(Schema):
    user: UserOut
    workspaces: list[WorkspaceOut]


class CreditsOut(Schema):
    workspace_id: str
    credits: int


class LedgerEntryOut(Schema):
    id: str
    delta: int
    reason: str
    job_id: str | None
    created_at: datetime
    session_id: str | None  # a purchase or its reversal: the Stripe Checkout session ...
    payment_id: str | None  # ... and the payment it names

    @classmethod
    def of(cls, e: LedgerEntry) -> LedgerEntryOut:
        return cls(
            id=e.id,
            delta=e.delta,
            reason=e.reason.value,
            job_id=e.job_id,
            created_at=e.created_at,
            session_id=e.session_id,
            payment_id=e.payment_id,
        )


class LedgerOut(Schema):
    workspace_id: str
    entries: list[LedgerEntryOut]
    cursor: str | None


# A whole number of days (1.0 is one, as JSON Schema says; not `true`, not "7") within the bounds
RetentionDays = Annotated[
    WholeNumber,
    Field(ge=0, le=MAX_RETENTION_DAYS),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_RETENTION_DAYS}),
]


class RetentionIn(WorkspaceIn):
    # null: back to the deployment's default (ORIGINALS_RETENTION_DAYS)
    keep_originals_days: RetentionDays | None = None


class RetentionOut(Schema):
    """How long the workspace keeps uploads after their job completed or was cancelled."""

    workspace_id: str
    keep_originals_days: int
    default_days: int  # the deployment's ORIGINALS_RETENTION_DAYS
    chosen: bool  # an owner chose keep_originals_days (False: the default)
    can_change: bool  # the caller is an owner
    outputs: Literal["kept until deleted"] = "kept until deleted"

    @classmethod
    def of(cls, r: Retention) -> RetentionOut:
        return cls(
            workspace_id=r.workspace_id,
            keep_originals_days=r.days,
            default_days=r.default_days,
            chosen=r.chosen,
            can_change=r.can_change,
        )
