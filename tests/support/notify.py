"""Test helpers for notifications: a webhook receiver on 127.0.0.1 that checks Standard Webhooks
signatures with its own HMAC code (not the library the service signs with), and moto's outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
    at: float = field(default_factory=time.monotonic)  # when it arrived

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

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.received]

    def of_type(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.event["type"] == kind]


class Tarpit:
    """An endpoint on 127.0.0.1 that reads the request, then answers one byte every `every`
    seconds, as a hostile receiver would (no single read ever waits long): a valid 200 in all,
    or (`forever`) a header line that never ends, until `stop()`."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(self, every: float = 0.5, forever: bool = False) -> None:
        self.every = every
        self.forever = forever
        self.sent = 0  # bytes sent, over all connections
        self.connections = 0
        self.done = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _answer(self) -> Iterator[int]:
        if not self.forever:
            yield from self.ANSWER
            return
        yield from b"HTTP/1.1 200 OK\r\nX-Pad: "
        while True:
            yield ord("a")

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                for byte in self._answer():
                    if self.done.wait(self.every):
                        return
                    conn.sendall(bytes([byte]))
                    self.sent += 1
            except OSError:
                return  # the client gave up and closed

    def stop(self) -> None:
        self.done.set()
        self._server.close()


def send_credits_low(workspace_id: str, event_id: str | None = None) -> str:
    """A credits.low event straight onto the notifications queue, as the stream's function puts
    it there (the fan-out takes it from there); its id."""
    import uuid

    from chalicelib.bootstrap import notify_services

    event_id = event_id or "evt_" + uuid.uuid4().hex
    notify_services().queue.send_event(
        {
            "id": event_id,
            "type": "credits.low",
            "timestamp": "2026-12-01T00:00:00.000Z",
            "workspaceId": workspace_id,
            "data": {"credits": 1, "threshold": 2},
        }
    )
    return event_id


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
