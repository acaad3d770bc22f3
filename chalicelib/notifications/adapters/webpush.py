"""The PushSender port: Web Push with pywebpush (RFC 8291 aes128gcm payloads) and py_vapid
(RFC 8292 VAPID JWTs), sent through the same pinned, redirect-free POST as webhooks.

The VAPID key pair is read at run time from the Secrets Manager secret VAPID_SECRET_ID
({"privateKey": base64url 32-byte scalar, "publicKey": base64url uncompressed point}) with
Powertools Parameters (cached 5 minutes in a warm container), never from the environment.
The local stack generates the pair and stores it in its (moto) Secrets Manager; deployed,
infra/deploy.sh generates it once into the secret the resources stack made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities import parameters

from chalicelib.config import Settings
from chalicelib.notifications.adapters.webhook_http import USER_AGENT, pinned_post
from chalicelib.notifications.domain import PostResult, PushSubscription
from chalicelib.notifications.push import PushNotConfiguredError

SECRET_MAX_AGE = 300
JWT_LIFETIME = 12 * 3600  # RFC 8292: at most 24 hours


def _read_keys(secret_id: str) -> dict[str, str]:
    try:
        secret: Any = parameters.get_secret(secret_id, transform="json", max_age=SECRET_MAX_AGE)
    except parameters.exceptions.GetParameterError as exc:
        raise PushNotConfiguredError("The VAPID key pair could not be read") from exc
    if not isinstance(secret, dict) or not secret.get("privateKey") or not secret.get("publicKey"):
        raise PushNotConfiguredError("The VAPID secret must hold privateKey and publicKey")
    return {"privateKey": str(secret["privateKey"]), "publicKey": str(secret["publicKey"])}


class WebPushSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _keys(self) -> dict[str, str]:
        if not self.settings.vapid_secret_id:
            raise PushNotConfiguredError()
        return _read_keys(self.settings.vapid_secret_id)

    def public_key(self) -> str:
        return self._keys()["publicKey"]

    def push(self, subscription: PushSubscription, addresses: Sequence[str], payload: bytes) -> PostResult:
        from py_vapid import Vapid  # the notifier's dependencies: imported when a push is sent
        from pywebpush import WebPusher

        keys = self._keys()
        info = {
            "endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
        encrypted = WebPusher(info).encode(payload, "aes128gcm")["body"]
        parts = urlsplit(subscription.endpoint)
        claims = {
            "sub": self.settings.vapid_subject,
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + JWT_LIFETIME,
        }
        headers = dict(Vapid.from_string(keys["privateKey"]).sign(claims))
        headers.update(
            {
                "TTL": str(self.settings.push_ttl_seconds),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "Urgency": "normal",
                "User-Agent": USER_AGENT,
            }
        )
        return pinned_post(
            subscription.endpoint, addresses[0], encrypted, headers, self.settings.push_timeout_seconds
        )
