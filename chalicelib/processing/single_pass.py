"""An attempt in one pass: the upload read as it arrives (chalicelib.processing.storage
`opened_input`), one ffmpeg run, the output uploaded. The watch (chalicelib.processing.watch)
keeps the claim alive and stops the work when the job is cancelled: nothing is uploaded then."""

from __future__ import annotations

import tempfile
from pathlib import Path

from chalicelib.domain import QueueMessage
from chalicelib.errors import InternalProcessingError, StorageError, UploadOutputError
from chalicelib.observability import count, segment
from chalicelib.processing.context import Services
from chalicelib.processing.storage import Input, output_key
from chalicelib.processing.watch import Watch


def transcode_and_store(svc: Services, ref: QueueMessage, watch: Watch, upload: Input) -> str:
    """Transcode the attempt's upload and store the result; its key. Raises a ProcessingError on
    failure, StoppedError when the watch says the attempt is no longer ours."""
    if svc.transcoder is None:
        raise InternalProcessingError(detail="no transcoder configured")
    with tempfile.TemporaryDirectory(prefix="job-", dir=svc.settings.work_dir) as tmp:
        source = upload.read_all()
        watch.check()
        target = Path(tmp) / "output.mp4"
        with segment("transcode"):
            result = svc.transcoder.transcode(source, target, on_progress=watch.report, stop=watch.stopped)
        upload.arrived()
        count("TranscodeSeconds", result.elapsed_seconds)
        watch.check()
        output = output_key(ref.workspace_id, ref.job_id, ref.attempt)
        try:
            with segment("upload"):
                svc.store.upload_file(target, output, "video/mp4")
        except StorageError as exc:
            raise UploadOutputError(detail=repr(exc)) from exc
    return output
