"""Checks that must hold after every test that touched the stack."""

from __future__ import annotations

from collections import Counter

from chalicelib.adapters.dynamodb import LedgerModel, WorkspaceModel, bind


def ledger_mismatches() -> list[str]:
    """Workspaces whose balance is not the sum of their ledger entries, or is negative.

    Two scans (every workspace, every ledger entry), not a query per workspace: the check runs
    after every stack test, and the stack holds hundreds of workspaces by the end of the suite.
    """
    bind()
    sums: Counter[str] = Counter()
    for entry in LedgerModel.scan(consistent_read=True, attributes_to_get=["workspaceId", "delta"]):
        sums[entry.workspaceId] += int(entry.delta)
    problems = []
    for ws in WorkspaceModel.scan(consistent_read=True, attributes_to_get=["id", "credits"]):
        credits = int(ws.credits)
        if credits != sums[ws.id] or credits < 0:
            problems.append(f"{ws.id}: balance {credits}, ledger sum {sums[ws.id]}")
    return problems
