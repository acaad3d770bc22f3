"""An attempt in one pass: the upload copied to /tmp (or read through a presigned URL), one
ffmpeg run producing the attempt's preset with its poster and thumbnails (one decode), the
results uploaded (chalicelib.processing.results). The watch (chalicelib.processing.watch) keeps
the claim alive and stops the work when the job is cancelled: nothing is uploaded then."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from chalicelib.domain import OutputFacts, QueueMessage
from chalicelib.errors import DownloadError, InternalProcessingError, StorageError
from chalicelib.observability import count, segment
from chalicelib.processing.context import Services
from chalicelib.processing.results import store_single_pass
from chalicelib.processing.storage import input_key, stored_input
from chalicelib.processing.watch import Watch


def transcode_and_store(svc: Services, ref: QueueMessage, watch: Watch) -> tuple[str, OutputFacts]:
    """Transcode the attempt's upload as its preset says and store the results; the download's
    key and what was produced. Raises a ProcessingError on failure, StoppedError when the watch
    says the attempt is no longer ours."""
    if svc.transcoder is None:
        raise InternalProcessingError(detail="no transcoder configured")
    key = input_key(ref.workspace_id, ref.job_id)  # from the message: no read of the job
    stored = stored_input(svc, key)
    with tempfile.TemporaryDirectory(prefix="job-", dir=svc.settings.work_dir) as tmp:
        source = _input_for(svc, key, stored.size, Path(tmp) / "input")
        watch.check()
        out = Path(tmp) / "out"
        out.mkdir()
        with segment("transcode"):
            rendered = svc.transcoder.render(
                source, out, ref.preset, on_progress=watch.report, stop=watch.stopped
            )
        count("TranscodeSeconds", rendered.elapsed_seconds)
        watch.check()
        with segment("upload"):
            return store_single_pass(svc, ref, rendered)


def _input_for(svc: Services, key: str, size: int, local: Path) -> str:
    """What ffmpeg reads: a local copy of the upload (default), or its presigned URL."""
    settings = svc.settings
    if settings.transcode_input == "url":
        return svc.store.presign_download(key, settings.transcode_timeout_seconds + 300)
    started = time.monotonic()
    try:
        with segment("download"):
            svc.store.download_file(key, local, size)
    except StorageError as exc:
        raise DownloadError(detail=repr(exc)) from exc
    count("DownloadSeconds", time.monotonic() - started)
    return str(local)
