"""Which webhook URLs may be registered and called (SSRF): HTTPS to public addresses only.

A URL must be https, have a host, and every address its host resolves to must be public: not
private, loopback, link-local (169.254.0.0/16, where cloud metadata lives), multicast, reserved
or unspecified. WEBHOOK_ALLOW_LOCAL (the local stack only) also accepts http:// and loopback
addresses, never the other private ranges. The check runs at registration and again before
every try (a name may resolve elsewhere later); the sender connects to the address checked.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from chalicelib.errors import ValidationError
from chalicelib.notifications.ports import Resolver

MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def classify(address: str) -> str:
    """'public', 'loopback' or the reason the address is refused."""
    ip: Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    for name, refused in (
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
        ("not globally routable", not ip.is_global),
    ):
        if refused:
            return name
    return "public"


def check_url(url: str, resolve: Resolver, allow_local: bool) -> list[str]:
    """The addresses `url` may be called at; ValidationError (a 400) saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"The URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError("The URL is not valid") from exc
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        raise ValidationError("The URL must be an https:// URL with a host name (and no user or password)")
    if port == 0:
        raise ValidationError("The URL is not valid")
    if parts.scheme == "http" and not (allow_local and _literal_loopback(host)):
        # Refused before any name is looked up.
        raise ValidationError("The URL must use https://")
    addresses = resolve(host)
    kinds = {classify(a) for a in addresses}
    refused = kinds - {"public", "loopback"}
    if refused:
        raise ValidationError(
            f"The URL's host resolves to a {sorted(refused)[0]} address, which is not allowed"
        )
    if "loopback" in kinds and not allow_local:
        raise ValidationError("The URL's host resolves to a loopback address, which is not allowed")
    return addresses


def _literal_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
