"""Where a long video's soundtrack is cut into chunks encoded in parallel (beside segment_plan).

A source whose audio is not already what the output carries (AAC-LC mono or stereo, copied
whole) is encoded to AAC by the segment tasks themselves: segment k also encodes audio chunk k,
in a second ffmpeg beside the video's, as the single pass encodes the audio beside the video. No
task has the whole soundtrack to encode, and one worker running every task still overlaps the
audio with the video as one pass does (`encode_with_audio`).

The chunks' boundaries are AAC frames (1024 samples) counted from the soundtrack's first sample,
the one nearest each segment's start; a chunk reads a few frames more on each side so that its
frames at a join are the ones one encoder would have written (the reasons, the command lines
and the join are in chalicelib/adapters/ffmpeg/audio_chunks.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FRAME = 1024  # samples per AAC-LC frame
PRE_FRAMES = 8  # ~0.17 s at 48 kHz: the encoder's state (window shape, psychoacoustics) settles
POST_FRAMES = 4  # the last kept frame overlaps the next frame's samples, and the encoder looks ahead
# Decode this much before a chunk's first sample (MP3's bit reservoir, Opus' pre-roll), so the
# source's decoder gives the samples a decode from the start gives.
SEEK_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class Chunk:
    """Chunk `index` of a soundtrack whose first sample has timestamp `origin` (in samples)."""

    index: int
    first_frame: int  # m_k: the chunk holds output frames (m_k, m_k+1] (chunk 0: [0, m_1])
    last_frame: int | None  # m_k+1; None: to the end
    sample_rate: int
    origin: int = 0

    @property
    def read_from(self) -> int:
        """The first sample (a timestamp, in samples) its encoder reads."""
        return self.origin + FRAME * max(self.first_frame - PRE_FRAMES, 0)

    @property
    def read_to(self) -> int | None:
        """Where its encoder stops reading (None: at the end)."""
        if self.last_frame is None:
            return None
        return self.origin + FRAME * (self.last_frame + POST_FRAMES)

    @property
    def skip(self) -> int:
        """Frames at the start of its encode that are not its own: the priming frame and the
        frames of the chunk before (none for chunk 0, whose priming frame the output keeps)."""
        return 0 if self.first_frame == 0 else min(self.first_frame, PRE_FRAMES) + 1

    @property
    def keep(self) -> int | None:
        """How many frames after `skip` are its own (None: all the rest)."""
        if self.last_frame is None:
            return None
        return self.last_frame - self.first_frame + (1 if self.first_frame == 0 else 0)

    @property
    def seek(self) -> float:
        """Where the encoder's input seeks to (seconds of the source's timestamps)."""
        return max(self.read_from / self.sample_rate - SEEK_MARGIN_SECONDS, 0.0)


def plan_chunks(cuts: Sequence[float], sample_rate: int, origin: int = 0) -> list[Chunk]:
    """One chunk per span between `cuts` (seconds from the soundtrack's start: the segments'
    starts), each boundary on the AAC frame nearest its cut. `origin`: the timestamp, in samples,
    of the soundtrack's first sample."""
    frames = sorted({round(c * sample_rate / FRAME) for c in cuts[1:] if c > 0})
    starts = [0, *frames]
    ends: list[int | None] = [*frames, None]
    return [
        Chunk(i, first, last, sample_rate, origin)
        for i, (first, last) in enumerate(zip(starts, ends, strict=True))
    ]


def encode_with_audio(video: Callable[[], float], audio: Callable[[], float]) -> float:
    """Run a segment's video encode and its audio chunk's at once; the seconds until both ended.
    An error is raised once both have stopped (the video's first: both poll the same stop signal,
    and an input that breaks one breaks the other)."""
    with cf.ThreadPoolExecutor(1, thread_name_prefix="audio-chunk") as pool:
        pending = pool.submit(audio)
        try:
            seconds = video()
        except BaseException:
            with contextlib.suppress(Exception):
                pending.result()
            raise
        return max(seconds, pending.result())
