"""ffmpeg reading an upload while it arrives (chalicelib.processing.streaming_input): the real
ffmpeg through the local range server, and the R2 adapter's ranged reads on the moto server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.r2 import R2Store
from chalicelib.config import Settings
from chalicelib.errors import DownloadError, StorageError
from chalicelib.processing import streaming_input
from tests.support.media import make_clip, stream_facts
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "moov at the end": make_clip(folder / "end.mp4", seconds=2, width=320, height=240),
        "moov first": make_clip(folder / "first.mp4", seconds=2, width=320, height=240, faststart=True),
    }


def slow_reads(data: bytes, pause: float = 0.01) -> streaming_input.Fetch:
    """Ranged reads of `data` that take their time, in 16 KiB pieces (as a network would)."""

    def fetch(start: int, length: int) -> Iterator[bytes]:
        time.sleep(pause)
        for at in range(start, start + length, 16384):
            yield data[at : min(at + 16384, start + length)]

    return fetch


@pytest.mark.parametrize("layout", ["moov at the end", "moov first"])
def test_ffmpeg_transcodes_a_stream_as_it_transcodes_the_file(
    clips: dict[str, Path], layout: str, tmp_path: Path
) -> None:
    clip = clips[layout]
    transcoder = FFmpegTranscoder.from_settings(Settings())
    data = clip.read_bytes()
    with streaming_input.opened(slow_reads(data), len(data), tmp_path / "in", chunk=64 * 1024) as stream:
        stream.read_ahead()
        transcoder.transcode(stream.url, tmp_path / "streamed.mp4")
    transcoder.transcode(str(clip), tmp_path / "local.mp4")

    streamed, local = stream_facts(tmp_path / "streamed.mp4"), stream_facts(tmp_path / "local.mp4")
    assert streamed == local  # the same frames and audio, start and duration
    assert (tmp_path / "in").read_bytes() == data  # every byte arrived, once


def test_a_stream_that_breaks_for_good_is_a_download_error(clips: dict[str, Path], tmp_path: Path) -> None:
    data = clips["moov first"].read_bytes()

    def breaks(start: int, length: int) -> Iterator[bytes]:
        if start >= len(data) // 2:
            raise OSError("connection reset by peer")
        yield data[start : start + length]

    transcoder = FFmpegTranscoder.from_settings(Settings())
    with (
        pytest.raises(DownloadError),
        streaming_input.opened(breaks, len(data), tmp_path / "in", chunk=32 * 1024) as stream,
    ):
        stream.read_ahead()
        transcoder.transcode(stream.url, tmp_path / "out.mp4")  # ffmpeg may take a cut-off input
        stream.arrived()


def test_r2_ranged_reads_return_the_bytes_asked_for(aws_stack: AwsStack, tmp_path: Path) -> None:
    store = bootstrap.services().store
    assert isinstance(store, R2Store)
    data = bytes(range(256)) * 4096  # 1 MiB
    (tmp_path / "object").write_bytes(data)
    store.upload_file(tmp_path / "object", "tests/streaming/object", "application/octet-stream")

    assert b"".join(store.read_range("tests/streaming/object", 1000, 300_000)) == data[1000:301_000]
    assert b"".join(store.read_range("tests/streaming/object", len(data) - 10, 10)) == data[-10:]
    with pytest.raises(StorageError):
        list(store.read_range("tests/streaming/missing", 0, 10))
