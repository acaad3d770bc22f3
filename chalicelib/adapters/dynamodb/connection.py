"""One botocore DynamoDB client for every model and transaction, and table creation.

Table names come from settings (`TABLE_PREFIX`); `bind()` applies them on first use, so
importing this package creates no client and reads no environment.
"""

from __future__ import annotations

from pynamodb.connection import Connection

from chalicelib.adapters.dynamodb.models import MODELS
from chalicelib.config import Settings, get_settings

_shared: Connection | None = None


def bind(settings: Settings | None = None) -> Connection:
    """Point every model at its table for these settings, all on ONE connection, and return it.

    pynamodb gives each model its own Connection, and each builds its own botocore client from a
    new session (about 50 ms each, far more when request threads build them at once). One shared
    client serves every table and the transactions.
    """
    global _shared
    settings = settings or get_settings()
    shared = Connection(region=settings.aws_region, max_pool_connections=50)
    for model in MODELS:
        model.Meta.table_name = settings.table_name(model.Meta.kind)  # type: ignore[attr-defined]
        model.Meta.region = settings.aws_region
        model._connection = None
        table = model._get_connection()
        shared.add_meta_table(table.get_meta_table())
        table.connection = shared
    _shared = shared
    return shared


def connection() -> Connection:
    return _shared or bind()


def create_tables(settings: Settings | None = None) -> None:
    """Create every table (the idempotency table included) if missing; wait until they are active."""
    settings = settings or get_settings()
    bind(settings)
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
        elif getattr(model.Meta, "stream_view_type", None):
            _enable_stream(model.Meta.table_name, model.Meta.stream_view_type)  # type: ignore[attr-defined]


def _enable_stream(table_name: str, view_type: str) -> None:
    """A table made before it had a stream (a kept local database) gets one."""
    client = connection().client
    described = client.describe_table(TableName=table_name)["Table"]
    if described.get("StreamSpecification", {}).get("StreamEnabled"):
        return
    client.update_table(
        TableName=table_name, StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type}
    )


def reset() -> None:
    """Forget the shared client (the environment changed)."""
    global _shared
    _shared = None
