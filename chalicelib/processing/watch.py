"""An attempt's work under watch: its claim kept alive, its progress recorded, and a stop signal.

While a worker runs an attempt (or one segment task of it), a thread commits one conditional
write every `pulse_seconds` (lifecycle `heartbeat`): the lease renewed and the progress so far.
The write requires the attempt to still be the job's processing one. When it is refused, the job
was cancelled (or its attempt moved on: the sweeper gave it to another worker), so `stopped` is
set: the ffmpeg adapter kills its process group within a poll, and the caller uploads nothing.
Every `heartbeat_seconds` the SQS message's visibility is extended too, so no second worker
receives it while this one runs. Shared by the single pass and the segmented path.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from chalicelib.domain import QueueMessage
from chalicelib.errors import QueueSendError, ServiceUnavailableError, StoppedError
from chalicelib.lifecycle import transitions
from chalicelib.observability import logger
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services


@dataclass(frozen=True)
class Receipt:
    """The SQS message that carried the attempt: what the watch needs to keep it hidden."""

    receipt_handle: str
    receive_count: int = 1


class Watch:
    """What the work sees: `stopped` (an Event the ffmpeg adapter polls) and `report` (its
    on_progress callback; the next pulse writes the latest fraction)."""

    def __init__(self, ref: QueueMessage) -> None:
        self.ref = ref
        self.stopped = threading.Event()
        self._fraction: float | None = None
        self._written: float | None = None

    def report(self, fraction: float) -> None:
        self._fraction = fraction

    def check(self) -> None:
        """Raise StoppedError once the attempt is no longer this worker's to run."""
        if self.stopped.is_set():
            raise StoppedError(self.ref.job_id)

    def unwritten(self) -> float | None:
        fraction = self._fraction
        return fraction if fraction is not None and fraction != self._written else None

    def written(self, fraction: float | None) -> None:
        if fraction is not None:
            self._written = fraction


@contextlib.contextmanager
def watching(svc: Services, ref: QueueMessage, receipt: Receipt | None = None) -> Iterator[Watch]:
    watch = Watch(ref)
    done = threading.Event()
    thread = threading.Thread(
        target=_pulses, args=(svc, watch, receipt, done), name=f"watch-{ref.job_id}", daemon=True
    )
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        thread.join(timeout=5)


def _pulses(svc: Services, watch: Watch, receipt: Receipt | None, done: threading.Event) -> None:
    settings, ref = svc.settings, watch.ref
    hidden_at = time.monotonic()
    while not done.wait(settings.pulse_seconds):
        now, fraction = svc.clock(), watch.unwritten()
        lease = now + timedelta(seconds=settings.claim_lease_seconds)
        try:
            if not committed(svc.repo, transitions.heartbeat(ref, now, lease, fraction)):
                logger().warning("the attempt is no longer ours; stopping", extra=_keys(ref))
                watch.stopped.set()
                return
            watch.written(fraction)
            if receipt is not None and time.monotonic() - hidden_at >= settings.heartbeat_seconds:
                svc.queue.extend_visibility(receipt.receipt_handle, settings.claim_lease_seconds)
                hidden_at = time.monotonic()
        except (ServiceUnavailableError, QueueSendError):  # the next pulse tries again
            logger().warning("pulse failed", extra=_keys(ref))


def _keys(ref: QueueMessage) -> dict[str, object]:
    return {"job_id": ref.job_id, "workspace_id": ref.workspace_id, "attempt": ref.attempt, "task": ref.task}
