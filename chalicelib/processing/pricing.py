"""The workspace's retry pricing as a service: what is in force, and an operator's override.

The rules themselves (what a retry costs, who pays for a failure) are in chalicelib.lifecycle.pricing.
"""

from __future__ import annotations

from chalicelib.domain import RetryPricing, Workspace
from chalicelib.errors import ValidationError
from chalicelib.lifecycle import effective_pricing, transitions
from chalicelib.processing.context import Services


def pricing_of(svc: Services, workspace: Workspace | None) -> RetryPricing:
    """The workspace's pricing: an operator's override, else the deployment's setting."""
    return effective_pricing(workspace, svc.settings.retry_pricing)


def parse_pricing(value: str) -> RetryPricing:
    try:
        return RetryPricing(value)
    except ValueError:
        raise ValidationError(f"pricing must be one of {', '.join(p.value for p in RetryPricing)}") from None


def set_pricing(svc: Services, workspace_id: str, pricing: str | None) -> RetryPricing:
    """An operator's override (None: back to the deployment's RETRY_PRICING). Returns the effective one."""
    override = parse_pricing(pricing) if pricing is not None else None
    svc.repo.commit(transitions.set_pricing(workspace_id, override, svc.clock()))
    return pricing_of(svc, svc.repo.get_workspace(workspace_id))
