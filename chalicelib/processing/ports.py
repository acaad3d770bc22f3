"""What the service layer needs from the outside world. Adapters implement these; tests fake them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from chalicelib.domain import (
    DEFAULT_PRESET,
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    Membership,
    Preset,
    QueueMessage,
    Workspace,
)
from chalicelib.lifecycle.model import KeyedAnswer, Transition
from chalicelib.outputs.presets import Rung
from chalicelib.processing.audio_plan import Chunk
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
    etag: str = ""  # changes when the object's bytes do (a replaced input)


@dataclass(frozen=True)
class StoredPart:
    """One part of an unfinished multipart upload, as R2 lists it."""

    number: int
    size: int
    etag: str


class ObjectStore(Protocol):
    """R2 through its S3-compatible API. Raises StorageError when R2 itself fails."""

    def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> PresignedRequest: ...

    # Multipart uploads (a file in parts; chalicelib.uploads decides their sizes)
    def start_multipart(self, key: str, content_type: str) -> str:
        """A new multipart upload of `key`; its upload id."""
        ...

    def presign_part(
        self, key: str, upload_id: str, number: int, size: int, expires: int
    ) -> PresignedRequest:
        """A PUT of part `number` with exactly `size` bytes (Content-Length signed in)."""
        ...

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart] | None:
        """The parts R2 holds, by number; None when the upload no longer exists (completed or
        aborted)."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        """Join the parts into the object. PartsIncompleteError when R2 refuses the parts."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard the upload and its parts (nothing to do when it no longer exists)."""
        ...

    def presign_download(
        self, key: str, expires: int, filename: str | None = None, content_type: str | None = None
    ) -> str:
        """A presigned GET; `filename`: a download of that name; `content_type`: the type the
        answer says (an HLS segment read as a byte range of the package is video/mp2t)."""
        ...

    def head(self, key: str) -> StoredObject | None:
        """The object's metadata, or None when it does not exist."""
        ...

    def upload_file(self, path: Path, key: str, content_type: str) -> None: ...

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        """Copy the object (of `size` bytes, when known) to a local file with parallel ranged
        reads. StorageError when it fails."""
        ...

    def read_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """The object's bytes [start, start + length), in pieces as they arrive (one ranged GET).
        StorageError when it fails, before or while the pieces come."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with prefix; how many were deleted."""
        ...

    def read(self, key: str) -> bytes | None:
        """A small object's bytes (an index, a playlist); None when it does not exist."""
        ...

    def write(self, key: str, data: bytes, content_type: str) -> None: ...

    def copy(self, source: str, target: str) -> None:
        """A copy made by storage itself (no bytes through the caller)."""
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


@dataclass(frozen=True)
class ThumbSheet:
    """A JPEG of thumbnails: grid points first .. first+count-1 (one every `interval` seconds of
    the source), `columns` a row (chalicelib.outputs.thumbnails)."""

    path: Path
    interval: float
    first: int
    count: int
    columns: int


@dataclass(frozen=True)
class RenditionFiles:
    """One HLS rendition a run wrote: its directory, ffmpeg's media playlist, what it is."""

    name: str
    directory: Path
    playlist: Path
    width: int
    height: int
    codecs: str


@dataclass(frozen=True)
class Rendered:
    """What one run (a single pass, or one segment of a long video) wrote, from one decode."""

    preset: Preset
    width: int  # the (largest) output's
    height: int
    duration_seconds: float
    elapsed_seconds: float
    video: Path | None = None  # an MP4 preset's file
    renditions: tuple[RenditionFiles, ...] = ()  # HLS: largest first
    audio: RenditionFiles | None = None  # HLS: the audio rendition (a single pass with audio)
    poster: Path | None = None
    thumbs: ThumbSheet | None = None


class Transcoder(Protocol):
    """FFmpeg. Raises a chalicelib.errors.ProcessingError subclass on failure, and StoppedError
    (ffmpeg killed, nothing written) once `stop` is set."""

    def render(
        self,
        input_url: str,
        out_dir: Path,
        preset: Preset = DEFAULT_PRESET,
        on_progress: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Rendered:
        """The preset's outputs, the poster and the thumbnails in `out_dir`, from one decode."""
        ...


@dataclass(frozen=True)
class SegmentWork:
    """What a long video's segment task produces: its preset's renditions (decided at the plan),
    tone-mapped when the source is HDR, and its share of the thumbnails (and, for the first
    segment, the poster) on the grid of a source of `duration` seconds."""

    preset: Preset
    rungs: tuple[Rung, ...]
    duration: float
    hdr: bool = False
    poster: bool = False
    names: tuple[str, ...] = ()  # the renditions' names (as the rungs)


@dataclass(frozen=True)
class SourceSurvey:
    """What the segmented path needs to know about a source before it plans."""

    duration_seconds: float
    video_stream: int
    audio_stream: int | None
    frame_times: tuple[float, ...]  # seconds from the file's start, sorted
    keyframe_times: tuple[float, ...]
    audio_copy: bool = False  # the audio is already what the output carries: stream-copy it
    short_side: int = 0  # the picture as displayed (rotation applied): what a ladder is chosen by
    hdr: bool = False  # 10-bit HLG or PQ: tone-mapped to SDR BT.709
    # (sample rate, timestamp of its first sample in samples) when its timestamps count samples
    # exactly: the segment tasks can encode it in chunks (chalicelib.processing.audio_plan)
    audio_chunks: tuple[int, int] | None = None


class Segmenter(Protocol):
    """FFmpeg's segmented path. Raises a chalicelib.errors.ProcessingError subclass on failure,
    and StoppedError once `stop` is set."""

    def probe_duration(self, input_url: str) -> float | None:
        """The source's duration in seconds (None when its container does not say)."""
        ...

    def survey(self, input_url: str) -> SourceSurvey: ...

    def render_segment(
        self,
        input_url: str,
        span: Span,
        video_stream: int,
        out_dir: Path,
        work: SegmentWork,
        stop: threading.Event | None = None,
    ) -> Rendered:
        """Encode one span of the video (no audio) into `out_dir`, as `work` says."""
        ...

    def encode_audio(
        self,
        input_url: str,
        audio_stream: int,
        output_path: Path,
        copy: bool = False,
        stop: threading.Event | None = None,
        streaming: bool = False,
    ) -> float:
        """The whole file's audio, stream-copied (copy) or encoded, into an M4A at `output_path`
        (or, `streaming`, an HLS audio rendition under the directory `output_path`); the seconds
        it took."""
        ...

    def encode_audio_chunk(
        self,
        input_url: str,
        audio_stream: int,
        chunk: Chunk,
        output_path: Path,
        stop: threading.Event | None = None,
    ) -> float:
        """One chunk of the soundtrack, encoded as the single pass encodes it (with the margins
        the join needs); the seconds it took."""
        ...

    def join_audio(self, chunks: Sequence[Chunk], paths: Sequence[Path], output_path: Path) -> int:
        """The chunks' encodes joined into one M4A, as one encode of the whole soundtrack would
        be; the soundtrack's sample count."""
        ...

    def stitch(
        self,
        segments: Sequence[tuple[str, float]],
        audio_url: str | None,
        output_path: Path,
        stop: threading.Event | None = None,
    ) -> TranscodeResult:
        """Join (segment URL or path, planned duration) pairs and the audio into one MP4."""
        ...


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    cursor: str | None


@dataclass(frozen=True)
class LedgerPage:
    entries: list[LedgerEntry]
    cursor: str | None


class Repository(Protocol):
    """DynamoDB: reads, and `commit` for every write (a lifecycle Transition, one conditional
    write). A transition whose guards fail raises the transition's own refusal; DynamoDB
    unavailable is ServiceUnavailableError; another transaction holding an item at that moment
    is TransactionConflictError (nothing written: the caller may decide again)."""

    def commit(self, transition: Transition) -> None: ...

    # workspaces, members, credits
    def get_workspace(self, workspace_id: str) -> Workspace | None: ...
    def get_workspaces(self, workspace_ids: Sequence[str]) -> dict[str, Workspace]: ...
    def memberships_of(self, user_id: str) -> list[Membership]: ...
    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None: ...
    def ledger(self, workspace_id: str, limit: int, cursor: str | None) -> LedgerPage: ...
    def ledger_sum(self, workspace_id: str) -> int: ...

    # jobs
    def get_job(self, job_id: str) -> Job | None: ...
    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs that exist among `job_ids`, in one round trip."""
        ...

    def list_jobs(
        self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None
    ) -> Page: ...
    def attempts_of(self, job_id: str) -> list[Attempt]: ...
    def get_attempt(self, job_id: str, n: int) -> Attempt | None: ...
    def jobs_to_sweep(self, status: JobStatus, before: datetime, limit: int) -> list[Job]:
        """Jobs in `status` whose `sweep_at` is before `before` (queued: due to be re-sent;
        processing: their worker's lease ran out; completed or cancelled: their upload's
        retention is due a look)."""
        ...

    # idempotency
    def get_answer(self, record_id: str, now: datetime) -> KeyedAnswer | None:
        """The key's stored answer; None when there is none, it expired, or it was released."""
        ...


class RateLimiter(Protocol):
    """Counts a caller's requests per fixed window, shared by every process (DynamoDB)."""

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        """Count one request of `key` in the window `now` falls in: None while the window holds
        at most `limit`, else the whole seconds until the window ends (nothing counted).
        ServiceUnavailableError when it cannot be counted."""
        ...
