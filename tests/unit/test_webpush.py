"""The push adapter's cryptography, without a network: what it encrypts reads, for the browser it
was sealed for, exactly as what pywebpush encrypts; its VAPID header verifies."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import WebPusher

from chalicelib.notifications.adapters.webpush import encrypt, vapid_headers
from tests.support.push_service import BrowserKeys, b64url, vapid_claims


def test_a_payload_reads_the_same_as_pywebpushs_for_the_browser_and_only_for_it() -> None:
    browser, stranger = BrowserKeys(), BrowserKeys()
    message = b'{"title": "Ready: clip.mp4"}'
    ours = encrypt(message, browser.p256dh, b64url(browser.auth))
    info = {
        "endpoint": "https://push.example.com/x",
        "keys": {"p256dh": browser.p256dh, "auth": b64url(browser.auth)},
    }
    theirs = WebPusher(info).encode(message, "aes128gcm")["body"]
    assert browser.decrypt(ours) == browser.decrypt(theirs) == message
    assert ours != encrypt(message, browser.p256dh, b64url(browser.auth))  # a fresh key every time
    try:
        stranger.decrypt(ours)
    except Exception:  # noqa: BLE001 (any refusal will do: the tag does not verify)
        pass
    else:
        raise AssertionError("another browser read it")


def test_the_vapid_header_names_the_push_services_origin_and_verifies_with_the_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    public = b64url(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    headers = vapid_headers(private, "https://push.example.com:8443/send/abc?x=1", "mailto:ops@example.com")
    claims = vapid_claims(headers["Authorization"], "https://push.example.com:8443", public)
    assert claims["sub"] == "mailto:ops@example.com"
    assert base64.urlsafe_b64decode(public + "==")[0] == 4
