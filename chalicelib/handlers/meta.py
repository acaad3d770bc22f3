"""The routes about the API itself: liveness and the OpenAPI document (no sign-in for either)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint

from chalicelib.handlers.http import route
from chalicelib.handlers.lazy import models
from chalicelib.handlers.openapi import openapi_document

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import HealthOut
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(models("chalicelib.handlers.schemas", "HealthOut"))

blueprint = Blueprint(__name__)


@route(blueprint, "/health", "GET", summary="Liveness", response=HealthOut, auth=False)
def health() -> HealthOut:
    return HealthOut(status="ok")


@blueprint.route("/openapi.json", methods=["GET"], cors=True)
def openapi() -> dict[str, Any]:
    return openapi_document()
