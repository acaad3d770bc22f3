"""The scheduled sweeper's entrypoint."""

from __future__ import annotations

from chalicelib.bootstrap import services
from chalicelib.observability import logger
from chalicelib.processing.sweeper import sweep


def handle() -> dict[str, int]:
    report = sweep(services())
    done = {
        "requeued": report.requeued,
        "interrupted": report.interrupted,
        "originalsDeleted": report.originals_deleted,
        "uploadsExpired": report.uploads_expired,
    }
    logger().info("sweep done", extra=done)
    return done
