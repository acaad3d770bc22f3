"""Who may act where: workspace membership, and the workspace a request means."""

from __future__ import annotations

from typing import Protocol

from chalicelib.domain import Job, Membership, Principal
from chalicelib.errors import (
    ForbiddenError,
    InsufficientCreditsError,
    JobNotFoundError,
    WorkspaceAmbiguousError,
    WorkspaceNotFoundError,
)
from chalicelib.processing.ports import Repository


class Memberships(Protocol):
    """The part of a repository that says who belongs where."""

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None: ...
    def memberships_of(self, user_id: str) -> list[Membership]: ...


def resolve_workspace(repo: Memberships, principal: Principal, workspace_id: str | None) -> Membership:
    """The membership for `workspace_id`, or the caller's only one when it is omitted.

    A workspace the caller is not a member of is answered like a missing one.
    """
    if workspace_id:
        membership = repo.get_membership(principal.user_id, workspace_id)
        if membership is None:
            raise WorkspaceNotFoundError()
        return membership
    memberships = repo.memberships_of(principal.user_id)
    if not memberships:
        raise ForbiddenError("You are not a member of any workspace")
    if len(memberships) > 1:
        raise WorkspaceAmbiguousError()
    return memberships[0]


def visible_job(repo: Repository, principal: Principal, job_id: str, workspace_id: str | None = None) -> Job:
    """The job, if the caller is a member of its workspace; otherwise exactly 'Job not found'."""
    job = repo.get_job(job_id)
    if job is None or (workspace_id and job.workspace_id != workspace_id):
        raise JobNotFoundError()
    if repo.get_membership(principal.user_id, job.workspace_id) is None:
        raise JobNotFoundError()
    return job


def require_member(repo: Repository, principal: Principal, job: Job) -> None:
    """'Job not found' unless the caller is a member of the job's workspace (the error path of
    commands whose transaction checks the membership itself)."""
    if repo.get_membership(principal.user_id, job.workspace_id) is None:
        raise JobNotFoundError()


def require_credits(repo: Repository, workspace_id: str, error: type[InsufficientCreditsError]) -> None:
    """`error` unless the workspace has at least 1 credit (the error path, for the seed's order)."""
    workspace = repo.get_workspace(workspace_id)
    if workspace is None or workspace.credits < 1:
        raise error()
