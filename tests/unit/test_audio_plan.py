"""Where the soundtrack is cut into chunks (chalicelib.processing.audio_plan): pure arithmetic.
What a chunk's encode sounds like at a join is proven on real ffmpeg in
tests/integration/test_audio_chunks.py."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.processing.audio_plan import FRAME, POST_FRAMES, PRE_FRAMES, encode_with_audio, plan_chunks


def test_chunk_boundaries_are_the_aac_frames_nearest_the_cuts_and_tile_the_soundtrack() -> None:
    chunks = plan_chunks([0.0, 60.0, 120.0], 48000)
    assert [(c.first_frame, c.last_frame) for c in chunks] == [(0, 2812), (2812, 5625), (5625, None)]
    own = [c.keep or 0 for c in chunks[:-1]]
    assert own == [2813, 2813]  # chunk 0 also keeps the encoder's priming frame
    assert sum(own) - 1 == chunks[-1].first_frame  # every frame before the last chunk, once


def test_a_chunk_reads_a_margin_either_side_and_skips_what_is_not_its_own() -> None:
    [first, middle, last] = plan_chunks([0.0, 10.0, 20.0], 44100, origin=1000)
    assert (first.read_from, first.skip, first.seek) == (1000, 0, 0.0)
    m = middle.first_frame
    assert middle.read_from == 1000 + FRAME * (m - PRE_FRAMES)
    assert middle.read_to == 1000 + FRAME * (last.first_frame + POST_FRAMES)
    assert middle.skip == PRE_FRAMES + 1  # its priming frame and the margin's frames
    assert middle.seek == pytest.approx(middle.read_from / 44100 - 0.5)
    assert last.read_to is None and last.keep is None


def test_the_video_and_its_audio_chunk_encode_at_once() -> None:
    both = threading.Barrier(2, timeout=5)

    def video() -> float:
        both.wait()  # would time out if the audio were not running beside it
        return 2.0

    def audio() -> float:
        both.wait()
        return 1.0

    assert encode_with_audio(video, audio) == 2.0


def test_a_failing_video_encode_is_raised_after_the_audio_stopped() -> None:
    stopped = threading.Event()

    def video() -> float:
        raise ValueError("bad input")

    def audio() -> float:
        time.sleep(0.1)
        stopped.set()
        raise RuntimeError("also broken")

    with pytest.raises(ValueError, match="bad input"):
        encode_with_audio(video, audio)
    assert stopped.is_set()
