"""`chalice local` with two socket settings of its HTTP server fixed (local only).

Measured by benchmarks/api_latency.py: chalice's handler writes the headers and the body in
two small writes without TCP_NODELAY, so on a kept-alive connection (a browser's) every answer
waited ~40 ms for the client's delayed ACK; and the listen backlog of 5 made bursts of new
connections wait 1-3 s for SYN retries. API Gateway has neither problem, so only the local
server is tuned. Usage is exactly `chalice`'s: `python -m devstack.chalice_local local --port 8000`.

And a method the server has no handler for (TRACE, QUERY, CONNECT, ...) gets 405 with an `Allow`
header, as API Gateway refuses it, instead of http.server's 501 (a 5xx for a client's request).
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import urlsplit

from chalice import local
from chalice.cli import main

LISTEN_BACKLOG = 128


def tune() -> None:
    local.ChaliceRequestHandler.disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY
    local.ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG
    local.ChaliceRequestHandler.__getattr__ = _unknown_method


def _unknown_method(handler: Any, name: str) -> Any:
    """http.server looks a method's handler up as `do_<METHOD>`: every other one is a 405."""
    if not name.startswith("do_"):
        raise AttributeError(name)
    return lambda: _method_not_allowed(handler)


def _method_not_allowed(handler: Any) -> None:
    handler._parse_payload()  # read the body, so a kept-alive connection stays in step
    app = handler.local_gateway._app_object
    try:
        route = local.RouteMatcher(list(app.routes)).match_route(urlsplit(handler.path).path).route
        allowed = sorted(app.routes[route])
    except ValueError:
        allowed = []
    body = json.dumps({"code": "METHOD_NOT_ALLOWED", "message": f"{handler.command} is not allowed here"})
    handler._send_http_response(405, {"Allow": ", ".join(allowed)}, body)


if __name__ == "__main__":
    tune()
    sys.argv[0] = "chalice"
    sys.exit(main())
