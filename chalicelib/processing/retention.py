"""How long a workspace keeps its uploads once their job is done: the owner's setting, and the
sweeper's part of it.

- The owner chooses N days (0 to MAX_RETENTION_DAYS); every member reads it. Unset, it is the
  deployment's ORIGINALS_RETENTION_DAYS (30). Outputs are kept until they are deleted; a failed
  job keeps its upload (a retry needs it).
- A job that completes or is cancelled becomes due a look (its `complete` and `cancel`
  transitions set `sweep_at`). The sweeper deletes the upload once N days have passed since the
  job ended, else looks again at that day or a week from now, whichever comes first: an owner who
  shortens the retention reaches the uploads already waiting within a week, and every new one at
  once.
- The upload is deleted before the job records it (`original_deleted`): a pass that fails in
  between deletes nothing twice and records it the next time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain import MAX_RETENTION_DAYS, Job, JobStatus, Principal, Role, Workspace
from chalicelib.errors import ForbiddenError, ValidationError, WorkspaceNotFoundError
from chalicelib.lifecycle import transitions
from chalicelib.processing.access import resolve_workspace
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services

RECHECK = timedelta(days=7)
FINISHED = (JobStatus.COMPLETED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Retention:
    workspace_id: str
    days: int  # uploads are kept this many days after their job completed or was cancelled
    chosen: bool  # the owner chose it (False: the deployment's default)
    default_days: int
    can_change: bool  # the caller is an owner


def keep_days(svc: Services, workspace: Workspace | None) -> int:
    if workspace is not None and workspace.keep_originals_days is not None:
        return workspace.keep_originals_days
    return svc.settings.originals_retention_days


def retention_of(svc: Services, principal: Principal, workspace_id: str | None) -> Retention:
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    workspace = svc.repo.get_workspace(membership.workspace_id)
    if workspace is None:
        raise WorkspaceNotFoundError()
    return Retention(
        workspace_id=workspace.id,
        days=keep_days(svc, workspace),
        chosen=workspace.keep_originals_days is not None,
        default_days=svc.settings.originals_retention_days,
        can_change=membership.role == Role.OWNER,
    )


def set_retention(
    svc: Services, principal: Principal, workspace_id: str | None, days: int | None
) -> Retention:
    """The owner's choice (None: back to the default). ForbiddenError for a member who is not an
    owner; ValidationError outside 0..MAX_RETENTION_DAYS."""
    if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
        raise ValidationError(f"keepOriginalsDays must be between 0 and {MAX_RETENTION_DAYS}")
    membership = resolve_workspace(svc.repo, principal, workspace_id)
    if membership.role != Role.OWNER:
        raise ForbiddenError("Only the workspace's owners can change how long uploads are kept")
    svc.repo.commit(transitions.set_retention(membership.workspace_id, days, principal.user_id, svc.clock()))
    return retention_of(svc, principal, membership.workspace_id)


def due_originals(svc: Services, now: datetime, limit: int) -> tuple[list[Job], dict[str, Workspace]]:
    """Finished jobs whose upload is due a look, and their workspaces (one batch read)."""
    due = [job for status in FINISHED for job in svc.repo.jobs_to_sweep(status, now, limit)]
    workspaces = svc.repo.get_workspaces(sorted({j.workspace_id for j in due})) if due else {}
    return due, workspaces


def expire_original(svc: Services, job: Job, workspace: Workspace | None, now: datetime) -> bool:
    """Delete the upload if the workspace's retention ran out (True), else look again later.
    Raises StorageError when the upload could not be deleted (the next pass tries again)."""
    ended = job.completed_at or job.updated_at
    delete_at = ended + timedelta(days=keep_days(svc, workspace))
    if delete_at > now:
        committed(svc.repo, transitions.original_due(job, min(delete_at, now + RECHECK), now))
        return False
    svc.store.delete_prefix(job.input_file_key)
    return committed(svc.repo, transitions.original_deleted(job, now))
