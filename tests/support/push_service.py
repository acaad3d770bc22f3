"""A Web Push service stand-in on 127.0.0.1, and a browser's side of a subscription.

The service (the webhook tests' receiver) takes POSTs as a real push service does (RFC 8030)
and answers each with the next status scripted for its endpoint (201 by default). The test then
checks, independently of the code that sent it: the VAPID JWT (RFC 8292) with PyJWT against the
public key it names, which must be the application server key the browser subscribed with; and
the payload (RFC 8291), decrypted both with `http_ece` and with the key schedule written out
below from the RFC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.notify import Received, Receiver


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@dataclass
class BrowserKeys:
    """What a browser keeps for one subscription: its ECDH key pair and the auth secret."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(_point(self.private_key.public_key()))

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """PushSubscription.toJSON(), as the dashboard POSTs it."""
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """The payload, by http_ece and by RFC 8291 written out: both must agree."""
        library = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        by_hand = rfc8291_decrypt(body, self.private_key, self.auth)
        assert library == by_hand
        return bytes(library)


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def rfc8291_decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """RFC 8188 aes128gcm framing with RFC 8291's key derivation (one record)."""
    salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    as_public = body[21 : 21 + id_length]
    ciphertext = body[21 + id_length :]
    assert len(ciphertext) <= record_size
    shared = ua_private.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    )
    ua_public = _point(ua_private.public_key())
    ikm = _hmac(_hmac(auth, shared), b"WebPush: info\x00" + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    end = len(padded.rstrip(b"\x00")) - 1
    assert padded[end] == 2, "the last record ends with the delimiter 0x02"
    return padded[:end]


def vapid_claims(authorization: str, audience: str, application_server_key: str) -> dict[str, Any]:
    """The claims of a `vapid t=<JWT>,k=<key>` header, verified: ES256 by the key it names, which
    must be the key the browser subscribed with; `aud` the push service's origin; `exp` within
    24 hours; `sub` a contact."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == application_server_key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(parts["k"]))
    claims: dict[str, Any] = jwt.decode(parts["t"], public, algorithms=["ES256"], audience=audience)
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert str(claims["sub"]).startswith(("mailto:", "https://"))
    return claims


@dataclass
class PushService(Receiver):
    """The webhook tests' receiver, as a push service: 201 by default, a script per endpoint."""

    default: int = 201
    scripted: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer first

    def answer(self, path: str) -> int:
        queued = self.scripted.get(path) or []
        return queued.pop(0) if queued else self.default

    def start(self) -> PushService:
        super().start()
        return self

    def endpoint(self) -> str:
        """A new subscription's URL on this service."""
        return f"{self.origin}/push/{b64url(os.urandom(12))}"

    def to(self, endpoint: str) -> list[Received]:
        path = endpoint.removeprefix(self.origin)
        with self._lock:
            return [p for p in self.received if p.path == path]


def opened(
    push: Received, browser: BrowserKeys, service: PushService, application_server_key: str
) -> dict[str, Any]:
    """A received push checked as the test's browser and push service would: its headers, its
    VAPID JWT, and its payload decrypted."""
    assert push.headers["content-encoding"] == "aes128gcm"
    assert int(push.headers["ttl"]) > 0
    vapid_claims(push.headers["authorization"], service.origin, application_server_key)
    return dict(json.loads(browser.decrypt(push.body)))
