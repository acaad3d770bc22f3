"""Checks that must hold after every test that touched the stack."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import LedgerModel, WorkspaceModel, bind


def ledger_mismatches() -> list[str]:
    """Workspaces whose balance is not the sum of their ledger entries, or is negative."""
    bind()
    problems = []
    for ws in WorkspaceModel.scan(consistent_read=True):
        total = sum(int(e.delta) for e in LedgerModel.query(ws.id, consistent_read=True))
        if int(ws.credits) != total or int(ws.credits) < 0:
            problems.append(f"{ws.id}: balance {int(ws.credits)}, ledger sum {total}")
    return problems
