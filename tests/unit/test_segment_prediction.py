"""The segmented benchmark's prediction model (benchmarks/segmented.py): pure arithmetic."""

from __future__ import annotations

import pytest

from benchmarks.segmented import Stages, breakdown, largest_within, predict, schedule, task_seconds


def stages(**changes: object) -> Stages:
    # a 10-minute video: plan 2 s (of which the survey 0.5 s and ten messages of 0.05 s), ten
    # tasks of 20-34 CPU s and 1 s of I/O each, stitch 3 s
    base: dict[str, object] = {
        "duration": 600,
        "plan": 2.0,
        "survey": 0.5,
        "send": 0.05,
        "sends": 10,
        "task_cpu": [20.0] * 9 + [34.0],
        "task_io": [1.0] * 10,
        "stitch": 3.0,
    }
    return Stages(**{**base, **changes})  # type: ignore[arg-type]


def test_a_task_takes_its_slowest_cpu_seconds_over_the_vcpus_plus_its_io() -> None:
    assert task_seconds(stages(), vcpus=2.0) == pytest.approx(34 / 2 + 1)


def test_the_event_source_starts_five_and_adds_five_a_second() -> None:
    assert schedule([10.0] * 5, workers=100) == pytest.approx(10.0)  # the first five at once
    assert schedule([10.0] * 15, workers=100) == pytest.approx(2.0 + 10.0)  # the 15th starts at 2 s
    assert schedule([10.0] * 15, workers=100, ramp=False) == pytest.approx(10.0)


def test_fewer_workers_than_tasks_run_in_waves() -> None:
    assert schedule([10.0] * 12, workers=4, ramp=False) == pytest.approx(30.0)


def test_the_stitch_grows_with_the_length_the_plan_by_its_survey_and_messages_a_segment_not() -> None:
    terms = breakdown(stages(), 200, 3600, vcpus=2.0)
    # the plan: 1 s that does not grow, the survey x6, a message for each of 60 tasks
    assert (terms["plan"], terms["stitch"]) == pytest.approx((1.0 + 3.0 + 60 * 0.05, 18.0))
    # 60 tasks of 18 s, the 60th allowed to start at (60 - 5) / 5 = 11 s
    assert terms["tasks"] == pytest.approx(11.0 + 18.0)
    assert predict(stages(), 200, 3600, vcpus=2.0) == pytest.approx(7 + 29 + 18)


def test_a_whole_file_audio_task_grows_with_the_length_and_goes_first() -> None:
    whole = stages(audio_cpu=30.0, audio_io=2.0)
    terms = breakdown(whole, 200, 3600, vcpus=2.0)
    assert terms["tasks"] == pytest.approx(6 * 32.0)  # the hour's soundtrack on one core outlasts the rest


def test_the_largest_video_within_the_limit_is_at_the_limit() -> None:
    largest = largest_within(stages(), 10, limit=900)
    assert predict(stages(), 10, largest) <= 900 < predict(stages(), 10, largest * 1.01)
