"""What the local R2 (moto's S3) received: the body bytes of every UploadPart request, per object
key and part number, counted as moto reads them (a WSGI middleware in front of moto's app).

Tests use it to prove a resumed upload sends no stored part again: the bytes the server received,
not what the browser says it sent.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _CountingInput:
    def __init__(self, stream: Any, count: Callable[[int], None]) -> None:
        self._stream = stream
        self._count = count

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        self._count(len(data))
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._stream.readline(*args)
        self._count(len(data))
        return data

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class ReceivedParts:
    """Bytes received per (object key, part number), one entry per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))

    def middleware(self, app: WSGIApp) -> WSGIApp:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if environ.get("REQUEST_METHOD") != "PUT" or "partNumber" not in query or "uploadId" not in query:
                return app(environ, start_response)
            key = unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)[-1]
            number = int(query["partNumber"][0])
            with self._lock:
                entries = self._parts[key][number]
                entries.append(0)
                slot = len(entries) - 1

            def count(n: int) -> None:
                with self._lock:
                    entries[slot] += n

            environ["wsgi.input"] = _CountingInput(environ["wsgi.input"], count)
            return app(environ, start_response)

        return counted

    def of(self, key: str) -> dict[int, list[int]]:
        """Part number -> the bytes of each request for it, for the object `key`."""
        with self._lock:
            return {n: list(sizes) for n, sizes in self._parts.get(key, {}).items()}
