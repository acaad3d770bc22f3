"""Powertools' Lambda integration, as Chalice middleware around every handler.

Each invocation runs inside Logger.inject_lambda_context (function name, request id, cold start
on every log line), Tracer.capture_lambda_handler (a subsegment per invocation, without the
answer or the error as metadata), and a flush of any buffered metrics. An HTTP
request also gets a correlation id: API Gateway's request id (else the invocation's), put on
every log line of the request and returned as the `X-Request-Id` response header.

The correlation id is a thread-safe key: `chalice local` serves requests on threads, and a
neighbour's id must not end up on this request's lines.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from chalice.app import Request, Response

from chalicelib.observability import flush_metrics, logger, tracer

REQUEST_ID_HEADER = "X-Request-Id"


def http(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Middleware for HTTP routes: the Lambda integration plus the correlation id."""
    request_id = correlation_id(event)
    log = logger()
    log.thread_safe_append_keys(correlation_id=request_id)
    try:
        response = _observed(get_response, event, event.lambda_context)
    finally:
        log.thread_safe_remove_keys(["correlation_id"])
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def events(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Middleware for the SQS worker and the scheduled sweeper: the Lambda integration."""
    return _observed(get_response, event, getattr(event, "context", None))


def correlation_id(event: Request) -> str:
    context = event.context if isinstance(event.context, dict) else {}
    lambda_context = event.lambda_context
    return str(context.get("requestId") or getattr(lambda_context, "aws_request_id", None) or uuid.uuid4())


def _observed(get_response: Callable[[Any], Any], event: Any, lambda_context: Any) -> Any:
    if lambda_context is None or not hasattr(lambda_context, "function_name"):
        return get_response(event)  # called directly (tests, the CLI): no invocation to describe

    # Neither the answer nor an exception goes into the trace: an answer may be a webhook secret
    # shown once or a presigned URL, and a trace is readable by anyone with X-Ray read access in
    # the account (tests/integration/test_tracing.py). Nor is the event logged.
    @logger().inject_lambda_context(log_event=False)
    @tracer().capture_lambda_handler(capture_response=False, capture_error=False)
    def invoke(evt: Any, _context: Any) -> Any:
        try:
            return get_response(evt)
        finally:
            flush_metrics()  # count() emits at once; this flushes anything buffered

    return invoke(event, lambda_context)
