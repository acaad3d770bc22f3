"""DynamoDB through pynamodb: the tables, the reads, and the one place every write is made.

Every write is a lifecycle Transition (chalicelib.lifecycle) that `commit.py` turns into ONE
conditional write (a TransactWriteItems, or one UpdateItem/PutItem for a single item), with its
guards as pynamodb conditions. When DynamoDB cancels it, the CancellationReasons (one per item,
in request order) say which guard failed, and the transition's refusal says what that means:
the item is never read again.

- `models.py`: the tables; `connection.py`: the one shared client, table creation;
- `mapping.py`: models <-> domain (and the attribute of each field a transition may change),
  cursors; `transactions.py`: the transaction helper; `commit.py`: Transition -> one write;
- `accounts.py`, `jobs.py`, `answers.py`: the reads; `repository.py` assembles DynamoRepository.
"""

from chalicelib.adapters.dynamodb.connection import bind, create_tables, reset
from chalicelib.adapters.dynamodb.models import (
    IDEMPOTENCY_KIND,
    MODELS,
    AttemptModel,
    JobModel,
    LedgerModel,
    MemberModel,
    PaymentModel,
    WorkspaceModel,
)
from chalicelib.adapters.dynamodb.repository import DynamoRepository

__all__ = [
    "IDEMPOTENCY_KIND",
    "MODELS",
    "AttemptModel",
    "DynamoRepository",
    "JobModel",
    "LedgerModel",
    "MemberModel",
    "PaymentModel",
    "WorkspaceModel",
    "bind",
    "create_tables",
    "reset",
]
