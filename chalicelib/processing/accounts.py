"""Users, workspaces, memberships and credits: what `GET /me`, `/credits` and the operator CLI use."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain import LedgerEntry, LedgerReason, Membership, Principal, Role, Workspace, utcnow
from chalicelib.errors import ValidationError, WorkspaceNotFoundError
from chalicelib.lifecycle import transitions
from chalicelib.processing.access import resolve_workspace
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.ports import LedgerPage, Repository


class Users(Protocol):
    def ensure_user(self, email: str, password: str | None) -> str: ...


@dataclass(frozen=True)
class AddedUser:
    email: str
    password: str | None
    user_id: str
    workspace_id: str
    created_workspace: bool


@dataclass(frozen=True)
class WorkspaceView:
    id: str
    name: str
    role: Role
    credits: int


def add_user(
    repo: Repository,
    users: Users,
    email: str,
    workspace_id: str,
    role: Role | str = Role.OWNER,
    password: str | None = None,
    credits: int = 10,
    workspace_name: str | None = None,
) -> AddedUser:
    """Create (or update) the user, the workspace if it is new, and the membership. Idempotent."""
    if credits < 0:
        raise ValidationError("credits cannot be negative")
    role = Role(role)
    password = password or new_password()
    user_id = users.ensure_user(email, password)
    now = utcnow()
    created = repo.get_workspace(workspace_id) is None and committed(
        repo,
        transitions.open_workspace(
            Workspace(id=workspace_id, name=workspace_name or workspace_id, credits=credits),
            LedgerEntry(workspace_id, credits, LedgerReason.GRANT, actor="cli", created_at=now)
            if credits
            else None,
            now,
        ),
    )
    repo.commit(transitions.add_member(Membership(user_id, workspace_id, role, email), now))
    return AddedUser(
        email=email, password=password, user_id=user_id, workspace_id=workspace_id, created_workspace=created
    )


def set_credits(repo: Repository, workspace_id: str, value: int, actor: str = "cli") -> int:
    """Set the balance to `value`, writing the difference to the ledger."""
    if value < 0:
        raise ValidationError("credits cannot be negative")
    workspace = _workspace(repo, workspace_id)
    delta = value - workspace.credits
    if delta == 0:
        return value
    entry = LedgerEntry(workspace_id=workspace_id, delta=delta, reason=LedgerReason.ADJUSTMENT, actor=actor)
    return _changed(repo, entry, expected=workspace.credits)


def add_credits(repo: Repository, workspace_id: str, delta: int, actor: str = "cli") -> int:
    _workspace(repo, workspace_id)
    if delta == 0:
        raise ValidationError("--add needs a non-zero number")
    reason = LedgerReason.GRANT if delta > 0 else LedgerReason.ADJUSTMENT
    return _changed(repo, LedgerEntry(workspace_id=workspace_id, delta=delta, reason=reason, actor=actor))


def _changed(repo: Repository, entry: LedgerEntry, expected: int | None = None) -> int:
    """An operator's grant or adjustment, committed with its ledger entry; the new balance."""
    repo.commit(transitions.change_credits(entry, expected))
    return show_credits(repo, entry.workspace_id)


def show_credits(repo: Repository, workspace_id: str) -> int:
    return _workspace(repo, workspace_id).credits


def my_workspaces(svc: Services, principal: Principal) -> list[WorkspaceView]:
    memberships = svc.repo.memberships_of(principal.user_id)
    found = svc.repo.get_workspaces([m.workspace_id for m in memberships]) if memberships else {}
    return [
        WorkspaceView(id=ws.id, name=ws.name, role=m.role, credits=ws.credits)
        for m in memberships
        if (ws := found.get(m.workspace_id)) is not None
    ]


def balance(svc: Services, principal: Principal, workspace_id: str | None) -> Workspace:
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    return _workspace(svc.repo, membership.workspace_id)


def ledger(
    svc: Services, principal: Principal, workspace_id: str | None, limit: int, cursor: str | None
) -> tuple[str, LedgerPage]:
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    limit = max(1, min(limit, svc.settings.jobs_page_max))
    return membership.workspace_id, svc.repo.ledger(membership.workspace_id, limit, cursor)


def _workspace(repo: Repository, workspace_id: str) -> Workspace:
    workspace = repo.get_workspace(workspace_id)
    if workspace is None:
        raise WorkspaceNotFoundError(f"Workspace '{workspace_id}' not found")
    return workspace


def new_password() -> str:
    # Cognito's default policy: upper, lower, digit, symbol, 8+ characters.
    return f"Vp-{secrets.token_urlsafe(9)}9a"
