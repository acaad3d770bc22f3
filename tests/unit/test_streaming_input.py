"""The streaming input's bookkeeping (chalicelib.processing.streaming_input): byte ranges, the
order ranged reads go in, and what a reader sees when the bytes cannot come. ffmpeg reading
through it is in tests/integration/test_streaming_input.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.processing.streaming_input import FetchError, Filling, Spans, byte_range

SIZE = 10_000


def test_spans_merge_neighbours_and_find_the_first_gap() -> None:
    spans = Spans()
    spans.add(10, 20)
    spans.add(30, 40)
    spans.add(20, 25)  # touches the first: merged
    assert spans.end_at(12) == 25 and spans.end_at(25) == 25 and spans.end_at(35) == 40
    assert spans.gap_from(0, 100, 50) == (0, 10)
    assert spans.gap_from(12, 100, 50) == (25, 30)
    assert spans.gap_from(35, 100, 8) == (40, 48)  # at most `limit` long
    spans.add(0, 100)
    assert spans.gap_from(0, 100, 50) is None and spans.total() == 100


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (0, 99)),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=100-", None),
        ("bytes=5-1", None),
        ("items=0-1", None),
        ("bytes=0-1,5-6", None),
        ("bytes=x-", None),
    ],
)
def test_byte_ranges_as_http_states_them(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


class Source:
    """An object of SIZE known bytes; records each ranged read; can break off or stall."""

    def __init__(
        self, fail_after: int | None = None, failures: int = 0, stall: threading.Event | None = None
    ):
        self.data = bytes(i % 251 for i in range(SIZE))
        self.reads: list[tuple[int, int]] = []
        self.fail_after, self.failures, self.stall = fail_after, failures, stall
        self.lock = threading.Lock()

    def fetch(self, start: int, length: int) -> Iterator[bytes]:
        with self.lock:
            self.reads.append((start, length))
        for at in range(start, start + length, 100):
            if self.stall is not None:
                self.stall.wait(5)
            with self.lock:
                broken = self.failures > 0 and self.fail_after is not None and at >= self.fail_after
                if broken:
                    self.failures -= 1
            if broken:
                raise OSError("connection reset")
            yield self.data[at : min(at + 100, start + length)]


def read_all(filling: Filling) -> bytes:
    out, at = b"", 0
    while at < filling.size:
        n = filling.available(at, timeout=10)
        out += filling.path.read_bytes()[at : at + n]
        at += n
    return out


def test_a_reader_gets_every_byte_and_what_it_waits_for_is_read_first(tmp_path: Path) -> None:
    source = Source()
    filling = Filling(tmp_path / "f", SIZE, source.fetch, chunk=1000, streams=2)
    try:
        assert filling.available(9_500, timeout=10) >= 1  # the tail first (a moov at the end)
        assert source.reads == [(9_500, 500)]  # nothing else before read_ahead
        filling.read_ahead()
        assert read_all(filling) == source.data
    finally:
        filling.close()
    assert sum(length for _, length in source.reads) == SIZE  # no byte read twice


def test_a_ranged_read_that_breaks_off_resumes_where_it_stopped(tmp_path: Path) -> None:
    source = Source(fail_after=1_500, failures=2)
    filling = Filling(tmp_path / "f", SIZE, source.fetch, chunk=1000, streams=1)
    try:
        filling.read_ahead()
        assert read_all(filling) == source.data
    finally:
        filling.close()
    assert (1_500, 500) in source.reads  # resumed at the byte it stopped at


def test_a_read_that_keeps_failing_fails_the_reader_with_the_cause(tmp_path: Path) -> None:
    source = Source(fail_after=2_000, failures=99)
    filling = Filling(tmp_path / "f", SIZE, source.fetch, chunk=1000, streams=2)
    try:
        filling.read_ahead()
        with pytest.raises(FetchError, match="connection reset"):
            read_all(filling)
        assert isinstance(filling.error, OSError)
    finally:
        filling.close()


def test_closing_stops_the_fetchers_after_their_piece_and_wakes_the_readers(tmp_path: Path) -> None:
    stall = threading.Event()
    source = Source(stall=stall)
    filling = Filling(tmp_path / "f", SIZE, source.fetch, chunk=1000, streams=4)
    filling.read_ahead()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            filling.available(0, timeout=30)
        except FetchError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=reader)
    waiting.start()
    time.sleep(0.2)
    closer = threading.Thread(target=filling.close)
    closer.start()
    stall.set()  # the pieces in flight end; no fetcher takes another
    closer.join(timeout=10)
    waiting.join(timeout=10)
    assert not closer.is_alive() and not waiting.is_alive()
    assert errors and "closed" in str(errors[0])
    assert filling.fetched <= 5 * 100  # at most the one piece each fetcher was reading
