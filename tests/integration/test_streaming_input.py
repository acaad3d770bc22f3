"""ffmpeg reading an upload while it arrives (chalicelib.processing.streaming_input): the real
ffmpeg through the local range server, and the R2 adapter's ranged reads on the moto server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
from chalicelib.adapters.r2 import R2Store
from chalicelib.config import Settings
from chalicelib.domain import DEFAULT_PRESET
from chalicelib.errors import DownloadError, StorageError
from chalicelib.outputs import presets
from chalicelib.processing import streaming_input
from chalicelib.processing.ports import SegmentWork
from chalicelib.processing.segment_plan import Span
from tests.support.media import ffmpeg_binary, make_clip, make_long_form_clip, stream_facts
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


def test_a_segment_task_reads_its_own_span_of_the_upload_not_the_rest(tmp_path: Path) -> None:
    """The first quarter of a moov-first video, as a segment task renders it (its rendition and
    its thumbnails) through the range server, fetching only what ffmpeg asks for at a pace slower
    than ffmpeg decodes: what was fetched is what ffmpeg read. An output still open (the
    thumbnail sheet) once kept ffmpeg decoding the whole rest of the file."""
    clip = make_long_form_clip(tmp_path / "long.mp4", 16, width=640, height=360, fps=25)
    moov_first = tmp_path / "first.mp4"
    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-y", "-loglevel", "error", "-i", str(clip), "-c", "copy"]
        + ["-movflags", "+faststart", str(moov_first)],
        check=True,
        timeout=60,
    )
    data = moov_first.read_bytes()
    segmenter = FFmpegSegmenter.from_settings(Settings())
    rungs = presets.ladder(DEFAULT_PRESET, 360)
    work = SegmentWork(DEFAULT_PRESET, rungs, 16.0, names=tuple(r.name for r in rungs))
    fetch = slow_reads(data, pause=0.02)
    (tmp_path / "seg").mkdir()
    with streaming_input.opened(fetch, len(data), tmp_path / "in", chunk=32 * 1024) as stream:
        rendered = segmenter.render_segment(stream.url, Span(0, 0.0, 4.0), 0, tmp_path / "seg", work)
        fetched = stream.filling.fetched

    assert 3.9 <= rendered.duration_seconds <= 4.1
    assert rendered.thumbs is not None  # the sheet is still made, from the span's own frames
    assert fetched < 0.6 * len(data), f"fetched {fetched} of {len(data)} bytes for a quarter of the video"
