"""An upload as ffmpeg reads it while it is still arriving: a local HTTP range server over a
sparse file that parallel ranged reads of the object store fill.

Copying the whole upload to /tmp before ffmpeg starts put the copy's seconds in front of the
transcode (3 s for 760 MB from the local stack); ffmpeg reading R2's presigned URL itself reads
through one HTTP stream. Here ffmpeg reads `http://127.0.0.1:PORT/TOKEN`, served from this
process, and every Range request it makes is answered from the local file as soon as the bytes
it asks for are there (`make bench`, benchmark `worker`, measured a pipe and a growing file
against this: see docs/performance.md):

- the bytes a reader waits for are fetched first, by a fetcher of their own: the head, and the
  tail of a file whose `moov` is at the end, when ffmpeg seeks there;
- once `read_ahead()` says the whole file will be read (the single pass; not the probe that
  decides whether a video goes in segments), `STREAMS` ranged GETs of `CHUNK` bytes fill the
  rest, in order from where the reader last read;
- a ranged GET that breaks off resumes where it stopped (`RESUMES` times); after that the error
  is kept, a waiting read fails (ffmpeg sees its input end) and `opened` turns the attempt's
  error into a DownloadError: the platform's fault, retried, never the input's.

Closing (the transcode ended, failed or was stopped by the watch) stops every fetcher after the
piece it is reading: a cancelled job stops downloading within a piece.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from chalicelib.errors import DownloadError, ProcessingError

CHUNK = 8 * 1024 * 1024  # one ranged GET
STREAMS = 8  # ranged GETs at once while reading ahead (+1 for the bytes a reader waits for)
RESUMES = 2  # a ranged GET that breaks off is resumed this often
WAIT_SECONDS = 30.0  # a read waits this long for its first byte before the input counts as stalled
POLL_SECONDS = 0.05  # the server's shutdown check
CLOSE_SECONDS = 2.0  # closing waits at most this long for the fetchers to finish their piece

Fetch = Callable[[int, int], Iterator[bytes]]  # (start, length) -> those bytes, in pieces


class FetchError(Exception):
    """The bytes a reader asked for cannot come: the fetch failed, or the input was closed."""


class Spans:
    """Disjoint [start, end) byte ranges, merged as they grow."""

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        if start >= end:
            return
        merged: list[tuple[int, int]] = []
        placed = False
        for s, e in self._spans:
            if e < start:
                merged.append((s, e))
            elif end < s:
                if not placed:
                    merged.append((start, end))
                    placed = True
                merged.append((s, e))
            else:
                start, end = min(s, start), max(e, end)
        if not placed:
            merged.append((start, end))
        self._spans = merged

    def end_at(self, offset: int) -> int:
        """Where the span holding `offset` ends (`offset` itself when none holds it)."""
        for s, e in self._spans:
            if s <= offset < e:
                return e
        return offset

    def gap_from(self, offset: int, size: int, limit: int) -> tuple[int, int] | None:
        """The first range at or after `offset` (and before `size`) no span covers, at most
        `limit` long; None when everything from `offset` on is covered."""
        at = offset
        for s, e in self._spans:
            if e <= at:
                continue
            if s <= at:
                at = e
                continue
            return at, min(s, at + limit)
        return (at, min(size, at + limit)) if at < size else None

    def total(self) -> int:
        return sum(e - s for s, e in self._spans)


class Filling:
    """A sparse local file of `size` bytes that ranged reads fill; readers wait for their bytes."""

    def __init__(
        self, path: Path, size: int, fetch: Fetch, *, chunk: int = CHUNK, streams: int = STREAMS
    ) -> None:
        self.path, self.size = path, size
        self._fetch, self._chunk, self._streams = fetch, chunk, streams
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, size)
        self._have, self._taken = Spans(), Spans()
        self._cond = threading.Condition()
        self._wanted: int | None = None
        self._cursor = 0
        self._ahead = False
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.waited_seconds = 0.0  # what readers spent waiting for bytes: the copy overlap did not hide
        self._start(self._fetch_wanted)

    # --- readers -------------------------------------------------------------------------------

    def available(self, offset: int, timeout: float = WAIT_SECONDS) -> int:
        """How many bytes from `offset` on can be read now (at least one), waiting for the first.
        Raises FetchError when they cannot come (the fetch failed, closed, or `timeout` passed)."""
        with self._cond:
            self._cursor = offset
            end = self._have.end_at(offset)
            if end > offset:
                return end - offset
            started = time.monotonic()
            while end <= offset:
                if self.error is not None:
                    raise FetchError(f"the upload could not be read: {self.error!r}") from self.error
                if self._closed:
                    raise FetchError("the input was closed")
                if self._taken.end_at(offset) <= offset:
                    self._wanted = offset
                    self._cond.notify_all()
                remaining = started + timeout - time.monotonic()
                if remaining <= 0:
                    raise FetchError(f"no byte at {offset} within {timeout:.0f} s")
                self._cond.wait(remaining)
                end = self._have.end_at(offset)
            self.waited_seconds += time.monotonic() - started
            return end - offset

    def read_ahead(self) -> None:
        """Fetch the whole file from now on, `streams` ranges at a time."""
        with self._cond:
            if self._ahead:
                return
            self._ahead = True
        for _ in range(self._streams):
            self._start(self._fetch_ahead)

    @property
    def fetched(self) -> int:
        with self._cond:
            return self._have.total()

    def close(self) -> None:
        """Stop fetching (each fetcher after its current piece) and release the file."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + CLOSE_SECONDS
        for thread in self._threads:  # a fetcher stalled in a read is left to its read timeout
            thread.join(timeout=max(deadline - time.monotonic(), 0))
        with self._cond:  # no fetcher writes any more: it checks `_closed` under this lock first
            os.close(self._fd)

    # --- fetchers ------------------------------------------------------------------------------

    def _start(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name="input-fetch", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _stopping(self) -> bool:
        return self._closed or self.error is not None

    def _fetch_wanted(self) -> None:
        """Fetch what a reader waits for, from the byte it waits for."""
        while True:
            with self._cond:
                span = None
                while span is None:
                    if self._stopping():
                        return
                    wanted, self._wanted = self._wanted, None
                    if wanted is not None and self._taken.end_at(wanted) <= wanted:
                        span = self._taken.gap_from(wanted, self.size, self._chunk)
                    else:
                        self._cond.wait()
                self._taken.add(*span)
            self._fill(*span)

    def _fetch_ahead(self) -> None:
        """Fetch the next range nobody fetches yet, from where the reader last read."""
        while True:
            with self._cond:
                if self._stopping():
                    return
                span = self._taken.gap_from(self._cursor, self.size, self._chunk)
                span = span or self._taken.gap_from(0, self.size, self._chunk)
                if span is None:
                    return
                self._taken.add(*span)
            self._fill(*span)

    def _fill(self, start: int, end: int) -> None:
        at, failure = start, None
        for _ in range(RESUMES + 1):
            try:
                for piece in self._fetch(at, end - at):
                    piece = piece[: end - at]
                    if not self._write(piece, at):
                        return
                    at += len(piece)
                    if at >= end:
                        return
                raise FetchError(f"the ranged read ended {end - at} bytes short")
            except Exception as exc:  # resumed where it stopped; the last failure is kept
                failure = exc
        with self._cond:
            if not self._closed:
                self.error = failure
            self._cond.notify_all()

    def _write(self, piece: bytes, at: int) -> bool:
        with self._cond:
            if self._closed:
                return False
            view = memoryview(piece)
            while view:
                view = view[os.pwrite(self._fd, view, at + len(piece) - len(view)) :]
            self._have.add(at, at + len(piece))
            self._cond.notify_all()
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RangeServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one line per ffmpeg request is noise in the worker's log

    def _answer(self, body: bool) -> None:
        filling = self.server.filling
        if self.path != self.server.route:
            self.send_error(404)
            return
        wanted = byte_range(self.headers.get("Range"), filling.size)
        if wanted is None:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{filling.size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = wanted
        self.send_response(206 if self.headers.get("Range") else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Range", f"bytes {start}-{end}/{filling.size}")
        self.end_headers()
        if body:
            self._send(filling, start, end)

    def _send(self, filling: Filling, start: int, end: int) -> None:
        at = start
        try:
            with filling.path.open("rb") as source:
                while at <= end:
                    count = min(filling.available(at), end + 1 - at)
                    at += self.connection.sendfile(source, at, count)
        except (FetchError, OSError):
            # the reader went away (ffmpeg seeks by reconnecting) or the bytes cannot come: the
            # connection ends short, which ffmpeg reports as a broken input
            self.close_connection = True


class RangeServer(ThreadingHTTPServer):
    """Serves one Filling at one unguessable path on the loopback interface."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, filling: Filling) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.filling = filling
        self.route = f"/{secrets.token_urlsafe(16)}"
        self._thread = threading.Thread(
            target=self.serve_forever, args=(POLL_SECONDS,), name="input-server", daemon=True
        )
        self._thread.start()

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.route}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a `Range: bytes=a-b` (or `a-`, `-n`) header; the whole
    file without one; None when it cannot be satisfied."""
    if size <= 0:
        return None
    if not header:
        return 0, size - 1
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec:
        return None
    try:
        if not first:  # the last n bytes
            n = int(last)
            return (max(size - n, 0), size - 1) if n > 0 else None
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    return (start, end) if 0 <= start <= end else None


class Stream:
    """What the caller gets: the URL ffmpeg reads, and the fill behind it."""

    def __init__(self, filling: Filling, server: RangeServer) -> None:
        self.filling, self.url = filling, server.url

    def read_ahead(self) -> None:
        self.filling.read_ahead()

    def arrived(self) -> None:
        """Raise DownloadError if the fetch failed (what was read of the input was cut off)."""
        if self.filling.error is not None:
            raise DownloadError(detail=f"reading the upload failed: {self.filling.error!r}")

    @property
    def waited_seconds(self) -> float:
        return self.filling.waited_seconds


@contextlib.contextmanager
def opened(
    fetch: Fetch, size: int, path: Path, *, chunk: int = CHUNK, streams: int = STREAMS
) -> Iterator[Stream]:
    """Serve the object `fetch` reads (of `size` bytes) from `path` while it arrives.

    A ProcessingError raised inside the block after the fetch failed becomes a DownloadError (the
    input could not be read from storage: the platform's fault, whatever ffmpeg made of it).
    """
    filling = Filling(path, size, fetch, chunk=chunk, streams=streams)
    server = RangeServer(filling)
    try:
        yield Stream(filling, server)
    except ProcessingError as exc:  # what ffmpeg made of an input that stopped arriving
        if filling.error is not None and not isinstance(exc, DownloadError):
            raise DownloadError(detail=f"reading the upload failed: {filling.error!r}") from exc
        raise
    finally:
        server.close()
        filling.close()
