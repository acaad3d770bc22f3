"""An attempt in one pass: the upload read as it arrives (chalicelib.processing.storage
`opened_input`), one ffmpeg run producing the attempt's preset with its poster and thumbnails (one
decode), the results uploaded (chalicelib.processing.results). The watch
(chalicelib.processing.watch) keeps the claim alive and stops the work when the job is cancelled:
nothing is uploaded then."""

from __future__ import annotations

import tempfile
from pathlib import Path

from chalicelib.domain import OutputFacts, QueueMessage
from chalicelib.errors import InternalProcessingError
from chalicelib.observability import count, segment
from chalicelib.processing.context import Services
from chalicelib.processing.results import store_single_pass
from chalicelib.processing.storage import Input
from chalicelib.processing.watch import Watch


def transcode_and_store(
    svc: Services, ref: QueueMessage, watch: Watch, upload: Input
) -> tuple[str, OutputFacts]:
    """Transcode the attempt's upload as its preset says and store the results; the download's
    key and what was produced. Raises a ProcessingError on failure, StoppedError when the watch
    says the attempt is no longer ours."""
    if svc.transcoder is None:
        raise InternalProcessingError(detail="no transcoder configured")
    with tempfile.TemporaryDirectory(prefix="job-", dir=svc.settings.work_dir) as tmp:
        source = upload.read_all()
        watch.check()
        out = Path(tmp) / "out"
        out.mkdir()
        with segment("transcode"):
            rendered = svc.transcoder.render(
                source, out, ref.preset, on_progress=watch.report, stop=watch.stopped
            )
        upload.arrived()
        count("TranscodeSeconds", rendered.elapsed_seconds)
        watch.check()
        with segment("upload"):
            return store_single_pass(svc, ref, rendered)
