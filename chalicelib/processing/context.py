"""The collaborators a use case runs with. Built by chalicelib.bootstrap; faked in unit tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.domain import utcnow
from chalicelib.processing.ports import (
    JobQueue,
    ObjectStore,
    RateLimiter,
    Repository,
    Segmenter,
    Transcoder,
)

if TYPE_CHECKING:
    from chalicelib.config import Settings


@dataclass
class Services:
    settings: Settings
    repo: Repository
    store: ObjectStore
    queue: JobQueue
    transcoder: Transcoder | None = None
    segmenter: Segmenter | None = None  # the long-video path; None: every video in one pass
    clock: Callable[[], datetime] = field(default=utcnow)
    limits: RateLimiter | None = None  # per-user request windows; None: no limit (unit tests)
