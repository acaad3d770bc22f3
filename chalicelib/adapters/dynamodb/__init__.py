"""DynamoDB through pynamodb: the tables, and the repository that owns every write.

Each state change that touches more than one item is ONE TransactWriteItems call built in
`transitions.py` (or `accounts.py`), with its conditions as pynamodb expressions. When DynamoDB
cancels a transaction, the CancellationReasons (one per item, in request order) say which
condition failed, and that is what decides the domain error: the item is never read again.

- `models.py`: the tables; `connection.py`: the one shared client, table creation;
- `mapping.py`: models <-> domain, cursors; `transactions.py`: the transaction helper;
- `accounts.py`, `jobs.py`, `transitions.py`, `sweeps.py`: the repository's parts;
  `repository.py` assembles them into DynamoRepository.
"""

from chalicelib.adapters.dynamodb.connection import bind, create_tables, reset
from chalicelib.adapters.dynamodb.models import (
    IDEMPOTENCY_KIND,
    MODELS,
    AttemptModel,
    JobModel,
    LedgerModel,
    MemberModel,
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
    "WorkspaceModel",
    "bind",
    "create_tables",
    "reset",
]
