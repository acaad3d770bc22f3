"""The scheduled sweeper's entrypoint."""

from __future__ import annotations

from chalicelib.bootstrap import services
from chalicelib.observability import logger
from chalicelib.processing.sweeper import sweep


def handle() -> dict[str, int]:
    report = sweep(services())
    logger().info("sweep done", extra={"requeued": report.requeued, "interrupted": report.interrupted})
    return {"requeued": report.requeued, "interrupted": report.interrupted}
