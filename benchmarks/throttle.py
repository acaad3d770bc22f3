"""A throttling S3 endpoint on 127.0.0.1 in front of the moto server: R2's network, roughly.

    python -m benchmarks.throttle UPSTREAM_URL [--stream-mb-s 25] [--first-byte-ms 60]

Prints `THROTTLE-URL http://127.0.0.1:PORT` once it listens. Every request is forwarded to the
moto server, with two differences that make it look like R2 from a Lambda function rather than
a Python server on the same two cores:

- each response body (and each request body: uploads) moves at most `--stream-mb-s` per
  connection, after `--first-byte-ms`: one stream is bounded, several in parallel are not;
- a GET of an object is served from a copy this process fetched once with a plain GET. moto
  re-reads the whole object for every ranged GET (a 760 MB object, 8 MiB at a time, is 95 full
  reads on the cores ffmpeg needs); R2 does not. The copy is dropped on any write to the key.

The figures are assumptions, not measurements of R2 (nothing here can reach it): 25 MB/s per
stream (200 Mb/s) and 60 ms to the first byte, the order of magnitude published third-party
tests give for R2 from AWS us-east-1 with 8 parallel streams (about 110 MB/s in all). Change them
with the options; `make bench` prints the ones it used.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "expect"}
PIECE = 64 * 1024


class Pacer:
    """Lets `rate` bytes a second through one stream, after a first-byte delay."""

    def __init__(self, rate: float, first_byte: float) -> None:
        self.rate, self.started, self.sent = rate, time.monotonic() + first_byte, 0
        time.sleep(first_byte)

    def wait(self, size: int) -> None:
        self.sent += size
        ahead = self.started + self.sent / self.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


class Cache:
    """Whole objects fetched once from the upstream, keyed by path (a bucket/key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[Path, int, dict[str, str]]] = {}
        self.loading: dict[str, threading.Lock] = {}

    def drop(self, path: str) -> None:
        with self.lock:
            entry = self.entries.pop(path, None)
        if entry:
            entry[0].unlink(missing_ok=True)

    def get(
        self, path: str, fetch: Callable[[], tuple[Path, int, dict[str, str]] | None]
    ) -> tuple[Path, int, dict[str, str]] | None:
        with self.lock:
            if path in self.entries:
                return self.entries[path]
            lock = self.loading.setdefault(path, threading.Lock())
        with lock:
            with self.lock:
                if path in self.entries:
                    return self.entries[path]
            entry = fetch()
            if entry is not None:
                with self.lock:
                    self.entries[path] = entry
            return entry


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, rate: float, first_byte: float, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rate, self.first_byte = rate, first_byte
        self.cache = Cache(folder)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Proxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self._is_object() and not self._multipart() and self._from_cache():
            return
        self._forward()

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward()

    def do_PUT(self) -> None:  # noqa: N802
        self.server.cache.drop(self._key())
        self._forward()

    def do_POST(self) -> None:  # noqa: N802
        self.server.cache.drop(self._key())
        self._forward()

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.cache.drop(self._key())
        self._forward()

    def _key(self) -> str:
        return self.path.split("?", 1)[0]

    def _is_object(self) -> bool:
        return self._key().strip("/").count("/") >= 1  # /bucket/key...

    def _multipart(self) -> bool:
        query = parse_qs(self.path.partition("?")[2], keep_blank_values=True)
        return "uploads" in query or "uploadId" in query

    def _upstream(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=600)

    def _headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}

    def _body(self, pacer: Pacer | None) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        chunks, left = [], length
        while left > 0:
            piece = self.rfile.read(min(PIECE, left))
            if not piece:
                break
            chunks.append(piece)
            left -= len(piece)
            if pacer is not None:
                pacer.wait(len(piece))
        return b"".join(chunks)

    def _forward(self) -> None:
        pacer = Pacer(self.server.rate, self.server.first_byte)
        body = self._body(pacer) if self.command in ("PUT", "POST") else None
        conn = self._upstream()
        try:
            conn.request(self.command, self.path, body=body, headers=self._headers())
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            if resp.getheader("Content-Length") is None and self.command != "HEAD":
                data = resp.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.end_headers()
            if self.command == "HEAD":
                return
            while piece := resp.read(PIECE):
                self.wfile.write(piece)
                pacer.wait(len(piece))
        except OSError:  # the client went away (a reader that stopped early)
            self.close_connection = True
        finally:
            conn.close()

    def _from_cache(self) -> bool:
        key = self._key()

        def fetch() -> tuple[Path, int, dict[str, str]] | None:
            conn = self._upstream()
            try:
                headers = {k: v for k, v in self._headers().items() if k.lower() != "range"}
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    resp.read()
                    return None
                fd, name = tempfile.mkstemp(dir=self.server.cache.folder)
                size = 0
                with os.fdopen(fd, "wb") as out:
                    while piece := resp.read(1024 * 1024):
                        out.write(piece)
                        size += len(piece)
                kept = {
                    k: v
                    for k, v in resp.getheaders()
                    if k.lower() in ("etag", "last-modified", "content-type")
                    or k.lower().startswith("x-amz-meta")
                }
                return Path(name), size, kept
            finally:
                conn.close()

        entry = self.server.cache.get(key, fetch)
        if entry is None:
            return False
        path, size, kept = entry
        pacer = Pacer(self.server.rate, self.server.first_byte)
        first, last = _range(self.headers.get("Range"), size)
        if first > last:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        self.send_response(206 if self.headers.get("Range") else 200)
        for k, v in kept.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if self.headers.get("Range"):
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        try:
            with path.open("rb") as f:
                at = first
                while at <= last:
                    count = min(PIECE, last + 1 - at)
                    at += self.connection.sendfile(f, at, count)
                    pacer.wait(count)
        except OSError:
            self.close_connection = True
        return True


def _range(header: str | None, size: int) -> tuple[int, int]:
    if not header or not header.startswith("bytes="):
        return 0, size - 1
    first, _, last = header[6:].partition("-")
    if not first:
        return max(size - int(last), 0), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throttle", description=__doc__)
    parser.add_argument("upstream")
    parser.add_argument("--stream-mb-s", type=float, default=25.0)
    parser.add_argument("--first-byte-ms", type=float, default=60.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="throttle-") as folder:
        proxy = Proxy(args.upstream, args.stream_mb_s * 1e6, args.first_byte_ms / 1000, Path(folder))
        host, port = proxy.server_address[:2]
        print(f"THROTTLE-URL http://{host!s}:{port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            proxy.serve_forever(0.1)


if __name__ == "__main__":
    main()
