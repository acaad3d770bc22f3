"""The HTTP edge: one route decorator that authenticates, parses and translates errors.

Each feature has its own Chalice Blueprint (handlers/jobs.py, handlers/credits.py,
handlers/meta.py, notifications/routes.py); app.py registers them. `route(blueprint, ...)`
registers a view on the blueprint it is given and records it for /openapi.json.

A view gets the verified Principal and pydantic-validated input, makes one call into the
service layer, and returns a pydantic model. Domain errors become
`{"code", "message"}` through the one table in chalicelib.errors (a 429 with `Retry-After`); a
client's mistake never becomes a 500. A body over REQUEST_BODY_MAX_BYTES is refused with 413
before anything else is done (no token checked, nothing parsed or read).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chalice import Blueprint, Chalice, CORSConfig, Response
from chalice.app import Request

from chalicelib.auth import bearer_token, verify_token
from chalicelib.bootstrap import get_settings, services
from chalicelib.domain import Principal
from chalicelib.errors import (
    DomainError,
    PayloadTooLargeError,
    TooManyRequestsError,
    ValidationError,
    http_error_for,
)
from chalicelib.observability import logger
from chalicelib.processing.idempotency import Key, once
from chalicelib.processing.ports import KeyedAnswer

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic import ValidationError as PydanticValidationError

R = TypeVar("R")


class ThreadSafeChalice(Chalice):
    """Chalice with a per-thread `current_request`.

    Chalice keeps the request on the app object. On Lambda one process serves one request at a
    time, but `chalice local` serves each request on its own thread, so concurrent requests
    would read each other's headers (the Authorization header included).
    """

    _local = threading.local()

    @property
    def current_request(self) -> Request | None:
        return getattr(self._local, "request", None)

    @current_request.setter
    def current_request(self, value: Request | None) -> None:
        self._local.request = value


class _LazyCors(CORSConfig):
    """CORS for the configured frontend origin, read when a response is built (not at import)."""

    def __init__(self) -> None:
        super().__init__(
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
            expose_headers=["X-Request-Id", "Retry-After"],
        )

    @property
    def allow_origin(self) -> str:
        from chalicelib.config import get_settings  # the settings model: built by the first request

        return get_settings().cors_allow_origin

    @allow_origin.setter
    def allow_origin(self, value: str) -> None:
        pass


CORS = _LazyCors()


@dataclass(frozen=True)
class RouteDoc:
    path: str
    method: str
    summary: str
    status: int
    auth: bool
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    errors: tuple[int, ...]


ROUTES: list[RouteDoc] = []  # every route of every blueprint, for the OpenAPI document


def route(
    blueprint: Blueprint,
    path: str,
    method: str,
    *,
    summary: str,
    response: type[BaseModel] | None = None,
    status: int = 200,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: bool = True,
    errors: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        ROUTES.append(RouteDoc(path, method, summary, status, auth, body, query, response, errors))

        @functools.wraps(view)
        def handler(**params: str) -> Response:
            request = blueprint.current_request
            try:
                refuse_large_body(request)
                kwargs: dict[str, Any] = dict(params)
                if auth:
                    kwargs["principal"] = authenticate(request)
                if body is not None:
                    kwargs["body"] = _parse(body, _json_body(request))
                if query is not None:
                    kwargs["query"] = _parse(query, dict(request.query_params or {}))
                result = view(**kwargs)
            except DomainError as error:
                return error_response(error)
            except Exception:
                logger().exception("unhandled error", extra={"path": request.path})
                return _json(
                    500, {"code": "INTERNAL_SERVER_ERROR", "message": "Something went wrong on our side"}
                )
            return _json(
                status, result.model_dump(mode="json", by_alias=True) if result is not None else None
            )

        blueprint.route(path, methods=[method], cors=CORS, content_types=["application/json", "text/plain"])(
            handler
        )
        return handler

    return register


def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    return verify_token(bearer_token(header), services().settings)


def idempotently(
    blueprint: Blueprint,
    principal: Principal,
    route: str,
    target: str,
    action: Callable[[Key[R] | None], R],
    render: Callable[[R], dict[str, Any]],
    replay: Callable[[KeyedAnswer], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run `action` once per Idempotency-Key (when the request has one), replaying its answer.

    `action` gets the key to commit with its charge; `render` turns its result into the answer.
    The key is read from the request `blueprint` is serving.
    """
    request = blueprint.current_request
    value = (request.headers.get("idempotency-key") or "").strip() or None
    if replay is None:
        return once(services(), principal, route, value, target, action, render)
    return once(services(), principal, route, value, target, action, render, replay)


def refuse_large_body(request: Request) -> None:
    """PayloadTooLargeError (413) for a body over REQUEST_BODY_MAX_BYTES (its declared length,
    or what arrived)."""
    limit = get_settings().request_body_max_bytes
    declared = request.headers.get("content-length") or "0"
    size = max(int(declared) if declared.isdigit() else 0, len(request.raw_body or b""))
    if size > limit:
        raise PayloadTooLargeError(f"The request body is larger than {limit} bytes")


def error_response(error: DomainError) -> Response:
    mapped = http_error_for(error)
    response = _json(mapped.status, {"code": mapped.code, "message": error.message})
    if isinstance(error, TooManyRequestsError):
        seconds = error.retry_after or get_settings().retry_after_seconds
        response.headers["Retry-After"] = str(seconds)
    return response


def _json(status: int, payload: Any) -> Response:
    return Response(body=payload, status_code=status, headers={"Content-Type": "application/json"})


def _json_body(request: Request) -> Any:
    raw = request.raw_body
    if not raw:  # no body: the route's defaults (a body of only whitespace is not JSON: 400)
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("The request body is not valid JSON") from exc


def _parse(model: type[BaseModel], data: Any) -> BaseModel:
    from pydantic import ValidationError as PydanticValidationError  # loaded by the first request

    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(_describe(exc)) from exc


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "Invalid request: " + "; ".join(parts)
