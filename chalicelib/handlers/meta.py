"""The routes about the API itself: liveness and the OpenAPI document (no sign-in for either)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.handlers.http import route
from chalicelib.handlers.openapi import openapi_document
from chalicelib.handlers.schemas import HealthOut

blueprint = Blueprint(__name__)


@route(blueprint, "/health", "GET", summary="Liveness", response=HealthOut, auth=False)
def health() -> HealthOut:
    return HealthOut(status="ok")


@blueprint.route("/openapi.json", methods=["GET"], cors=True)
def openapi() -> dict[str, Any]:
    return openapi_document()
