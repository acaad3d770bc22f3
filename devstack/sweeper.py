"""The local stand-in for the EventBridge schedule: call app.sweep_stuck_jobs every N seconds.

Run it as `python -m devstack.sweeper`; the interval is SWEEP_INTERVAL_SECONDS (default 60).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from devstack import configure_logging
from devstack.lambda_events import LocalLambdaContext, scheduled_event

log = logging.getLogger(__name__)

FUNCTION_NAME = "vidproc-dev-sweep_stuck_jobs"
DEFAULT_INTERVAL_SECONDS = 60.0

Handler = Callable[[dict[str, Any], Any], Any]


def default_handler() -> Handler:
    import app  # the Chalice app: imported when the sweeper starts

    handler: Handler = app.sweep_stuck_jobs
    return handler


def sweep_once(handler: Handler, region: str = "us-east-1") -> Any:
    event = scheduled_event(FUNCTION_NAME, region)
    return handler(event, LocalLambdaContext(FUNCTION_NAME, region=region, timeout_seconds=300))


def run_sweeper(
    interval_seconds: float | None = None,
    stop_event: threading.Event | None = None,
    handler: Handler | None = None,
) -> None:
    """Sweep every `interval_seconds` until `stop_event` is set. A failing sweep is logged, not fatal."""
    from chalicelib.config import get_settings

    interval = interval_seconds or float(os.environ.get("SWEEP_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS))
    stop = stop_event or threading.Event()
    sweep = handler or default_handler()
    log.info("sweeping every %.0fs", interval)
    while not stop.wait(interval):
        try:
            result = sweep_once(sweep, get_settings().aws_region)
            if result:
                log.info("sweep: %s", result)
        except Exception:
            log.exception("the sweep failed; trying again in %.0fs", interval)


def main() -> None:

    from devstack.bootstrap import load_stack_env

    configure_logging("sweeper")
    load_stack_env()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    run_sweeper(stop_event=stop)


if __name__ == "__main__":
    main()
