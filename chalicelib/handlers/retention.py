"""The workspace's retention of uploads: how long an upload is kept after its job completed or
was cancelled (owners change it; every member reads it). Outputs are kept until deleted.

Each one translates: input model in, one service call, response model out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.bootstrap import services
from chalicelib.domain import Principal
from chalicelib.handlers.http import route
from chalicelib.handlers.lazy import models
from chalicelib.processing import retention

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import RetentionIn, RetentionOut, WorkspaceIn
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(models("chalicelib.handlers.schemas", "RetentionIn", "RetentionOut", "WorkspaceIn"))

blueprint = Blueprint(__name__)


@route(
    blueprint,
    "/retention",
    "GET",
    summary="How long the workspace keeps uploads after their job is done",
    query=WorkspaceIn,
    response=RetentionOut,
    errors=(400, 403, 404),
)
def get_retention(principal: Principal, query: WorkspaceIn) -> RetentionOut:
    return RetentionOut.of(retention.retention_of(services(), principal, query.workspace_id))


@route(
    blueprint,
    "/retention",
    "PUT",
    summary="Keep uploads N days after their job completed or was cancelled (owners; null: the default)",
    body=RetentionIn,
    response=RetentionOut,
    errors=(400, 403, 404),
)
def put_retention(principal: Principal, body: RetentionIn) -> RetentionOut:
    chosen = retention.set_retention(services(), principal, body.workspace_id, body.keep_originals_days)
    return RetentionOut.of(chosen)
