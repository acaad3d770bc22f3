"""Secrets Manager secrets holding JSON, read at run time with Powertools Parameters (cached in a
warm container), never from the environment: R2's keys, Stripe's."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from chalicelib.errors import DomainError

SECRET_MAX_AGE = 300  # seconds Powertools caches a secret in a warm container


def json_secret(secret_id: str, keys: tuple[str, ...], error: type[DomainError], what: str) -> dict[str, str]:
    """The secret's `keys` (each non-empty), or `error` saying the `what` could not be used."""
    try:
        secret = parameters.get_secret(secret_id, transform="json", max_age=SECRET_MAX_AGE)
    except parameters.exceptions.GetParameterError as exc:
        raise error(f"The {what} could not be read") from exc
    if not isinstance(secret, dict) or not all(secret.get(key) for key in keys):
        raise error(f"The {what} secret must hold {' and '.join(keys)}")
    return {key: str(secret[key]) for key in keys}
