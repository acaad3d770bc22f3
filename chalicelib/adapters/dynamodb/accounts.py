"""The repository's reads of workspaces, memberships and the ledger."""

from __future__ import annotations

from collections.abc import Sequence

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamodb.mapping import (
    decode_cursor,
    encode_cursor,
    ledger_from,
    membership_from,
    page_of,
    workspace_from,
)
from chalicelib.adapters.dynamodb.models import LedgerModel, MemberModel, WorkspaceModel
from chalicelib.domain import Membership, Workspace
from chalicelib.processing.ports import LedgerPage


class AccountReads:
    """Workspaces, members, credits: the Repository port's account reads."""

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        try:
            return workspace_from(WorkspaceModel.get(workspace_id, consistent_read=True))
        except DoesNotExist:
            return None

    def get_workspaces(self, workspace_ids: Sequence[str]) -> dict[str, Workspace]:
        """One BatchGetItem (pynamodb re-asks for unprocessed keys)."""
        return {
            m.id: workspace_from(m)
            for m in WorkspaceModel.batch_get(list(dict.fromkeys(workspace_ids)), consistent_read=True)
        }

    def memberships_of(self, user_id: str) -> list[Membership]:
        return [membership_from(m) for m in MemberModel.query(user_id, consistent_read=True)]

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        try:
            return membership_from(MemberModel.get(user_id, workspace_id, consistent_read=True))
        except DoesNotExist:
            return None

    def ledger(self, workspace_id: str, limit: int, cursor: str | None) -> LedgerPage:
        result = LedgerModel.query(
            workspace_id,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor, "entryKey", workspaceId=workspace_id),
            consistent_read=True,
        )
        items, next_key = page_of(result, limit)
        return LedgerPage(entries=[ledger_from(m) for m in items], cursor=encode_cursor(next_key, "entryKey"))

    def ledger_sum(self, workspace_id: str) -> int:
        return sum(int(m.delta) for m in LedgerModel.query(workspace_id, consistent_read=True))
