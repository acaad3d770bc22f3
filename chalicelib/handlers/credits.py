"""The caller's account routes: who they are and their workspaces, a balance, its ledger.

Each one translates: input model in, one service call, response model out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.bootstrap import services
from chalicelib.domain import Principal
from chalicelib.handlers.http import route
from chalicelib.handlers.lazy import models
from chalicelib.processing import accounts

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import (
        CreditsOut,
        LedgerEntryOut,
        LedgerOut,
        LedgerQuery,
        MeOut,
        UserOut,
        WorkspaceIn,
        WorkspaceOut,
    )
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(
        models(
            "chalicelib.handlers.schemas",
            "CreditsOut",
            "LedgerEntryOut",
            "LedgerOut",
            "LedgerQuery",
            "MeOut",
            "UserOut",
            "WorkspaceIn",
            "WorkspaceOut",
        )
    )

blueprint = Blueprint(__name__)


@route(blueprint, "/me", "GET", summary="The caller and their workspaces with balances", response=MeOut)
def me(principal: Principal) -> MeOut:
    views = accounts.my_workspaces(services(), principal)
    return MeOut(
        user=UserOut(id=principal.user_id, email=principal.email),
        workspaces=[WorkspaceOut(id=v.id, name=v.name, role=v.role.value, credits=v.credits) for v in views],
    )


@route(
    blueprint,
    "/credits",
    "GET",
    summary="The workspace's balance",
    query=WorkspaceIn,
    response=CreditsOut,
    errors=(400, 403, 404),
)
def credits(principal: Principal, query: WorkspaceIn) -> CreditsOut:
    ws = accounts.balance(services(), principal, query.workspace_id)
    return CreditsOut(workspace_id=ws.id, credits=ws.credits)


@route(
    blueprint,
    "/credits/ledger",
    "GET",
    summary="Ledger entries, newest first",
    query=LedgerQuery,
    response=LedgerOut,
    errors=(400, 403, 404),
)
def ledger(principal: Principal, query: LedgerQuery) -> LedgerOut:
    ws_id, page = accounts.ledger(services(), principal, query.workspace_id, query.limit, query.cursor)
    return LedgerOut(
        workspace_id=ws_id, entries=[LedgerEntryOut.of(e) for e in page.entries], cursor=page.cursor
    )
