"""The routes' path parameters, checked and made canonical before any service is called."""

from __future__ import annotations

import re
import uuid

from chalicelib.domain import UUID_PATTERN
from chalicelib.errors import ValidationError


def parse_job_id(value: str) -> str:
    """The canonical form of a UUID written the documented way (8-4-4-4-12 hex digits)."""
    if not isinstance(value, str) or not re.fullmatch(UUID_PATTERN, value):
        raise ValidationError(f"jobId must be a UUID (got '{value}')")
    return str(uuid.UUID(value))
