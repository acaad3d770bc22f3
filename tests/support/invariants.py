"""Checks that must hold after every test that touched the stack."""

from __future__ import annotations

from collections import Counter

from chalicelib.adapters.dynamodb import LedgerModel, WorkspaceModel, bind
from chalicelib.domain import LedgerReason


def ledger_mismatches() -> list[str]:
    """Workspaces whose balance is not the sum of their ledger entries, or is negative without a
    purchase reversal (a refund or dispute may leave a workspace owing credits; nothing else may
    take a balance below 0).

    Two scans (every workspace, every ledger entry), not a query per workspace: the check runs
    after every stack test, and the stack holds hundreds of workspaces by the end of the suite.
    """
    bind()
    sums: Counter[str] = Counter()
    reversed_purchases: set[str] = set()
    for entry in LedgerModel.scan(consistent_read=True, attributes_to_get=["workspaceId", "delta", "reason"]):
        sums[entry.workspaceId] += int(entry.delta)
        if entry.reason == LedgerReason.PURCHASE_REVERSAL:
            reversed_purchases.add(entry.workspaceId)
    problems = []
    for ws in WorkspaceModel.scan(consistent_read=True, attributes_to_get=["id", "credits"]):
        credits = int(ws.credits)
        if credits != sums[ws.id]:
            problems.append(f"{ws.id}: balance {credits}, ledger sum {sums[ws.id]}")
        elif credits < 0 and ws.id not in reversed_purchases:
            problems.append(f"{ws.id}: balance {credits} below 0 without a purchase reversal")
    return problems
