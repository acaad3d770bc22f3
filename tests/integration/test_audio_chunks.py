"""Audio encoded in chunks and joined (chalicelib/adapters/ffmpeg/audio_chunks.py) against the
single pass's encode of the whole soundtrack, on real ffmpeg with generated sources.

The bars, for every source whose audio the segment tasks encode in chunks (any codec but AAC-LC
mono/stereo, in a container whose timestamps count samples):

- the joined soundtrack has exactly as many samples as the single pass's (decoded by ffmpeg);
- around every join (JOIN_WINDOW samples each side) the joined audio differs from the single
  pass's by at least MAX_JOIN_DIFF_DB less than the signal (RMS): two AAC encodes of one signal
  never match sample for sample (the chunk's encoder starts a few frames before the join with
  another bit reservoir), so a join is held to quantisation noise, not to zero; a lost or doubled
  frame puts the whole signal, shifted, into the difference (about 0 dB);
- no click: the largest step between neighbouring samples around a join is at most
  MAX_STEP_RATIO times the single pass's there (a gap or a doubled block makes a jump the
  signal does not have).

A join one frame off (a test of the test) breaks these bars.
"""

from __future__ import annotations

import array
import dataclasses
import math
import subprocess
from pathlib import Path

import pytest

from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from chalicelib.adapters.ffmpeg import audio_chunks as ac
from chalicelib.adapters.ffmpeg.segmenter import FFmpegSegmenter
from chalicelib.processing.audio_plan import FRAME, Chunk, plan_chunks
from tests.support.media import ffmpeg_binary, ffprobe_binary, make_long_form_clip

pytestmark = pytest.mark.integration

SECONDS, CHUNK_SECONDS = 12, 4.0
JOIN_WINDOW = 2048
MAX_JOIN_DIFF_DB = -30.0
MAX_STEP_RATIO = 1.5


def segmenter() -> FFmpegSegmenter:
    return FFmpegSegmenter(
        FFmpegTranscoder(ffmpeg_binary(), ffprobe_binary(), timeout_seconds=120, max_height=180)
    )


def pcm(path: Path) -> array.array[int]:
    """The audio as ffmpeg decodes it: 16-bit stereo, interleaved."""
    raw = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:a", "-f", "s16le", "-ac", "2", "-"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    samples = array.array("h")
    samples.frombytes(raw)
    return samples


def rms(values: list[int]) -> float:
    return math.sqrt(sum(v * v for v in values) / max(len(values), 1))


def db(ratio: float) -> float:
    return 20 * math.log10(max(ratio, 1e-9))


@dataclasses.dataclass
class Joined:
    chunks: list[Chunk]
    paths: list[Path]
    single: Path
    sample_rate: int


def encode(source: Path, work: Path) -> Joined:
    seg = segmenter()
    survey = seg.survey(str(source))
    assert survey.audio_stream is not None and survey.audio_chunks is not None, "not chunked"
    rate, origin = survey.audio_chunks
    cuts = [i * CHUNK_SECONDS for i in range(int(SECONDS // CHUNK_SECONDS))]
    chunks = plan_chunks(cuts, rate, origin)
    paths = []
    for chunk in chunks:
        paths.append(work / f"chunk-{chunk.index}.m4a")
        seg.encode_audio_chunk(str(source), survey.audio_stream, chunk, paths[-1])
    single = work / "single.m4a"
    seg.encode_audio(str(source), survey.audio_stream, single)  # the single pass's audio settings
    return Joined(chunks, paths, single, rate)


@dataclasses.dataclass
class Quality:
    samples: tuple[int, int]  # the single pass's, the join's
    overall: float  # RMS of the difference over the whole soundtrack
    joins: list[dict[str, float]]

    def meets_the_bars(self) -> bool:
        return self.samples[0] == self.samples[1] and all(
            j["diff_db"] <= MAX_JOIN_DIFF_DB and j["step_ratio"] <= MAX_STEP_RATIO for j in self.joins
        )


def join_quality(joined: Path, single: Path, chunks: list[Chunk]) -> Quality:
    a, b = pcm(single), pcm(joined)
    diff = [x - y for x, y in zip(a, b, strict=False)]
    overall, signal = rms(diff), rms(list(a))
    joins = []
    for chunk in chunks[1:]:
        at = 2 * FRAME * chunk.first_frame  # interleaved stereo
        window = slice(at - 2 * JOIN_WINDOW, at + 2 * JOIN_WINDOW)
        steps_joined = [abs(b[i + 2] - b[i]) for i in range(window.start, window.stop)]
        steps_single = [abs(a[i + 2] - a[i]) for i in range(window.start, window.stop)]
        joins.append(
            {
                "diff": rms(diff[window]),
                "diff_db": db(rms(diff[window]) / signal),
                "step_ratio": max(steps_joined) / max(max(steps_single), 1),
            }
        )
    return Quality((len(a) // 2, len(b) // 2), overall, joins)


@pytest.mark.parametrize(
    ("codec", "channels", "rate"),
    [("libmp3lame", 2, 48000), ("libopus", 2, 48000), ("ac3", 6, 48000), ("libmp3lame", 1, 44100)],
    ids=["mp3 stereo 48k", "opus stereo", "ac-3 5.1", "mp3 mono 44.1k"],
)
def test_chunks_join_into_the_single_pass_soundtrack_without_gap_or_click(
    tmp_path: Path, codec: str, channels: int, rate: int
) -> None:
    source = make_long_form_clip(
        tmp_path / "src.mp4",
        SECONDS,
        width=160,
        height=90,
        audio_codec=codec,
        audio_channels=channels,
        sample_rate=rate,
    )
    parts = encode(source, tmp_path)
    joined = tmp_path / "joined.m4a"

    samples = segmenter().join_audio(parts.chunks, parts.paths, joined)

    quality = join_quality(joined, parts.single, parts.chunks)
    assert quality.meets_the_bars(), quality
    single = ac.read_m4a(parts.single.read_bytes())
    assert samples == sum(single.durations) - single.priming  # as the single pass's edit list says


def test_a_join_one_frame_off_fails_the_bars(tmp_path: Path) -> None:
    source = make_long_form_clip(
        tmp_path / "src.mp4", SECONDS, width=160, height=90, audio_codec="libmp3lame"
    )
    parts = encode(source, tmp_path)
    tracks = [ac.read_m4a(p.read_bytes()) for p in parts.paths]
    good, bad = tmp_path / "good.m4a", tmp_path / "bad.m4a"
    ac.join(parts.chunks, tracks, good)
    # chunk 1's frames taken one frame late: its first frame lost at one join, a frame of its
    # margin doubled at the next; the sample count stays the same
    late = dataclasses.replace(tracks[1], frames=tracks[1].frames[1:], durations=tracks[1].durations[1:])
    ac.join(parts.chunks, [tracks[0], late, *tracks[2:]], bad)

    assert join_quality(good, parts.single, parts.chunks).meets_the_bars()
    off = join_quality(bad, parts.single, parts.chunks)
    assert off.samples == join_quality(good, parts.single, parts.chunks).samples
    assert not off.meets_the_bars(), off
    assert all(j["diff_db"] > -10 for j in off.joins)


def test_a_source_whose_timestamps_count_milliseconds_is_not_chunked(tmp_path: Path) -> None:
    source = make_long_form_clip(tmp_path / "src.mkv", 3, width=160, height=90, audio_codec="libmp3lame")
    survey = segmenter().survey(str(source))

    assert survey.audio_stream is not None and survey.audio_chunks is None  # encoded whole, in one task
