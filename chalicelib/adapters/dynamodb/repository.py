"""The Repository port on DynamoDB, assembled from its parts."""

from __future__ import annotations

from chalicelib.adapters.dynamodb.accounts import AccountsRepository
from chalicelib.adapters.dynamodb.connection import bind
from chalicelib.adapters.dynamodb.segments import SegmentTransitions
from chalicelib.adapters.dynamodb.sweeps import SweeperQueries
from chalicelib.adapters.dynamodb.transactions import translating
from chalicelib.adapters.dynamodb.transitions import Transitions
from chalicelib.config import Settings


@translating
class DynamoRepository(AccountsRepository, Transitions, SegmentTransitions, SweeperQueries):
    """The Repository port on DynamoDB. Every public method translates: DynamoDB unavailable
    (throttled, timed out, down) is ServiceUnavailableError; a failed condition is the method's
    own domain error (or False/None where the port says so)."""

    def __init__(self, settings: Settings | None = None) -> None:
        # Build the client now: the first requests of a cold process would each build one.
        bind(settings).client  # noqa: B018
