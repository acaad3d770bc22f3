"""The unsubscribe links' HMAC key: NOTIFY_SIGNING_SECRET_ID's secret, read at run time.

Deployed, the key lives in Secrets Manager and is read when a link is made (the fan-out) or
checked (the API's unsubscribe route), cached by Powertools Parameters for a few minutes in a warm
container: it is never in a function's environment (readable with GetFunctionConfiguration), and
only the functions that sign or verify may read it. Locally NOTIFY_SIGNING_KEY holds it.
"""

from __future__ import annotations

from chalicelib.config import Settings
from chalicelib.errors import ServiceUnavailableError

SECRET_MAX_AGE = 300  # seconds a warm container keeps the key before reading it again


def signing_key(settings: Settings) -> str:
    if not settings.notify_signing_secret_id:
        return settings.notify_signing_key.get_secret_value()
    from aws_lambda_powertools.utilities import parameters  # only the functions that sign or verify

    try:
        value = parameters.get_secret(settings.notify_signing_secret_id, max_age=SECRET_MAX_AGE)
    except parameters.exceptions.GetParameterError as exc:
        raise ServiceUnavailableError("The notifications' signing key could not be read") from exc
    if not isinstance(value, str) or not value:
        raise ServiceUnavailableError("The notifications' signing key secret is empty")
    return value
