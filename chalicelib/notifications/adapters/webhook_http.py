"""The WebhookSender port over HTTP(S): Standard Webhooks signatures, the checked address pinned.

Signing uses `standardwebhooks` (the specification's reference library): `webhook-id` (the
event id, the same on every try), `webhook-timestamp` (this try) and `webhook-signature`, one
`v1,<base64 HMAC-SHA256>` per secret, space-separated (two during a secret rotation).
The connection goes to the address the SSRF check approved (not a second lookup that could
answer differently), with the URL's host name for TLS (SNI, certificate) and the Host header.
Redirects are not followed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from chalicelib.notifications.domain import PostResult

USER_AGENT = "vidproc-webhooks/1"


def signature_header(message_id: str, at: datetime, body: str, secrets: Sequence[str]) -> str:
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def pinned_post(url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POST `body` to `url`, connected to `address` (the one checked), the URL's host for TLS and
    Host; no redirects. What the other side did is the result, never an exception."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_type = _PinnedHTTPS if https else _PinnedHTTP
    connection = connection_type(host, port, address, timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # the answer's body is not kept
        return PostResult(response.status)
    except TimeoutError:
        return PostResult(None, f"No answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return PostResult(None, f"Could not connect: {type(exc).__name__}")
    finally:
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
