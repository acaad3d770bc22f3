"""`chalice local` with two socket settings of its HTTP server fixed (local only).

Measured by benchmarks/api_latency.py: chalice's handler writes the headers and the body in
two small writes without TCP_NODELAY, so on a kept-alive connection (a browser's) every answer
waited ~40 ms for the client's delayed ACK; and the listen backlog of 5 made bursts of new
connections wait 1-3 s for SYN retries. API Gateway has neither problem, so only the local
server is tuned. Usage is exactly `chalice`'s: `python -m devstack.chalice_local local --port 8000`.
"""

from __future__ import annotations

import sys

from chalice import local
from chalice.cli import main

LISTEN_BACKLOG = 128


def tune() -> None:
    local.ChaliceRequestHandler.disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY
    local.ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG


if __name__ == "__main__":
    tune()
    sys.argv[0] = "chalice"
    sys.exit(main())
