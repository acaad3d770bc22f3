"""Test helpers for notifications: a webhook receiver on 127.0.0.1 that checks Standard Webhooks
signatures with its own HMAC code (not the library the service signs with), and moto's outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import requests

T = TypeVar("T")


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """The spec, written out: HMAC-SHA256(base64-decoded secret, "{id}.{timestamp}.{body}")."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    wanted = expected_signature(secret, headers["webhook-id"], headers["webhook-timestamp"], body)
    for part in headers["webhook-signature"].split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(base64.b64decode(value), wanted):
            return True
    return False


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    path: str = "/"

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """Answers each POST with the next status of `script` (then `default`); records everything."""

    default: int = 200
    script: list[int] = field(default_factory=list)
    hold: threading.Event | None = None  # when set: every request waits until it is set
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                with receiver._lock:
                    status = receiver.answer(self.path)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(headers, body, status, self.path))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def answer(self, path: str) -> int:
        """The status for this request (called under the lock)."""
        return self.script.pop(0) if self.script else self.default

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.origin}/hook"

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def of_type(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event["type"] == kind]


def eventually(check: Callable[[], T | None], timeout: float = 30, what: str = "the condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.1)


def sent_mail(moto_url: str, to: str) -> list[dict[str, Any]]:
    """What moto's SES accepted for `to`: {subject, body (the HTML part), source, destinations}."""
    data = requests.get(f"{moto_url}/moto-api/data.json", timeout=10).json()
    messages = data.get("ses", {}).get("Message", [])
    return [m for m in messages if to in m.get("destinations", {}).get("ToAddresses", [])]
