"""/openapi.json, generated from the route table and the pydantic models."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

_REF = "#/components/schemas/{model}"
# A job's id is a UUID; an endpoint's or a delivery's is an opaque id (routes.py checks it).
_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,80}$"}
_PATH_PARAMS = {"jobId": {"type": "string", "format": "uuid"}}
_ERROR_TEXT = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed (insufficient credits, or no workspace)",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    429: "Too many requests: wait the seconds Retry-After says",
    503: "A dependency is unavailable",
}


@cache
def openapi_document() -> dict[str, Any]:
    from chalicelib.handlers.http import ROUTES
    from chalicelib.handlers.schemas import ErrorOut

    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for r in ROUTES:
        op: dict[str, Any] = {"summary": r.summary, "operationId": _operation_id(r.method, r.path)}
        params = [
            {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS.get(name, _ID)}
            for name in re.findall(r"{(\w+)}", r.path)
        ]
        if r.query is not None:
            params += _query_params(r.query, components)
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                # required when the body has required fields (an empty one is refused then)
                "required": bool(r.body.model_json_schema().get("required")),
                "content": {"application/json": {"schema": _ref(r.body, components)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": _ref(r.response, components)}}
        if r.status == 201:
            ok["links"] = _links_to_the_created_job(ROUTES)
        responses: dict[str, Any] = {str(r.status): ok}
        # every authenticated route can be refused the token, and reads DynamoDB (503 when down);
        # every route with a body refuses one over REQUEST_BODY_MAX_BYTES (413)
        codes = set(r.errors) | ({401, 503} if r.auth else set()) | ({413} if r.body else set())
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": _ref(ErrorOut, components)}},
            }
            if code == 429:
                responses[str(code)]["headers"] = {
                    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
                }
        op["responses"] = responses
        if r.auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(r.path, {})[r.method.lower()] = op
    _configured_limits(components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Video processing API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _links_to_the_created_job(routes: list[Any]) -> dict[str, Any]:
    """OpenAPI links from the created job to every operation on it: its id, and its workspace
    (a client generated from the document, or a fuzzer, chains them without guessing)."""
    links: dict[str, Any] = {}
    for r in routes:
        if "{jobId}" not in r.path:
            continue
        link: dict[str, Any] = {
            "operationId": _operation_id(r.method, r.path),
            "parameters": {"path.jobId": "$response.body#/job/id"},
        }
        if r.query is not None and "workspaceId" in r.query.model_json_schema(by_alias=True)["properties"]:
            link["parameters"]["query.workspaceId"] = "$response.body#/job/workspaceId"
        if r.body is not None:
            link["requestBody"] = _body_from_the_job(r.body)
        links[link["operationId"]] = link
    return links


# A request body's field that the job holds under another name (a new file's name: the job's).
_FROM_THE_JOB = {"filename": "originalFilename"}


def _body_from_the_job(body: type[BaseModel]) -> dict[str, str]:
    """The body's fields the created job says (its workspace; for a new file, the job's own)."""
    from chalicelib.handlers.schemas import JobOut

    job = JobOut.model_json_schema(by_alias=True)["properties"]
    fields = body.model_json_schema(by_alias=True)["properties"]
    taken = {name: _FROM_THE_JOB.get(name, name) for name in fields}
    return {name: f"$response.body#/job/{source}" for name, source in taken.items() if source in job}


def _configured_limits(components: dict[str, Any]) -> None:
    """The limits that are settings, as this deployment has them (a schema-valid request is
    never refused for them)."""
    from chalicelib.config import get_settings

    settings = get_settings()
    components["CreateJobIn"]["properties"]["size"]["maximum"] = settings.upload_max_bytes
    components["BatchRetryIn"]["properties"]["jobIds"]["maxItems"] = settings.batch_retry_max
    if "CheckoutIn" in components:  # the packs on sale here (CREDIT_PACKS)
        components["CheckoutIn"]["properties"]["pack"]["enum"] = [p.id for p in settings.credit_packs]


def _ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _query_params(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}") for w in path.strip("/").split("/") if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)
