"""Domain errors and the one table that maps them to HTTP status, code and message.

Adapters raise these (never a botocore or pynamodb exception upwards); the HTTP entrypoint
looks the class up in ERROR_TABLE. Nothing branches on message text.
"""

from __future__ import annotations

from typing import NamedTuple


class DomainError(Exception):
    """Base of every error a caller is told about. `message` is safe to show to a person."""

    default_message = "Something went wrong"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


# --- 400 -------------------------------------------------------------------------------------
class ValidationError(DomainError):
    default_message = "The request is not valid"


class JobNotFailedError(DomainError):
    default_message = "Only failed jobs can be retried"


class JobsChangedError(JobNotFailedError):
    """Some jobs of a retry transaction were no longer failed at the attempt that was read."""

    def __init__(self, job_ids: set[str]) -> None:
        self.job_ids = job_ids
        super().__init__()


class JobNotStartableError(DomainError):
    default_message = "Only jobs waiting for their upload can be started"


class WorkspaceAmbiguousError(DomainError):
    default_message = "You belong to several workspaces: say which one with workspaceId"


class UploadIncompleteError(DomainError):
    default_message = "The upload is missing or incomplete. Upload the file, then start the job."


class JobNotCompletedError(DomainError):
    default_message = "Only completed jobs can be downloaded"


class JobNotCancellableError(DomainError):
    default_message = "Only queued or processing jobs can be cancelled"


class UnknownPackError(ValidationError):
    default_message = "There is no such credit pack"


class WebhookRejectedError(ValidationError):
    """A webhook request whose signature, timestamp or body did not verify: nothing is written."""

    default_message = "The webhook's signature could not be verified"


class NotUploadingError(DomainError):
    """A request about a job's upload (its parts, completing or aborting it) for a job that is no
    longer waiting for it, or whose upload is one PUT rather than parts."""

    default_message = "This job is no longer waiting for its upload"


class PartsIncompleteError(UploadIncompleteError):
    """Completing a multipart upload whose stored parts do not add up to the declared file."""

    default_message = "The upload is missing parts. Upload them, then complete it."


# --- 401 / 403 -------------------------------------------------------------------------------
class UnauthorizedError(DomainError):
    default_message = "Authentication required"


class ForbiddenError(DomainError):
    default_message = "You are not allowed to do this"


class InsufficientCreditsError(DomainError):
    default_message = "Insufficient credits. Please purchase more credits."


class InsufficientCreditsForRetryError(InsufficientCreditsError):
    default_message = "Insufficient credits. Please purchase more credits to retry."


# --- 404 -------------------------------------------------------------------------------------
class NotFoundError(DomainError):
    default_message = "Not found"


class JobNotFoundError(NotFoundError):
    default_message = "Job not found"


class WorkspaceNotFoundError(NotFoundError):
    default_message = "Workspace not found"


class CheckoutNotFoundError(NotFoundError):
    default_message = "Checkout not found"


class NotAMemberError(JobNotFoundError):
    """A transaction's membership condition failed: answered exactly like a missing job."""


# --- 409 -------------------------------------------------------------------------------------
class ConflictError(DomainError):
    default_message = "The resource changed while the request ran. Try again."


class UploadGoneError(ConflictError):
    default_message = "The original upload no longer exists. Please upload the video again."


class TransactionConflictError(ConflictError):
    """Another transaction held one of the items; the whole request may be tried again."""

    default_message = "Another request changed this at the same moment. Try again."


class RequestInProgressError(ConflictError):
    default_message = "A request with this Idempotency-Key is still in progress"


class AnswerExistsError(ConflictError):
    """The charge transaction found its Idempotency-Key's record already written: replay it."""

    default_message = "A request with this Idempotency-Key was already answered"


class JobExistsError(ConflictError):
    default_message = "A job with this id already exists"


class TransitionRefusedError(ConflictError):
    """A transition's guards did not hold when it was committed: the job (or the workspace)
    moved on, and nothing was written. `labels` name the writes that refused."""

    default_message = "The job changed while the request ran. Try again."

    def __init__(self, labels: frozenset[str] = frozenset()) -> None:
        self.labels = labels
        super().__init__()


class PaymentAppliedError(ConflictError):
    """A payment event's change is recorded already (the same event again, or another event for
    the same Checkout session): nothing more is granted or taken back."""

    default_message = "This payment event was applied already"

    def __init__(self, labels: frozenset[str] = frozenset()) -> None:
        self.labels = labels
        super().__init__()


# --- 413 -------------------------------------------------------------------------------------
class PayloadTooLargeError(DomainError):
    default_message = "The file is too large"


# --- 429 -------------------------------------------------------------------------------------
class TooManyRequestsError(DomainError):
    """Not now: answered 429 with `Retry-After` (`retry_after` seconds; None: RETRY_AFTER_SECONDS)."""

    default_message = "Too many requests. Try again shortly."

    def __init__(self, message: str | None = None, retry_after: int | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ActiveJobsLimitError(TooManyRequestsError):
    """The workspace has MAX_ACTIVE_JOBS jobs queued or processing: nothing was charged."""

    default_message = (
        "This workspace has as many jobs queued or processing as it may have at once. "
        "Try again when some have finished; nothing was charged."
    )


class RateLimitedError(TooManyRequestsError):
    default_message = "Too many requests from you in a short time. Try again shortly."


# --- 5xx: ours, not the client's ----------------------------------------------------------
class ServiceUnavailableError(DomainError):
    default_message = "A dependency is unavailable. Try again shortly."


class QueueSendError(ServiceUnavailableError):
    default_message = "Could not queue the job"


class StorageError(ServiceUnavailableError):
    default_message = "Storage is unavailable. Try again shortly."


class PaymentsUnavailableError(ServiceUnavailableError):
    default_message = "Buying credits is not available right now. Try again later."


class PaymentProviderError(ServiceUnavailableError):
    default_message = "The payment service is unavailable. Try again shortly."


class TaskRetryError(ServiceUnavailableError):
    """A segmented attempt's task failed for a system reason: SQS delivers it again (free)."""

    default_message = "The task failed for a system reason and will be retried"


class StoppedError(Exception):
    """The attempt's work was stopped while it ran (a member cancelled the job, or the attempt is
    no longer this worker's): nothing more is done or recorded. Not a failure of the job."""


class HttpError(NamedTuple):
    status: int
    code: str


# Most specific class first is not needed: lookup walks the class's MRO.
ERROR_TABLE: dict[type[DomainError], HttpError] = {
    ValidationError: HttpError(400, "BAD_REQUEST"),
    JobNotFailedError: HttpError(400, "BAD_REQUEST"),
    JobNotStartableError: HttpError(400, "BAD_REQUEST"),
    WorkspaceAmbiguousError: HttpError(400, "BAD_REQUEST"),
    UploadIncompleteError: HttpError(400, "BAD_REQUEST"),
    JobNotCompletedError: HttpError(400, "BAD_REQUEST"),
    JobNotCancellableError: HttpError(400, "BAD_REQUEST"),
    NotUploadingError: HttpError(400, "BAD_REQUEST"),
    UnauthorizedError: HttpError(401, "UNAUTHORIZED"),
    ForbiddenError: HttpError(403, "FORBIDDEN"),
    InsufficientCreditsError: HttpError(403, "FORBIDDEN"),
    NotFoundError: HttpError(404, "NOT_FOUND"),
    ConflictError: HttpError(409, "CONFLICT"),
    PayloadTooLargeError: HttpError(413, "PAYLOAD_TOO_LARGE"),
    TooManyRequestsError: HttpError(429, "TOO_MANY_REQUESTS"),
    ServiceUnavailableError: HttpError(503, "SERVICE_UNAVAILABLE"),
    DomainError: HttpError(500, "INTERNAL_SERVER_ERROR"),
}


def http_error_for(error: DomainError) -> HttpError:
    """The status and code of a domain error: the nearest class in ERROR_TABLE."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[DomainError]


# --- Worker failures: what a person reads on a failed job -----------------------------------
class ProcessingError(Exception):
    """A job's attempt failed for a reason a person can understand. Not an HTTP error."""

    code = "PROCESSING_FAILED"
    default_message = "Processing failed"

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        self.message = message or self.default_message
        self.detail = detail  # operator-only (stderr tail, exception text); never shown raw
        super().__init__(self.message)


class FFmpegNotFoundError(ProcessingError):
    code = "FFMPEG_NOT_FOUND"
    default_message = "FFmpeg not found"


class DownloadError(ProcessingError):
    code = "R2_DOWNLOAD_FAILED"
    default_message = "Failed to download from R2"


class UploadOutputError(ProcessingError):
    code = "R2_UPLOAD_FAILED"
    default_message = "Failed to upload the result to R2"


class InvalidVideoError(ProcessingError):
    code = "INVALID_VIDEO"
    default_message = "The file is not a readable video"


class TranscodeTimeoutError(ProcessingError):
    code = "TRANSCODE_TIMEOUT"
    default_message = "Processing took too long and was stopped"


class TranscodeFailedError(ProcessingError):
    code = "TRANSCODE_FAILED"
    default_message = "FFmpeg could not convert this video"


class WorkerInterruptedError(ProcessingError):
    code = "WORKER_INTERRUPTED"
    default_message = "Processing was interrupted before it finished. You can retry the job."


class InternalProcessingError(ProcessingError):
    code = "INTERNAL_ERROR"
    default_message = "Processing failed because of an internal error. You can retry the job."


class InputMissingError(DownloadError):
    """The upload is gone from R2: no retry can bring it back."""

    code = "INPUT_MISSING"
    default_message = "Failed to download from R2: the original upload no longer exists"


class UploadExpiredError(ProcessingError):
    """A multipart upload left unfinished past UPLOAD_MULTIPART_EXPIRY_SECONDS: its parts were
    discarded (recorded on the job by the sweeper; no attempt ever ran)."""

    code = "UPLOAD_EXPIRED"
    default_message = "The upload was not finished in time and was discarded"


class FFmpegCrashedError(ProcessingError):
    """ffmpeg or ffprobe ended on a signal (killed, out of memory): the machine's fault, not the file's."""

    code = "FFMPEG_CRASHED"
    default_message = "FFmpeg stopped unexpectedly"


class RepeatedFailureError(ProcessingError):
    """The job's message failed every delivery (it reached, or was about to reach, the DLQ)."""

    code = "PROCESSING_FAILED_REPEATEDLY"
    default_message = "Processing failed repeatedly. Your credit was refunded."
