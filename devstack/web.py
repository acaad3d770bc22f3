"""The static frontend on a local port, plus a generated /config.js telling the page where things are.

config.js is served from memory (never written into the tree): the API's URL, the Cognito
endpoint (the moto server locally), region, app client id and the upload size limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from devstack import REPO_ROOT
from devstack.services import LoopbackServer

FRONTEND_DIR = REPO_ROOT / "frontend"
# Third-party code the pages use, from the pinned npm packages `make install` put in
# node_modules (never a CDN): URL prefix -> package folder. Deployed, infra/deploy.sh
# copies the same folders to the same paths.
VENDOR = {"/vendor/swagger-ui/": "swagger-ui-dist"}


def app_config(env: Mapping[str, str], api_url: str) -> dict[str, Any]:
    """What the page needs to know, from the stack's environment."""
    return {
        "apiBaseUrl": api_url,
        "cognitoEndpoint": env.get("AWS_ENDPOINT_URL_COGNITO_IDP", ""),
        "cognitoRegion": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1"),
        "cognitoClientId": env.get("COGNITO_CLIENT_ID", ""),
        "uploadMaxBytes": int(env.get("UPLOAD_MAX_BYTES", str(50 * 1024**3))),
    }


def config_js(config: Mapping[str, Any]) -> bytes:
    return f"window.APP_CONFIG = {json.dumps(config, indent=2)};\n".encode()


class FrontendHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, config_body: bytes, **kwargs: Any) -> None:
        self.config_body = config_body
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/config.js":
            self._send_config(head=False)
            return
        super().do_GET()

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

    def translate_path(self, path: str) -> str:
        for prefix, package in VENDOR.items():
            if path.startswith(prefix):
                rest = unquote(path[len(prefix) :].split("?", 1)[0].split("#", 1)[0])
                parts = [p for p in rest.split("/") if p not in ("", ".", "..")]
                return str(Path(REPO_ROOT, "node_modules", package, *parts))
        return super().translate_path(path)

    def end_headers(self) -> None:
        # The page changes while someone works on it: never let the browser keep a stale copy.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per static file is noise next to the API's and worker's logs


class WebServer(LoopbackServer):
    """The frontend, served by a threaded static server in a background thread of this process."""

    def __init__(self, port: int, config: Mapping[str, Any], directory: Path = FRONTEND_DIR) -> None:
        self.directory = directory
        handler = partial(FrontendHandler, directory=str(directory), config_body=config_js(config))
        super().__init__(port, handler, "web")
