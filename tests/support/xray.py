"""A stand-in X-Ray daemon on 127.0.0.1: it keeps every segment document the SDK emits.

The X-Ray SDK sends each (sub)segment as one UDP datagram to AWS_XRAY_DAEMON_ADDRESS:
`{"format": "json", "version": 1}` and a newline, then the segment's JSON. Tests point the SDK
here (with tracing on, as in Lambda) and read back exactly what would have reached X-Ray.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any


class XRayCollector:
    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.datagrams: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    def start(self) -> XRayCollector:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append(data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._socket.close()

    def text(self) -> str:
        """Everything received, as one string (to search for what must not be there)."""
        with self._lock:
            return "\n".join(d.decode("utf-8", "replace") for d in self.datagrams)

    def segments(self) -> list[dict[str, Any]]:
        """Every segment document received (the header line dropped)."""
        out = []
        with self._lock:
            raw = list(self.datagrams)
        for data in raw:
            _header, _, body = data.decode("utf-8", "replace").partition("\n")
            try:
                out.append(json.loads(body))
            except ValueError:
                continue
        return out


def names(segments: list[dict[str, Any]]) -> set[str]:
    """The names of every segment and subsegment, nested ones included."""
    found: set[str] = set()

    def walk(entity: dict[str, Any]) -> None:
        found.add(str(entity.get("name")))
        for sub in entity.get("subsegments", []) or []:
            walk(sub)

    for segment in segments:
        walk(segment)
    return found
