"""Who pays for what. The rule behind every price: a workspace pays for an attempt only when it
completes or fails because of its input, never twice for one intent, and never for what the
platform did wrong.

- A start costs 1 credit. So does the first paid attempt of a job whose start was refunded:
  it is priced as a start.
- RETRY_PRICING `full` (the seed's rule): every retry costs 1 credit.
- `first_free`: a job's free retry is spent only by a free retry that ran and failed for the
  input; one whose send failed, or that the platform failed, leaves it available.
- A final failure keeps the round's credit only when it is proven to be the input's (permanent):
  the platform's failures, and the ones nobody can explain, are refunded.
- The price is decided from the job and the pricing as read; the transaction pins both (the
  job's status, attempt and retry count; the workspace's override), so what is charged is what
  was decided.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain import FailureKind, FreeRetry, Job, RetryPricing, Workspace

START_PRICE = 1


@dataclass(frozen=True)
class PricingBasis:
    """The RETRY_PRICING a price is decided under, and the workspace overrides under which it is
    the one in force (the charge's transaction requires one of them)."""

    pricing: RetryPricing
    overrides: frozenset[RetryPricing | None]

    @classmethod
    def assumed(cls, deployment: RetryPricing) -> PricingBasis:
        """The deployment's pricing, without reading the workspace: it holds when there is no
        override or the override says the same."""
        return cls(deployment, frozenset({None, deployment}))

    @classmethod
    def read(cls, workspace: Workspace, deployment: RetryPricing) -> PricingBasis:
        """The pricing as the workspace was read: exactly its override (or its absence)."""
        override = workspace.retry_pricing
        return cls(override or deployment, frozenset({override}))


def effective_pricing(workspace: Workspace | None, deployment: RetryPricing) -> RetryPricing:
    """The workspace's pricing: an operator's override, else the deployment's setting."""
    if workspace is not None and workspace.retry_pricing is not None:
        return workspace.retry_pricing
    return deployment


def retry_price(pricing: RetryPricing, job: Job) -> int:
    """Credits a retry of this job costs now."""
    if job.credits_paid <= 0:
        return START_PRICE  # nothing kept yet (its start was refunded): priced as a start
    if pricing == RetryPricing.FIRST_FREE and job.free_retry == FreeRetry.AVAILABLE:
        return 0
    return 1


def is_free_retry(pricing: RetryPricing, job: Job) -> bool:
    """Whether a retry now would be the job's free retry (it then runs as one)."""
    return retry_price(pricing, job) == 0


def keeps_credit(kind: FailureKind) -> bool:
    """Whether a final failure of this kind keeps the round's credit: only the input's proven fault."""
    return kind is FailureKind.PERMANENT


def free_retry_after(job: Job, kept: bool) -> FreeRetry:
    """The free retry once the round ends: a running free retry is spent only when the round ran
    and the input failed it (kept), else it is available again."""
    if job.free_retry is not FreeRetry.RUNNING:
        return job.free_retry
    return FreeRetry.SPENT if kept else FreeRetry.AVAILABLE
