"""Composition: builds the real adapters once per process, on first use."""

from __future__ import annotations

import random
import threading
from functools import cache
from typing import Any

from chalicelib.config import get_settings, reset_settings
from chalicelib.processing import accounts
from chalicelib.processing.accounts import AddedUser
from chalicelib.processing.context import Services
from chalicelib.processing.notify_ports import NotifyServices

_override: Services | None = None
_building = threading.Lock()


@cache
def _default_services() -> Services:
    from chalicelib.adapters.dynamodb import DynamoRepository
    from chalicelib.adapters.ffmpeg import FFmpegTranscoder
    from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
    from chalicelib.adapters.r2 import R2Store
    from chalicelib.adapters.sqs import SqsJobQueue

    settings = get_settings()
    return Services(
        settings=settings,
        repo=DynamoRepository(settings),
        store=R2Store.from_settings(settings),
        queue=SqsJobQueue.from_settings(settings),
        transcoder=FFmpegTranscoder.from_settings(settings),
        segmenter=FFmpegSegmenter.from_settings(settings),
    )


def services() -> Services:
    if _override is not None:
        return _override
    with _building:  # concurrent first requests must not each build every client
        return _default_services()


def override(replacement: Services | None) -> None:
    """Swap the collaborators (tests); None restores the defaults."""
    global _override
    _override = replacement


def reset() -> None:
    """Forget built adapters and settings (the environment changed)."""
    reset_settings()
    _default_services.cache_clear()
    _default_notify_services.cache_clear()
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
    from chalicelib.adapters.dynamodb.notifications import DynamoNotifications
    from chalicelib.adapters.notification_queue import SqsNotificationQueue
    from chalicelib.adapters.resolver import resolve
    from chalicelib.adapters.ses import SesMailer
    from chalicelib.adapters.webhook_http import HttpWebhookSender

    settings = get_settings()
    return NotifyServices(
        settings=settings,
        store=DynamoNotifications(settings),
        mailer=SesMailer.from_settings(settings),
        sender=HttpWebhookSender(settings.webhook_timeout_seconds),
        queue=SqsNotificationQueue.from_settings(settings),
        resolve=resolve,
        random=random.random,
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
