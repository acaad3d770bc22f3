"""The failure taxonomy: every way an attempt can fail, whose fault it is, and what to do about it.

- transient: the platform's fault (storage unreachable, a worker killed, ffmpeg missing or
  crashing on a signal, a lease that ran out). Retried automatically for free; if the last
  automatic try fails too, the charged attempt's credit is refunded.
- permanent: the input's fault, proven (not a video, corrupt, no video stream, gone, over the
  limits). Failed at once; the attempt is paid for.
- unknown: nobody can tell (ffmpeg exited with an error we do not recognise, a crash in the
  worker). Tried once more for free; if that fails too, failed and refunded: only a failure
  proven to be the input's keeps the credit (chalicelib.lifecycle.pricing.keeps_credit).

`retryable` answers "would a manual Retry plausibly help?": yes for everything but permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain import FailureKind
from chalicelib.errors import (
    DownloadError,
    FFmpegCrashedError,
    FFmpegNotFoundError,
    InputMissingError,
    InternalProcessingError,
    InvalidVideoError,
    ProcessingError,
    RepeatedFailureError,
    TranscodeFailedError,
    TranscodeTimeoutError,
    UploadExpiredError,
    UploadOutputError,
    WorkerInterruptedError,
)


@dataclass(frozen=True)
class Failure:
    error_code: str
    message: str
    kind: FailureKind
    suggestion: str

    @property
    def retryable(self) -> bool:
        return self.kind is not FailureKind.PERMANENT


_TRY_AGAIN = "This was a problem on our side, not with your file. Retrying should work."

_TABLE: dict[str, Failure] = {
    f.error_code: f
    for f in (
        Failure(DownloadError.code, DownloadError.default_message, FailureKind.TRANSIENT, _TRY_AGAIN),
        Failure(UploadOutputError.code, UploadOutputError.default_message, FailureKind.TRANSIENT, _TRY_AGAIN),
        Failure(
            FFmpegNotFoundError.code, FFmpegNotFoundError.default_message, FailureKind.TRANSIENT, _TRY_AGAIN
        ),
        Failure(
            FFmpegCrashedError.code, FFmpegCrashedError.default_message, FailureKind.TRANSIENT, _TRY_AGAIN
        ),
        Failure(
            WorkerInterruptedError.code,
            WorkerInterruptedError.default_message,
            FailureKind.TRANSIENT,
            _TRY_AGAIN,
        ),
        Failure(
            InternalProcessingError.code,
            InternalProcessingError.default_message,
            FailureKind.TRANSIENT,
            _TRY_AGAIN,
        ),
        Failure(
            RepeatedFailureError.code, RepeatedFailureError.default_message, FailureKind.TRANSIENT, _TRY_AGAIN
        ),
        Failure("QUEUE_SEND_FAILED", "The job could not be queued", FailureKind.TRANSIENT, _TRY_AGAIN),
        Failure(
            InvalidVideoError.code,
            InvalidVideoError.default_message,
            FailureKind.PERMANENT,
            "Upload a different file: this one is not a readable video.",
        ),
        Failure(
            InputMissingError.code,
            InputMissingError.default_message,
            FailureKind.PERMANENT,
            "Upload the video again: the original file is no longer stored.",
        ),
        Failure(
            UploadExpiredError.code,
            UploadExpiredError.default_message,
            FailureKind.PERMANENT,
            "Choose the video again to upload it as a new job: an unfinished upload is not kept.",
        ),
        Failure(
            TranscodeTimeoutError.code,
            TranscodeTimeoutError.default_message,
            FailureKind.PERMANENT,
            "Upload a shorter or smaller video: this one takes longer than the processing limit.",
        ),
        Failure(
            TranscodeFailedError.code,
            TranscodeFailedError.default_message,
            FailureKind.UNKNOWN,
            "If it fails again, try re-exporting the video in a common format (MP4, H.264).",
        ),
        Failure(
            ProcessingError.code,
            ProcessingError.default_message,
            FailureKind.UNKNOWN,
            "If it fails again, try re-exporting the video in a common format (MP4, H.264).",
        ),
    )
}

_UNKNOWN = _TABLE[ProcessingError.code]


def describe(error_code: str | None) -> Failure | None:
    """The taxonomy entry of a job's or attempt's error code; None when there is no error."""
    if not error_code:
        return None
    return _TABLE.get(error_code) or Failure(
        error_code, _UNKNOWN.message, FailureKind.UNKNOWN, _UNKNOWN.suggestion
    )


def classify(error: ProcessingError) -> Failure:
    """The entry for a raised error, keeping the error's own (maybe more precise) message."""
    known = describe(error.code) or _UNKNOWN
    return Failure(known.error_code, error.message, known.kind, known.suggestion)


def retry_automatically(kind: FailureKind, tries_so_far: int, max_tries: int) -> bool:
    """Whether the attempt that just failed gets a free automatic try after it.

    `tries_so_far` counts the failed try: 1 for the charged attempt itself.
    """
    if tries_so_far >= max_tries:
        return False
    if kind is FailureKind.TRANSIENT:
        return True
    return kind is FailureKind.UNKNOWN and tries_so_far == 1  # unknown: transient once, then permanent
