"""The Repository port on DynamoDB: the reads, and `commit` for every write."""

from __future__ import annotations

from chalicelib.adapters.dynamodb.accounts import AccountReads
from chalicelib.adapters.dynamodb.answers import Answers
from chalicelib.adapters.dynamodb.commit import commit
from chalicelib.adapters.dynamodb.connection import bind
from chalicelib.adapters.dynamodb.jobs import JobReads
from chalicelib.adapters.dynamodb.transactions import translating
from chalicelib.config import Settings
from chalicelib.lifecycle.model import Transition


@translating
class DynamoRepository(AccountReads, JobReads, Answers):
    """The Repository port on DynamoDB. Every public method translates: DynamoDB unavailable
    (throttled, timed out, down) is ServiceUnavailableError; a failed condition is the
    transition's own refusal."""

    def __init__(self, settings: Settings | None = None) -> None:
        # Build the client now: the first requests of a cold process would each build one.
        bind(settings).client  # noqa: B018

    def commit(self, transition: Transition) -> None:
        """One conditional write of the whole transition (chalicelib.adapters.dynamodb.commit)."""
        commit(transition)
