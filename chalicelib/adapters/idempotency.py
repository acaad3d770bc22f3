"""Idempotency-Key support on Powertools' idempotency utility (DynamoDB persistence).

The same key from the same user on the same route within the TTL returns the first response
and runs nothing again. A key still in progress answers 409. A failed request is not stored,
so its key can be used again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from chalicelib.domain import Principal
from chalicelib.errors import RequestInProgressError, ServiceUnavailableError, ValidationError
from chalicelib.processing.context import Services

_KEY = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")
Response = dict[str, Any]


def once(
    svc: Services,
    principal: Principal,
    route: str,
    key: str | None,
    target: str,
    action: Callable[[], Response],
    lambda_context: Any = None,
) -> Response:
    """Run `action` at most once per (user, route, key); repeat its stored response otherwise.

    `target` names what the request acts on (a job id, a list of ids): reusing a key for
    another target is a client error. With the Lambda context, a request that dies mid-way
    frees its key when the invocation would have timed out, not when the TTL runs out.
    """
    if key is None:
        return action()
    if not _KEY.match(key):
        raise ValidationError("Idempotency-Key must be 1-128 letters, digits or -_:.")
    run, config = _idempotent(
        svc.settings.table_name("idempotency"), svc.settings.idempotency_ttl_seconds, route
    )
    if lambda_context is not None:
        # Shared per route: on Lambda one request runs at a time; under `chalice local`'s threads
        # a neighbour's context differs only by when that request started.
        config.register_lambda_context(lambda_context)
    try:
        result: Response = run(request={"key": f"{principal.user_id}#{key}", "target": target}, action=action)
    except IdempotencyAlreadyInProgressError as exc:
        raise RequestInProgressError() from exc
    except IdempotencyValidationError as exc:
        raise ValidationError("This Idempotency-Key was already used for a different request") from exc
    except IdempotencyPersistenceLayerError as exc:
        raise ServiceUnavailableError() from exc
    return result


def _run(request: Response, action: Callable[[], Response]) -> Response:
    return action()


@cache
def _idempotent(table: str, ttl: int, route: str) -> tuple[Callable[..., Response], IdempotencyConfig]:
    # One persistence layer per route: Powertools configures a layer once, prefix included.
    store = DynamoDBPersistenceLayer(table_name=table)
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="target",
        expires_after_seconds=ttl,
    )
    decorated: Callable[..., Response] = idempotent_function(
        _run,
        data_keyword_argument="request",
        persistence_store=store,
        config=config,
        key_prefix=f"vidproc.{route}",
    )
    return decorated, config
