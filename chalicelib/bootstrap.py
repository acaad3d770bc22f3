"""Composition: builds each real adapter once per process, on its first use.

A request builds only what it touches: a 401 builds nothing (the token is checked with settings
alone), `GET /me` builds the repository and no S3 or SQS client, the sweeper never builds the
transcoder. Each adapter is built under one lock, so concurrent first requests (chalice local
serves each on its own thread) still build it once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from chalicelib.domain import utcnow
from chalicelib.notifications.ports import NotifyServices
from chalicelib.payments.ports import PaymentServices
from chalicelib.processing.context import Services

if TYPE_CHECKING:
    from chalicelib.config import Settings
    from chalicelib.processing.accounts import AddedUser
    from chalicelib.processing.ports import (
        JobQueue,
        ObjectStore,
        RateLimiter,
        Repository,
        Segmenter,
        Transcoder,
    )

_override: Services | None = None
_lazy: LazyServices | None = None
_creating = threading.Lock()
_building = threading.Lock()  # the notifier's collaborators, built together on first use
_paying = threading.Lock()  # the payment routes' collaborators, likewise


def get_settings() -> Settings:
    """chalicelib.config's settings (that module, and pydantic with it, is imported on first use:
    a cold start's import never pays for the settings model)."""
    from chalicelib import config

    return config.get_settings()


def _repo(settings: Settings) -> Repository:
    from chalicelib.adapters.dynamodb import DynamoRepository

    return DynamoRepository(settings)


def _store(settings: Settings) -> ObjectStore:
    from chalicelib.adapters.r2 import R2Store

    return R2Store.from_settings(settings)


def _queue(settings: Settings) -> JobQueue:
    from chalicelib.adapters.sqs import SqsJobQueue

    return SqsJobQueue.from_settings(settings)


def _transcoder(settings: Settings) -> Transcoder:
    from chalicelib.adapters.ffmpeg import FFmpegTranscoder

    return FFmpegTranscoder.from_settings(settings)


def _segmenter(settings: Settings) -> Segmenter:
    from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter

    return FFmpegSegmenter.from_settings(settings)


def _limits(settings: Settings) -> RateLimiter:
    from chalicelib.adapters.dynamodb.limits import DynamoRateLimiter

    return DynamoRateLimiter(settings)


BUILDERS: dict[str, Callable[[Settings], Any]] = {
    "repo": _repo,
    "store": _store,
    "queue": _queue,
    "transcoder": _transcoder,
    "segmenter": _segmenter,
    "limits": _limits,
}


class LazyServices(Services):
    """Services whose adapters are built on first attribute access, each one once.

    Assigning an attribute replaces that adapter (as on the plain dataclass).
    """

    def __init__(self, builders: dict[str, Callable[[Settings], Any]] | None = None) -> None:
        # No dataclass __init__: the adapters are not built here.
        self._builders = dict(builders or BUILDERS)
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._clock: Callable[[], datetime] = utcnow

    def _adapter(self, name: str) -> Any:
        try:
            return self._built[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._built:
                self._built[name] = self._builders[name](get_settings())
            return self._built[name]

    def built(self) -> list[str]:
        """The adapters built so far, in the order they were first used."""
        return list(self._built)

    @property
    def settings(self) -> Settings:
        return get_settings()

    @settings.setter
    def settings(self, value: Settings) -> None:
        raise AttributeError("settings come from the environment (bootstrap.reset() re-reads it)")

    @property
    def repo(self) -> Repository:
        return self._adapter("repo")

    @repo.setter
    def repo(self, value: Repository) -> None:
        self._built["repo"] = value

    @property
    def store(self) -> ObjectStore:
        return self._adapter("store")

    @store.setter
    def store(self, value: ObjectStore) -> None:
        self._built["store"] = value

    @property
    def queue(self) -> JobQueue:
        return self._adapter("queue")

    @queue.setter
    def queue(self, value: JobQueue) -> None:
        self._built["queue"] = value

    @property
    def transcoder(self) -> Transcoder | None:
        return self._adapter("transcoder")

    @transcoder.setter
    def transcoder(self, value: Transcoder | None) -> None:
        self._built["transcoder"] = value

    @property
    def segmenter(self) -> Segmenter | None:
        return self._adapter("segmenter")

    @segmenter.setter
    def segmenter(self, value: Segmenter | None) -> None:
        self._built["segmenter"] = value

    @property
    def limits(self) -> RateLimiter | None:
        return self._adapter("limits")

    @limits.setter
    def limits(self, value: RateLimiter | None) -> None:
        self._built["limits"] = value

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    @clock.setter
    def clock(self, value: Callable[[], datetime]) -> None:
        self._clock = value

    def __repr__(self) -> str:  # the dataclass repr would build every adapter
        return f"LazyServices(built={self.built()})"

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__


def _default_services() -> LazyServices:
    global _lazy
    if _lazy is None:
        with _creating:
            if _lazy is None:
                _lazy = LazyServices()
    return _lazy


def services() -> Services:
    if _override is not None:
        return _override
    return _default_services()


def built() -> list[str]:
    """The default adapters built in this process so far (benchmarks, tests)."""
    return _lazy.built() if _lazy is not None else []


def override(replacement: Services | None) -> None:
    """Swap the collaborators (tests); None restores the defaults."""
    global _override
    _override = replacement


def reset() -> None:
    """Forget built adapters and settings (the environment changed)."""
    global _lazy
    from chalicelib.config import reset_settings

    reset_settings()
    _lazy = None
    _default_notify_services.cache_clear()
    _default_payment_services.cache_clear()
    user_directory.cache_clear()
    from chalicelib.adapters import dynamodb

    dynamodb.reset()


def add_user(
    email: str,
    workspace_id: str,
    role: str = "owner",
    password: str | None = None,
    credits: int = 10,
    workspace_name: str | None = None,
) -> AddedUser:
    """accounts.add_user with the configured repository and Cognito pool (CLI, local stack, tests)."""
    from chalicelib.processing import accounts

    return accounts.add_user(
        services().repo, user_directory(), email, workspace_id, role, password, credits, workspace_name
    )


@cache
def user_directory() -> Any:
    """The Cognito user pool (operator CLI and the local stack only)."""
    from chalicelib.adapters.cognito import CognitoUsers

    return CognitoUsers.from_settings(get_settings())


_notify_override: NotifyServices | None = None


@cache
def _default_notify_services() -> NotifyServices:
    from chalicelib.notifications.adapters.dynamodb import DynamoNotifications
    from chalicelib.notifications.adapters.queue import SqsNotificationQueue
    from chalicelib.notifications.adapters.resolver import resolve
    from chalicelib.notifications.adapters.ses import SesMailer
    from chalicelib.notifications.adapters.signing_key import signing_key
    from chalicelib.notifications.adapters.webhook_http import HttpWebhookSender
    from chalicelib.notifications.adapters.webpush import WebPushSender

    settings = get_settings()
    return NotifyServices(
        settings=settings,
        store=DynamoNotifications(settings),
        mailer=SesMailer.from_settings(settings),
        sender=HttpWebhookSender(settings.webhook_timeout_seconds),
        queue=SqsNotificationQueue.from_settings(settings),
        resolve=resolve,
        random=random.random,
        signing_key=lambda: signing_key(settings),
        pusher=WebPushSender(settings) if settings.vapid_secret_id else None,
    )


def notify_services() -> NotifyServices:
    """The notification use cases' collaborators (the notifier functions and the API's routes)."""
    if _notify_override is not None:
        return _notify_override
    with _building:
        return _default_notify_services()


def override_notify(replacement: NotifyServices | None) -> None:
    global _notify_override
    _notify_override = replacement


_payment_override: PaymentServices | None = None


@cache
def _default_payment_services() -> PaymentServices:
    from chalicelib.payments.adapters.dynamodb import DynamoPurchaseRecords
    from chalicelib.payments.adapters.stripe import StripeProvider

    settings = get_settings()
    repo = services().repo
    return PaymentServices(
        settings=settings,
        repo=repo,
        records=DynamoPurchaseRecords(),
        provider=StripeProvider.from_settings(settings),
    )


def payment_services() -> PaymentServices:
    """The payment use cases' collaborators (the payment routes)."""
    if _payment_override is not None:
        return _payment_override
    with _paying:
        return _default_payment_services()


def override_payments(replacement: PaymentServices | None) -> None:
    global _payment_override
    _payment_override = replacement
