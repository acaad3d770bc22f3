"""The WebhookSender port over HTTP(S): Standard Webhooks signatures, the checked address pinned.

Signing uses `standardwebhooks` (the specification's reference library): `webhook-id` (the
event id, the same on every try), `webhook-timestamp` (this try) and `webhook-signature`, one
`v1,<base64 HMAC-SHA256>` per secret, space-separated (two during a secret rotation).
The connection goes to the address the SSRF check approved (not a second lookup that could
answer differently), with the URL's host name for TLS (SNI, certificate) and the Host header.
Redirects are not followed.

A try has ONE deadline (`timeout_seconds`), not a limit per socket read: an endpoint that answers
one byte at a time, each within the read timeout, is cut off when the deadline passes (a timer
shuts the socket down, which ends whatever read or write is blocked on it).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from chalicelib.notifications.domain import PostResult
from chalicelib.notifications.endpoint_urls import request_target

USER_AGENT = "vidproc-webhooks/1"


def signature_header(message_id: str, at: datetime, body: str, secrets: Sequence[str]) -> str:
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


class _Deadline:
    """Shuts down the sockets it is given once `seconds` have passed since it was made."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.passed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the try's deadline passed")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.passed
        if expired:
            self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # closed already
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.remaining())
        self._address = address
        self._deadline = deadline

    def _open(self) -> socket.socket:
        raw = socket.create_connection((self._address, self.port), self._deadline.remaining())
        self._deadline.watch(raw)
        return raw

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_PinnedHTTP, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, deadline: _Deadline) -> None:
        http.client.HTTPSConnection.__init__(
            self, host, port, timeout=deadline.remaining(), context=ssl.create_default_context()
        )
        self._address = address
        self._deadline = deadline

    def connect(self) -> None:
        # The handshake runs after the deadline watches the TLS socket (wrapping detaches the
        # plain one): a handshake dripped out byte by byte is cut off like any other read.
        tls = self._context.wrap_socket(  # type: ignore[attr-defined]
            self._open(), server_hostname=self.host, do_handshake_on_connect=False
        )
        self._deadline.watch(tls)
        tls.do_handshake()
        self.sock = tls


def pinned_post(url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POST `body` to `url`, connected to `address` (the one checked), the URL's host (IDNA) for
    TLS and Host; no redirects. The whole try, handshake and answer included, has one deadline of
    `timeout` seconds. What the other side did is the result, never an exception."""
    parts = urlsplit(url)
    host = (parts.hostname or "").encode("idna").decode("ascii")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    deadline = _Deadline(timeout)
    connection_type = _PinnedHTTPS if https else _PinnedHTTP
    connection = connection_type(host, port, address, deadline)
    try:
        connection.request("POST", request_target(url), body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # the answer's body is not kept
        if deadline.passed:
            raise TimeoutError("the answer ended after the deadline")
        return PostResult(response.status)
    except (OSError, http.client.HTTPException) as exc:
        if deadline.passed or isinstance(exc, TimeoutError):
            return PostResult(None, f"No answer within {timeout:g} s")
        return PostResult(None, f"Could not connect: {type(exc).__name__}")
    finally:
        deadline.cancel()
        connection.close()


class HttpWebhookSender:
    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = timeout_seconds

    def post(
        self,
        url: str,
        addresses: Sequence[str],
        message_id: str,
        body: str,
        secrets: Sequence[str],
        at: datetime,
    ) -> PostResult:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature_header(message_id, at, body, secrets),
        }
        return pinned_post(url, addresses[0], body.encode(), headers, self.timeout)
