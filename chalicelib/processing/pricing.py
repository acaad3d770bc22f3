"""What a manual retry costs (the seed's "Partial Credits").

RETRY_PRICING `full` (the default, the seed's rule): every manual retry costs 1 credit.
`first_free`: a job's first manual retry is free, later ones cost 1. An operator may set either
per workspace (`python -m cli pricing`). The price is decided from the job as read, and the
retry transaction's condition on the job's retry count makes it the price charged at the commit.
"""

from __future__ import annotations

from chalicelib.domain import Job, Workspace
from chalicelib.errors import ValidationError, WorkspaceNotFoundError
from chalicelib.processing.context import Services

FULL = "full"
FIRST_FREE = "first_free"
PRICINGS = (FULL, FIRST_FREE)


def pricing_of(svc: Services, workspace: Workspace | None) -> str:
    """The workspace's pricing: an operator's override, else the deployment's setting."""
    if workspace is not None and workspace.retry_pricing in PRICINGS:
        return str(workspace.retry_pricing)
    return svc.settings.retry_pricing


def retry_price(pricing: str, job: Job) -> int:
    """Credits a manual retry of this job costs now."""
    return 0 if pricing == FIRST_FREE and job.retry_count == 0 else 1


def set_pricing(svc: Services, workspace_id: str, pricing: str | None) -> str:
    """An operator's override (None: back to the deployment's RETRY_PRICING). Returns the effective one."""
    if pricing is not None and pricing not in PRICINGS:
        raise ValidationError(f"pricing must be one of {', '.join(PRICINGS)}")
    if not svc.repo.set_retry_pricing(workspace_id, pricing):
        raise WorkspaceNotFoundError()
    return pricing_of(svc, svc.repo.get_workspace(workspace_id))
