"""The outputs' rules in the service layer, on in-memory fakes: the preset of a job and of each
attempt, the workspace's memory of it, retry with another preset, a new file for a failed job,
and a long HLS video's stream published in order however its tasks finish."""

from __future__ import annotations

import pytest

from chalicelib.domain import AUDIO_TASK, JobStatus, Preset, QueueMessage
from chalicelib.errors import (
    JobNotReplaceableError,
    ReplacementIncompleteError,
    UnknownPresetError,
    ValidationError,
)
from chalicelib.lifecycle import transitions
from chalicelib.outputs import hls
from chalicelib.processing import jobs, retry, segment_outputs
from chalicelib.processing.segment_plan import plan_segments
from chalicelib.processing.segmented import StoredPlan
from tests.support.fakes import ALICE, make_services
from tests.support.lifecycle import claim
from tests.unit.test_service_rules import failed_job, repo_of, started_job, store_of


def test_an_upload_with_a_preset_is_remembered_and_the_next_one_starts_with_it() -> None:
    svc = make_services()
    first = jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 5, None, "hls")
    assert first.job.preset is Preset.HLS
    assert jobs.workspace_preset(svc, ALICE, None) == ("ws-a", Preset.HLS)
    second = jobs.create_job(svc, ALICE, "b.mp4", "video/mp4", 5, None)
    assert second.job.preset is Preset.HLS
    jobs.set_workspace_preset(svc, ALICE, None, Preset.MP4_480P)
    assert jobs.create_job(svc, ALICE, "c.mp4", "video/mp4", 5, None).job.preset is Preset.MP4_480P


def test_a_workspace_that_never_chose_starts_with_the_seeds_720p_mp4() -> None:
    svc = make_services()
    assert jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 5, None).job.preset is Preset.MP4_720P


def test_an_unknown_preset_creates_nothing() -> None:
    svc = make_services()
    with pytest.raises(UnknownPresetError):
        jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 5, None, "webm")
    assert repo_of(svc).jobs == {}


def test_each_attempt_records_its_preset_and_a_retry_may_change_it_at_the_same_price() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    retried = retry.retry_job(svc, ALICE, job_id, preset=Preset.MP4_480P)
    assert retried.credits_charged == 1 and retried.job.preset is Preset.MP4_480P
    attempts = repo_of(svc).attempts_of(job_id)
    assert [a.preset for a in attempts] == [Preset.MP4_720P, Preset.MP4_480P]
    sent = svc.queue.sent[-1]  # type: ignore[attr-defined]
    assert (sent.attempt, sent.preset) == (2, Preset.MP4_480P)  # the worker produces what was asked


def test_a_new_file_above_one_put_is_refused_and_nothing_is_announced() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    with pytest.raises(ValidationError, match="upload a larger one as a new job"):
        too_big = jobs.SINGLE_PUT_MAX_BYTES + 1
        jobs.replace_input(svc, ALICE, job_id, "huge.mov", "video/quicktime", too_big, None)
    assert repo_of(svc).jobs[job_id].pending_size is None


def test_a_new_file_is_taken_by_the_retry_keeping_the_history() -> None:
    svc = make_services()
    job_id = failed_job(svc)
    key = repo_of(svc).jobs[job_id].input_file_key
    replaced = jobs.replace_input(svc, ALICE, job_id, "take-2.mov", "video/quicktime", 250, None)
    assert replaced.upload.headers == {"Content-Type": "video/quicktime", "Content-Length": "250"}
    assert replaced.upload.url.startswith(f"https://r2.test/{key}")  # the same job's input
    assert replaced.job.status is JobStatus.FAILED and replaced.job.pending_size == 250
    with pytest.raises(ReplacementIncompleteError):  # the new bytes have not arrived
        retry.retry_job(svc, ALICE, job_id)
    store_of(svc).objects[key] = 250  # the browser's PUT
    retried = retry.retry_job(svc, ALICE, job_id)
    job = retried.job
    assert (job.original_filename, job.content_type, job.size, job.pending_size) == (
        "take-2.mov",
        "video/quicktime",
        250,
        None,
    )
    attempts = repo_of(svc).attempts_of(job_id)
    assert [a.n for a in attempts] == [1, 2] and attempts[0].error_code == "INVALID_VIDEO"
    assert retried.credits_charged == 1  # the seed's price


def test_only_a_failed_job_gets_a_new_file() -> None:
    svc = make_services()
    job_id = started_job(svc)
    with pytest.raises(JobNotReplaceableError):
        jobs.replace_input(svc, ALICE, job_id, "b.mp4", "video/mp4", 5, None)
    assert repo_of(svc).jobs[job_id].pending_size is None


def test_a_batch_keeps_each_jobs_preset() -> None:
    svc = make_services()
    first, second = failed_job(svc), failed_job(svc)
    repo_of(svc).jobs[second].preset = Preset.HLS
    result = retry.retry_jobs(svc, ALICE, [first, second])
    assert all(r.success for r in result.results)
    assert (repo_of(svc).jobs[first].preset, repo_of(svc).jobs[second].preset) == (
        Preset.MP4_720P,
        Preset.HLS,
    )


# --- a long HLS video: published in order -----------------------------------------------------


def hls_plan() -> StoredPlan:
    frames = [i / 10 for i in range(300)]
    plan = plan_segments(frames, frames[::10], 30.0, 10.0)
    return StoredPlan(plan, 0, 1, "work/ws-a/j/fp/", preset=Preset.HLS, bounds=(480,), names=("480p",))


def write_task(svc: object, stored: StoredPlan, task: int) -> None:
    """What a finished task leaves: its segments' manifest (the audio: the whole soundtrack)."""
    if task == AUDIO_TASK:
        audio = hls.Rendition(hls.AUDIO, segments=tuple(hls.Segment(f"a{i}", 6.0, 10) for i in range(5)))
        body = hls.Stream(renditions=(), audio=audio)
    else:
        seg = hls.Segment(stored.segment_key("480p", task, 0), 10.0, 100)
        body = hls.Stream(renditions=(hls.Rendition("480p", 854, 480, "avc1.64001e", (seg,)),))
    svc.store.write(stored.part_key(task), body.to_json().encode(), "application/json")  # type: ignore[attr-defined]


def test_the_stream_is_published_only_as_far_as_the_tasks_done_from_the_first_and_with_the_audio() -> None:
    svc = make_services()
    job_id = started_job(svc)
    ref = QueueMessage(job_id, "ws-a", 1, preset=Preset.HLS)
    assert claim(svc.repo, ref)
    stored = hls_plan()
    now = svc.clock()
    repo_of(svc).commit(transitions.plan(ref, stored.to_json(), "3", 4, 3, now, now))
    for task in (1, 0):
        write_task(svc, stored, task)
    assert segment_outputs.publish(svc, ref, stored, frozenset({0, 1}), 0) == 0  # the audio is missing
    write_task(svc, stored, AUDIO_TASK)
    assert segment_outputs.publish(svc, ref, stored, frozenset({1, AUDIO_TASK}), 0) == 0  # not from the first
    assert segment_outputs.publish(svc, ref, stored, frozenset({0, 1, AUDIO_TASK}), 0) == 2
    job = repo_of(svc).jobs[job_id]
    assert (job.hls_published, job.stream_key) == (2, stored.live_key(2))
    live = hls.Stream.from_json(svc.store.read(stored.live_key(2)) or b"")
    assert (live.event, live.ended) == (True, False)
    assert [s.key for s in live.top.segments] == [stored.segment_key("480p", t, 0) for t in (0, 1)]
    assert live.audio is not None and len(live.audio.segments) == 4  # as far as the video goes (20 s)


def test_a_publisher_that_raced_builds_on_the_others_step_and_nothing_goes_back() -> None:
    svc = make_services()
    job_id = started_job(svc)
    ref = QueueMessage(job_id, "ws-a", 1, preset=Preset.HLS)
    assert claim(svc.repo, ref)
    stored = hls_plan()
    now = svc.clock()
    svc.repo.commit(transitions.plan(ref, stored.to_json(), "3", 4, 3, now, now))
    for task in (AUDIO_TASK, 0, 1, 2):
        write_task(svc, stored, task)
    # One publisher saw {0, 1} and published; another saw all three but read `published` as 0.
    assert segment_outputs.publish(svc, ref, stored, frozenset({AUDIO_TASK, 0, 1}), 0) == 2
    done = frozenset({AUDIO_TASK, 0, 1, 2})
    repo_of(svc).jobs[job_id].tasks_done = done
    assert segment_outputs.publish(svc, ref, stored, done, 0) == 3
    assert (
        segment_outputs.publish(svc, ref, stored, frozenset({AUDIO_TASK, 0}), 3) == 3
    )  # a late, shorter view
    assert repo_of(svc).jobs[job_id].hls_published == 3
    whole = hls.Stream.from_json(svc.store.read(stored.live_key(3)) or b"")
    assert len(whole.top.segments) == 3
