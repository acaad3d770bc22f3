"""Per-user rate limits: a caller's requests on the job-creating route per fixed window.

Creating a job costs nothing (the credit is charged at start), so nothing else stops one user from
creating jobs (and upload URLs) as fast as they can: past RATE_LIMIT_REQUESTS in one
RATE_LIMIT_WINDOW_SECONDS the API answers 429 with Retry-After (the seconds left in the window).
The count is shared by every process (DynamoDB), so it holds the same locally and deployed.
Start and retry are bounded by credits and the workspace's active jobs (MAX_ACTIVE_JOBS), and
every route by API Gateway's throttling.
"""

from __future__ import annotations

from chalicelib.domain import Principal
from chalicelib.errors import RateLimitedError
from chalicelib.processing.context import Services


def check_rate(svc: Services, principal: Principal, route: str) -> None:
    """Count this request of the caller on `route`; RateLimitedError (429) past the limit."""
    limit = svc.settings.rate_limit_requests
    if not limit or svc.limits is None:
        return
    window = svc.settings.rate_limit_window_seconds
    wait = svc.limits.hit(f"{route}#{principal.user_id}", limit, window, svc.clock())
    if wait is not None:
        raise RateLimitedError(retry_after=wait)
