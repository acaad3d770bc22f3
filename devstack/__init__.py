"""The local stand-in for AWS and R2: DynamoDB Local, a moto server, the API, workers. Never deployed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_DIR = REPO_ROOT / ".local"  # installed tools (DynamoDB Local) and, by default, the stack's state


def state_dir() -> Path:
    """Where the running stack keeps its state: DynamoDB data, stack.env, the demo password.

    DEVSTACK_STATE_DIR moves it (a second stack beside the first one, a test of `python -m devstack`).
    """
    return Path(os.environ.get("DEVSTACK_STATE_DIR") or LOCAL_DIR)


def configure_logging(prefix: str) -> None:
    """Plain lines with a prefix (the stack's processes share one terminal); no SDK chatter."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=f"{prefix}: %(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "pynamodb", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
