"""The PushSender port: Web Push with the web-push-libs' own building blocks, `http_ece` (the
RFC 8188 / RFC 8291 aes128gcm encryption) and `py_vapid` (RFC 8292 VAPID JWTs), sent through the
same pinned, redirect-free POST as webhooks.

These are the two libraries pywebpush is made of, used as pywebpush's `WebPusher.encode` and
`webpush()` use them (a fresh P-256 key per message, ECDH with the browser's key, its auth
secret; a JWT for the push service's origin). pywebpush itself adds an HTTP transport (requests
and aiohttp, imported whatever is used) that this adapter replaces with the pinned POST; in the
deployment package its dependencies cost 13.6 MB (`make package`: the function 35.0 -> 48.6 MB,
function + layer over the 200 MB target). The tests check that what pywebpush encrypts and what
this encrypts read the same (tests/unit/test_webpush.py).

The VAPID key pair is read at run time from the Secrets Manager secret VAPID_SECRET_ID
({"privateKey": base64url 32-byte scalar, "publicKey": base64url uncompressed point}) with
Powertools Parameters (cached 5 minutes in a warm container), never from the environment.
The local stack generates the pair and stores it in its (moto) Secrets Manager; deployed,
infra/deploy.sh generates it once into the secret the resources stack made.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from chalicelib.adapters.secrets import json_secret
from chalicelib.config import Settings
from chalicelib.notifications.adapters.webhook_http import USER_AGENT, pinned_post
from chalicelib.notifications.domain import PostResult, PushSubscription
from chalicelib.notifications.push import PushNotConfiguredError

JWT_LIFETIME = 12 * 3600  # RFC 8292: at most 24 hours


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The aes128gcm body for one browser (RFC 8291): only its private key can read it."""
    import http_ece  # the notifier's dependencies: imported when a push is sent
    from cryptography.hazmat.primitives.asymmetric import ec

    sender = ec.generate_private_key(ec.SECP256R1())  # ephemeral: one per message
    encrypted = http_ece.encrypt(
        payload, private_key=sender, dh=_unb64(p256dh), auth_secret=_unb64(auth), version="aes128gcm"
    )
    return bytes(encrypted)


def vapid_headers(private_key: str, endpoint: str, subject: str) -> dict[str, str]:
    """`Authorization: vapid t=<JWT>,k=<public key>` for the push service at `endpoint`."""
    from py_vapid import Vapid

    parts = urlsplit(endpoint)
    claims = {
        "sub": subject,
        "aud": f"{parts.scheme}://{parts.netloc}",
        "exp": int(time.time()) + JWT_LIFETIME,
    }
    return dict(Vapid.from_string(private_key).sign(claims))


class WebPushSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _keys(self) -> dict[str, str]:
        if not self.settings.vapid_secret_id:
            raise PushNotConfiguredError()
        keys = ("privateKey", "publicKey")
        return json_secret(self.settings.vapid_secret_id, keys, PushNotConfiguredError, "VAPID key pair")

    def public_key(self) -> str:
        return self._keys()["publicKey"]

    def push(self, subscription: PushSubscription, addresses: Sequence[str], payload: bytes) -> PostResult:
        settings = self.settings
        headers = vapid_headers(self._keys()["privateKey"], subscription.endpoint, settings.vapid_subject)
        headers.update(
            {
                "TTL": str(settings.push_ttl_seconds),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "Urgency": "normal",
                "User-Agent": USER_AGENT,
            }
        )
        body = encrypt(payload, subscription.p256dh, subscription.auth)
        return pinned_post(subscription.endpoint, addresses[0], body, headers, settings.push_timeout_seconds)
