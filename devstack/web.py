"""The static frontend on a local port, plus a generated /config.js telling the page where things are.

config.js is served from memory (never written into the tree): the API's URL, the Cognito
endpoint (the moto server locally), region, app client id and the upload size limit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack import REPO_ROOT

FRONTEND_DIR = REPO_ROOT / "frontend"
# Browser dependencies installed from npm (package.json), served under /vendor/ as deployed.
VENDOR = {"/vendor/hls.min.js": REPO_ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"}


def app_config(env: Mapping[str, str], api_url: str) -> dict[str, Any]:
    """What the page needs to know, from the stack's environment."""
    return {
        "apiBaseUrl": api_url,
        "cognitoEndpoint": env.get("AWS_ENDPOINT_URL_COGNITO_IDP", ""),
        "cognitoRegion": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
        "cognitoClientId": env.get("COGNITO_CLIENT_ID", ""),
        "uploadMaxBytes": int(env.get("UPLOAD_MAX_BYTES", str(2 * 1024**3))),
    }


def config_js(config: Mapping[str, Any]) -> bytes:
    return f"window.APP_CONFIG = {json.dumps(config, indent=2)};\n".encode()


class FrontendHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, config_body: bytes, **kwargs: Any) -> None:
        self.config_body = config_body
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/config.js":
            self._send_config(head=False)
            return
        if path in VENDOR:
            self._send_vendor(VENDOR[path])
            return
        super().do_GET()

    def _send_vendor(self, file: Path) -> None:
        if not file.exists():
            self.send_error(404, "not installed: run make install")
            return
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        if self.path.split("?", 1)[0] == "/config.js":
            self._send_config(head=True)
            return
        super().do_HEAD()

    def _send_config(self, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(self.config_body)))
        self.end_headers()
        if not head:
            self.wfile.write(self.config_body)

    def end_headers(self) -> None:
        # The page changes while someone works on it: never let the browser keep a stale copy.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per static file is noise next to the API's and worker's logs


class WebServer:
    """A threaded static server in a background thread of this process."""

    def __init__(self, port: int, config: Mapping[str, Any], directory: Path = FRONTEND_DIR) -> None:
        self.port = port
        self.directory = directory
        handler = partial(FrontendHandler, directory=str(directory), config_body=config_js(config))
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
