"""Which webhook URLs may be registered and called (SSRF): HTTPS to public addresses only.

A URL must be https, have a host, and every address its host resolves to must be public: not
private, loopback, link-local (169.254.0.0/16, where cloud metadata lives), multicast, reserved
or unspecified. WEBHOOK_ALLOW_LOCAL (the local stack only) also accepts http:// and loopback
addresses, never the other private ranges. The check runs at registration and again before
every try (a name may resolve elsewhere later); the sender connects to the address checked.

Address classes that Python's own tables have changed between versions are classified here,
explicitly: site-local fec0::/10 is refused, and an address that tunnels IPv4 (6to4 2002::/16,
Teredo 2001::/32, NAT64 64:ff9b::/96 and 64:ff9b:1::/48) is refused, naming the class of the
IPv4 address it carries when that one is not public ("loopback (6to4)").

A URL is stored and sent in one ASCII form (`normalized`): an internationalised host name in
IDNA, a path and query with anything else percent-encoded as UTF-8.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urlsplit, urlunsplit

from chalicelib.errors import ValidationError
from chalicelib.notifications.ports import Resolver

MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
TEREDO = ipaddress.IPv6Network("2001::/32")
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# RFC 3986: what may stay as it is in a path (and, with "?", in a query); "%" keeps escapes.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def classify(address: str) -> str:
    """'public', 'loopback' or the reason the address is refused."""
    ip: Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        else:
            tunnelled = _tunnelled(ip)
            if tunnelled is not None:
                return tunnelled
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


def _tunnelled(ip: ipaddress.IPv6Address) -> str | None:
    """The class of an IPv6 address that is site-local or carries an IPv4 address; None otherwise."""
    if ip in SITE_LOCAL:
        return "site-local"
    if ip in SIX_TO_FOUR:
        kind, carried = "6to4", [ip.sixtofour]
    elif ip in TEREDO:
        kind, carried = "Teredo", list(ip.teredo or ())
    elif any(ip in net for net in NAT64):
        kind, carried = "NAT64", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    else:
        return None
    inner = [classify(str(v4)) for v4 in carried if v4 is not None]
    refused = next((k for k in inner if k != "public"), None)
    return f"{refused} ({kind})" if refused else f"tunnelled ({kind})"


def normalized(url: str) -> str:
    """`url` in ASCII: the host in IDNA, the path and query percent-encoded (UTF-8).
    ValidationError when it cannot be (an empty label, a label too long)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValidationError("The URL is not valid") from exc
    netloc = parts.netloc
    if host and not host.isascii():
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValidationError("The URL's host name is not valid") from exc
        netloc = ascii_host + (f":{port}" if port is not None else "")
    path = quote(parts.path, safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((parts.scheme, netloc, path, query, quote(parts.fragment, safe=_QUERY_SAFE)))


def request_target(url: str) -> str:
    """What the request line names: the path (at least "/") and the query, in ASCII."""
    parts = urlsplit(normalized(url))
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def check_url(url: str, resolve: Resolver, allow_local: bool) -> list[str]:
    """The addresses `url` may be called at; ValidationError (a 400) saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"The URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(normalized(url))
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
