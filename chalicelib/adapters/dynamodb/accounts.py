"""The repository's workspaces, memberships, credits and ledger."""

from __future__ import annotations

from collections.abc import Sequence

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.adapters.dynamodb.mapping import (
    decode_cursor,
    encode_cursor,
    ledger_from,
    ledger_model,
    now_of,
    page_of,
)
from chalicelib.adapters.dynamodb.models import LedgerModel, MemberModel, WorkspaceModel
from chalicelib.adapters.dynamodb.transactions import Cancelled, Tx, is_condition_failure
from chalicelib.domain import LedgerEntry, Membership, Role, Workspace
from chalicelib.errors import ConflictError, ServiceUnavailableError
from chalicelib.processing.ports import LedgerPage


class AccountsRepository:
    """Workspaces, members, credits: the Repository port's account methods."""

    def get_workspace(self, workspace_id: str) -> Workspace | None:
        try:
            m = WorkspaceModel.get(workspace_id, consistent_read=True)
        except DoesNotExist:
            return None
        return Workspace(id=m.id, name=m.name, credits=int(m.credits), retry_pricing=m.retryPricing)

    def get_workspaces(self, workspace_ids: Sequence[str]) -> dict[str, Workspace]:
        """One BatchGetItem (pynamodb re-asks for unprocessed keys)."""
        return {
            m.id: Workspace(id=m.id, name=m.name, credits=int(m.credits))
            for m in WorkspaceModel.batch_get(list(dict.fromkeys(workspace_ids)), consistent_read=True)
        }

    def create_workspace(self, workspace: Workspace, entry: LedgerEntry | None) -> bool:
        """Create the workspace and its opening ledger entry; False if it already exists."""
        tx = Tx()
        tx.put(
            "workspace",
            WorkspaceModel(
                id=workspace.id, name=workspace.name, credits=workspace.credits, createdAt=now_of(entry)
            ),
            WorkspaceModel.id.does_not_exist(),
        )
        if entry is not None:
            tx.put("ledger", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        try:
            tx.commit()
        except Cancelled:
            return False
        return True

    def set_retry_pricing(self, workspace_id: str, pricing: str | None) -> bool:
        """Set (or with None, remove) a workspace's retry pricing; False if there is no such workspace."""
        action = WorkspaceModel.retryPricing.set(pricing) if pricing else WorkspaceModel.retryPricing.remove()
        try:
            WorkspaceModel(id=workspace_id).update(
                actions=[action], condition=WorkspaceModel.id.exists(), add_version_condition=False
            )
        except PynamoDBException as exc:
            if is_condition_failure(exc):
                return False
            raise ServiceUnavailableError() from exc
        return True

    def memberships_of(self, user_id: str) -> list[Membership]:
        return [
            Membership(user_id=m.userId, workspace_id=m.workspaceId, role=Role(m.role), email=m.email)
            for m in MemberModel.query(user_id, consistent_read=True)
        ]

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        try:
            m = MemberModel.get(user_id, workspace_id, consistent_read=True)
        except DoesNotExist:
            return None
        return Membership(user_id=m.userId, workspace_id=m.workspaceId, role=Role(m.role), email=m.email)

    def put_membership(self, membership: Membership) -> None:
        MemberModel(
            userId=membership.user_id,
            workspaceId=membership.workspace_id,
            role=membership.role.value,
            email=membership.email,
        ).save()

    def change_credits(self, workspace_id: str, entry: LedgerEntry, expected: int | None = None) -> int:
        """Add entry.delta to the balance with its ledger entry, in one transaction.

        The balance never goes below 0; with `expected`, the balance must still be that value.
        Returns the new balance.
        """
        condition = WorkspaceModel.id.exists()
        if expected is not None:
            condition &= WorkspaceModel.credits == expected
        if entry.delta < 0:
            condition &= WorkspaceModel.credits >= -entry.delta
        tx = Tx()
        tx.put("ledger", ledger_model(entry), LedgerModel.entryKey.does_not_exist())
        tx.update(
            "workspace",
            WorkspaceModel(id=workspace_id),
            [WorkspaceModel.credits.add(entry.delta)],
            condition,
        )
        try:
            tx.commit()
        except Cancelled as exc:
            raise ConflictError("The balance changed or would go below 0; nothing was changed") from exc
        ws = self.get_workspace(workspace_id)
        return ws.credits if ws else 0

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
