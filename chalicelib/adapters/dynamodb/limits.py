"""The RateLimiter port on DynamoDB: one item per caller and window, counted with one UpdateItem.

A window is fixed (it starts at a multiple of its length); the item counts the requests in it,
refuses the one past the limit with a condition, and expires a day later (TTL). Every process
shares it, so the limit holds across Lambda's instances as it does locally.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib.adapters.dynamodb.connection import bind
from chalicelib.adapters.dynamodb.models import LimitModel
from chalicelib.adapters.dynamodb.transactions import UNAVAILABLE, is_condition_failure
from chalicelib.config import Settings
from chalicelib.errors import ServiceUnavailableError


class DynamoRateLimiter:
    def __init__(self, settings: Settings | None = None) -> None:
        bind(settings)

    def hit(self, key: str, limit: int, window_seconds: int, now: datetime) -> int | None:
        epoch = int(now.timestamp())
        start = epoch - epoch % window_seconds
        item = LimitModel(id=f"rate#{key}#{start}")
        try:
            item.update(
                actions=[
                    LimitModel.hits.add(1),
                    LimitModel.expiresAt.set(now + timedelta(days=1)),
                ],
                condition=LimitModel.hits.does_not_exist() | (LimitModel.hits < limit),
                add_version_condition=False,
            )
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                return max(1, start + window_seconds - epoch)
            raise ServiceUnavailableError(UNAVAILABLE) from exc
        return None
