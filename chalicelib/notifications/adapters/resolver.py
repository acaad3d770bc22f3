"""Name resolution for webhook URLs (the Resolver port): every address a host name has."""

from __future__ import annotations

import ipaddress
import socket

from chalicelib.errors import ValidationError


def resolve(host: str) -> list[str]:
    """The host's addresses; an IP literal is itself (no lookup). ValidationError when none."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ValidationError(f"The URL's host name {host!r} does not resolve") from exc
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    if not addresses:
        raise ValidationError(f"The URL's host name {host!r} does not resolve")
    return addresses
