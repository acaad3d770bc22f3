"""The segmented benchmark's prediction model (benchmarks/segmented.py): pure arithmetic."""

from __future__ import annotations

import pytest

from benchmarks.segmented import Stages, breakdown, largest_within, predict


def stages() -> Stages:
    # a 10-minute video: plan 5 s, ten 60-s segments of 20-30 s, audio 6 s, stitch 2 s
    return Stages(duration=600, plan=5.0, segments=[20.0] * 9 + [30.0], audio=6.0, stitch=2.0)


def test_enough_workers_give_plan_plus_slowest_segment_plus_stitch() -> None:
    assert predict(stages(), 200, 600, slowdown=1.0) == pytest.approx(5 + 30 + 2)


def test_fewer_workers_than_tasks_run_in_waves() -> None:
    # 11 tasks (10 segments + audio) on 4 workers: 3 waves of the slowest segment
    assert predict(stages(), 4, 600, slowdown=1.0) == pytest.approx(5 + 3 * 30 + 2)


def test_plan_audio_and_stitch_grow_with_the_length_segments_do_not() -> None:
    # 60 minutes: plan, audio and stitch x6; one wave of 61 tasks on 100 workers
    terms = breakdown(stages(), 100, 3600, slowdown=1.0)
    assert terms == pytest.approx({"plan": 30, "segments": 30, "audio": 36, "stitch": 12})
    assert predict(stages(), 100, 3600, slowdown=1.0) == pytest.approx(30 + 36 + 12)  # audio > segments


def test_only_the_encodes_are_slowed_down_on_lambda() -> None:
    terms = breakdown(stages(), 200, 600, slowdown=2.0)
    assert (terms["plan"], terms["stitch"]) == (5.0, 2.0)
    assert (terms["segments"], terms["audio"]) == (60.0, 12.0)


def test_the_largest_video_within_the_limit_is_at_the_limit() -> None:
    largest = largest_within(stages(), 200, limit=900)
    assert predict(stages(), 200, largest) <= 900 < predict(stages(), 200, largest * 1.01)


def aac_stages() -> Stages:
    # the same video whose AAC audio the audio task copied in 0.5 s instead of encoding it in 6 s
    return Stages(duration=600, plan=5.0, segments=[20.0] * 9 + [30.0], audio=6.0, stitch=2.0, audio_copy=0.5)


def test_an_aac_source_uses_the_copy_time_unslowed() -> None:
    terms = breakdown(aac_stages(), 100, 3600, slowdown=2.0, aac=True)
    assert terms["audio"] == pytest.approx(0.5 * 6)  # grows with the length; I/O, not an encode
    # the copy no longer outlasts the segments: plan + segments + stitch
    assert predict(aac_stages(), 100, 3600, slowdown=2.0, aac=True) == pytest.approx(30 + 60 + 12)


def test_other_audio_still_pays_the_encode() -> None:
    terms = breakdown(aac_stages(), 100, 3600, slowdown=2.0)
    assert terms["audio"] == pytest.approx(6.0 * 6 * 2.0)
    assert predict(aac_stages(), 100, 3600, slowdown=2.0) == pytest.approx(30 + 72 + 12)


def test_without_a_measured_copy_an_aac_source_is_predicted_as_encoded() -> None:
    assert predict(stages(), 100, 3600, aac=True) == predict(stages(), 100, 3600)


def test_copying_lets_a_longer_video_fit_within_the_limit() -> None:
    slow_audio = Stages(duration=600, plan=5.0, segments=[30.0], audio=60.0, stitch=2.0, audio_copy=1.0)
    copied = largest_within(slow_audio, 200, limit=900, aac=True)
    encoded = largest_within(slow_audio, 200, limit=900)
    assert copied > encoded
    assert (
        predict(slow_audio, 200, copied, aac=True) <= 900 < predict(slow_audio, 200, copied * 1.01, aac=True)
    )
