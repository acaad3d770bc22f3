"""Multipart uploads' rules (chalicelib.uploads) on in-memory fakes: R2's part rules, what may be
signed, completed, aborted and swept, and that none of it charges anything."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from chalicelib.config import MAX_PARTS, MIB, PART_MAX_BYTES, PART_MIN_BYTES, Settings
from chalicelib.domain import Job, JobStatus
from chalicelib.errors import (
    JobNotFoundError,
    NotUploadingError,
    PartsIncompleteError,
    UploadGoneError,
    UploadIncompleteError,
    ValidationError,
)
from chalicelib.processing import jobs, sweeper
from chalicelib.processing.context import Services
from chalicelib.processing.ports import StoredPart
from chalicelib.uploads import service as uploads
from chalicelib.uploads.parts import Multipart, Plan, check, part_size_for
from tests.support.fakes import ALICE, BOB, Clock, FakeRepository, FakeStore, make_services

GIB = 1024**3
BIG = 100 * MIB + 1  # just above the default threshold: 7 parts of 16 MiB, the last 4 MiB + 1


def store_of(svc: Services) -> FakeStore:
    assert isinstance(svc.store, FakeStore)
    return svc.store


def balance(svc: Services) -> int:
    ws = svc.repo.get_workspace("ws-a")
    assert ws is not None
    return ws.credits


def new_upload(svc: Services, size: int = BIG) -> Job:
    created = jobs.create_job(svc, ALICE, "long.mov", "video/quicktime", size, None)
    assert isinstance(created.upload, Multipart)
    return created.job


def put_all(svc: Services, job: Job, skip: frozenset[int] = frozenset()) -> None:
    plan = uploads.plan_of(job)
    assert job.upload_id is not None
    for n in range(1, plan.count + 1):
        if n not in skip:
            store_of(svc).put_part(job.upload_id, n, plan.size_of(n))


# --- R2's part rules -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, PART_MIN_BYTES, BIG, 50 * GIB, 200 * GIB, MAX_PARTS * PART_MAX_BYTES])
def test_every_size_up_to_r2s_limit_cuts_into_equal_parts_within_r2s_rules(size: int) -> None:
    plan = Plan(size, part_size_for(size, Settings().upload_part_bytes))
    assert PART_MIN_BYTES <= plan.part_size <= PART_MAX_BYTES and plan.part_size % MIB == 0
    assert 1 <= plan.count <= MAX_PARTS
    last = plan.size_of(plan.count)
    assert 0 < last <= plan.part_size
    assert (plan.count - 1) * plan.part_size + last == size


def test_the_default_cap_of_50_gib_keeps_the_preferred_part_size() -> None:
    settings = Settings()
    assert settings.upload_max_bytes == 50 * GIB
    assert part_size_for(settings.upload_max_bytes, settings.upload_part_bytes) == 16 * MIB
    assert part_size_for(200 * GIB, 16 * MIB) == 21 * MIB  # grown so 200 GiB fits in 10,000 parts


def test_the_check_names_missing_parts_wrong_sizes_and_parts_beyond_the_file() -> None:
    plan = Plan(BIG, 16 * MIB)
    parts = [StoredPart(n, plan.size_of(n), "e") for n in (1, 2, 4, 5, 6)]
    parts += [StoredPart(3, 1000, "e"), StoredPart(8, 16 * MIB, "e")]
    verdict = check(parts, plan)
    assert verdict.missing == [7]
    assert [p.number for p in verdict.wrong_size] == [3, 8]
    message = verdict.message(plan)
    assert "1 part missing (7)" in message and "part 3 has 1000 bytes" in message
    complete = [StoredPart(n, plan.size_of(n), "e") for n in range(1, plan.count + 1)]
    assert check(complete, plan).ok


# --- create -----------------------------------------------------------------------------------


def test_a_file_above_the_threshold_gets_a_multipart_upload_due_to_be_swept() -> None:
    svc = make_services(clock=Clock())
    job = new_upload(svc)
    assert job.upload_id in store_of(svc).multipart and job.part_size == 16 * MIB
    assert job.sweep_at == job.created_at + timedelta(seconds=svc.settings.upload_multipart_expiry_seconds)
    stored = svc.repo.get_job(job.id)
    assert stored is not None and (stored.upload_id, stored.sweep_at) == (job.upload_id, job.sweep_at)


def test_a_file_up_to_the_threshold_keeps_the_single_put() -> None:
    svc = make_services()
    created = jobs.create_job(
        svc, ALICE, "a.mp4", "video/mp4", svc.settings.upload_multipart_threshold_bytes, None
    )
    assert not isinstance(created.upload, Multipart) and created.upload.method == "PUT"
    assert created.job.upload_id is None and created.job.sweep_at is None
    assert store_of(svc).multipart == {}


# --- sign, list, complete --------------------------------------------------------------------------


@pytest.mark.parametrize("numbers", [[0], [8], [1, 10_000], [-1]])
def test_a_forged_part_number_is_refused_and_nothing_is_signed(numbers: list[int]) -> None:
    svc = make_services()
    job = new_upload(svc)
    with pytest.raises(ValidationError, match="parts 1 to 7"):
        uploads.sign_parts(svc, ALICE, job.id, None, numbers)


def test_each_part_is_signed_with_its_exact_size_once() -> None:
    svc = make_services()
    job = new_upload(svc)
    signed = uploads.sign_parts(svc, ALICE, job.id, None, [7, 1, 7])
    assert [(n, put.headers["Content-Length"]) for n, put in signed.parts] == [
        (7, str(BIG - 6 * 16 * MIB)),
        (1, str(16 * MIB)),
    ]


def test_only_a_member_sees_or_signs_an_upload() -> None:
    svc = make_services()
    job = new_upload(svc)
    with pytest.raises(JobNotFoundError):
        uploads.sign_parts(svc, BOB, job.id, None, [1])
    with pytest.raises(JobNotFoundError):
        uploads.list_parts(svc, BOB, job.id, None)


def test_a_single_put_job_has_no_parts() -> None:
    svc = make_services()
    job = jobs.create_job(svc, ALICE, "a.mp4", "video/mp4", 100, None).job
    with pytest.raises(NotUploadingError, match="one PUT"):
        uploads.sign_parts(svc, ALICE, job.id, None, [1])


def test_the_parts_listed_are_what_storage_holds() -> None:
    svc = make_services()
    job = new_upload(svc)
    assert job.upload_id is not None
    store_of(svc).put_part(job.upload_id, 3, 16 * MIB)
    store_of(svc).put_part(job.upload_id, 1, 16 * MIB)
    progress = uploads.list_parts(svc, ALICE, job.id, None)
    assert [p.number for p in progress.parts] == [1, 3] and not progress.completed


def test_completing_with_parts_missing_is_refused_and_charges_nothing() -> None:
    svc = make_services()
    job = new_upload(svc)
    put_all(svc, job, skip=frozenset({2, 5}))
    assert isinstance(svc.repo, FakeRepository)
    writes = len(svc.repo.committed)
    with pytest.raises(PartsIncompleteError, match=r"2 parts missing \(2, 5\)") as refused:
        uploads.complete(svc, ALICE, job.id, None)
    assert isinstance(refused.value, UploadIncompleteError)  # a 400, as every incomplete upload
    assert len(svc.repo.committed) == writes and balance(svc) == 10
    assert job.upload_id in store_of(svc).multipart  # still resumable: send the two, complete again


def test_completing_joins_the_parts_stops_the_sweep_and_may_be_repeated() -> None:
    svc = make_services()
    job = new_upload(svc)
    put_all(svc, job)
    done = uploads.complete(svc, ALICE, job.id, None)
    assert done.status == JobStatus.UPLOADING and done.sweep_at is None
    assert store_of(svc).objects[job.input_file_key] == BIG
    again = uploads.complete(svc, ALICE, job.id, None)  # the first answer was lost
    assert again.sweep_at is None
    assert uploads.list_parts(svc, ALICE, job.id, None).completed
    started = jobs.start_job(svc, ALICE, job.id, None)
    assert started.job.status == JobStatus.QUEUED and balance(svc) == 9


def test_a_start_before_the_upload_is_complete_is_refused_and_charges_nothing() -> None:
    svc = make_services()
    job = new_upload(svc)
    put_all(svc, job)
    with pytest.raises(UploadIncompleteError):
        jobs.start_job(svc, ALICE, job.id, None)
    assert balance(svc) == 10


# --- abort and expiry -------------------------------------------------------------------------------


def test_abort_cancels_the_job_discards_the_parts_and_charges_nothing() -> None:
    svc = make_services()
    job = new_upload(svc)
    put_all(svc, job, skip=frozenset({7}))
    aborted = uploads.abort(svc, ALICE, job.id, None)
    assert aborted.status == JobStatus.CANCELLED and balance(svc) == 10
    assert job.upload_id in store_of(svc).aborted
    with pytest.raises(NotUploadingError):
        uploads.sign_parts(svc, ALICE, job.id, None, [7])
    with pytest.raises(NotUploadingError):
        uploads.abort(svc, ALICE, job.id, None)


def test_an_upload_cannot_be_aborted_once_started() -> None:
    svc = make_services()
    job = new_upload(svc)
    put_all(svc, job)
    uploads.complete(svc, ALICE, job.id, None)
    jobs.start_job(svc, ALICE, job.id, None)
    with pytest.raises(NotUploadingError, match="status: queued"):
        uploads.abort(svc, ALICE, job.id, None)
    assert balance(svc) == 9


def test_the_sweeper_expires_an_upload_left_unfinished_and_says_so() -> None:
    clock = Clock()
    svc = make_services(clock=clock)
    job = new_upload(svc)
    put_all(svc, job, skip=frozenset({4}))
    clock.advance(svc.settings.upload_multipart_expiry_seconds - 1)
    assert sweeper.sweep(svc).uploads_expired == 0
    clock.advance(2)
    assert sweeper.sweep(svc).uploads_expired == 1
    failed = svc.repo.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.error_code, failed.sweep_at) == (JobStatus.FAILED, "UPLOAD_EXPIRED", None)
    assert failed.error == (
        "The upload was not finished within 48 hours and was discarded. Choose the video again to upload it."
    )
    assert job.upload_id in store_of(svc).aborted and balance(svc) == 10
    assert sweeper.sweep(svc).uploads_expired == 0  # once


def test_an_upload_past_its_expiry_signs_no_more_parts() -> None:
    clock = Clock()
    svc = make_services(clock=clock)
    job = new_upload(svc)
    clock.advance(svc.settings.upload_multipart_expiry_seconds + 1)
    with pytest.raises(UploadGoneError, match="not finished within 48 hours"):
        uploads.sign_parts(svc, ALICE, job.id, None, [1])


def test_an_upload_joined_but_not_recorded_is_recorded_by_the_sweeper_not_failed() -> None:
    clock = Clock()
    svc = make_services(clock=clock)
    job = new_upload(svc)
    put_all(svc, job)
    assert job.upload_id is not None
    svc.store.complete_multipart(
        job.input_file_key, job.upload_id, svc.store.list_parts("", job.upload_id) or []
    )
    clock.advance(svc.settings.upload_multipart_expiry_seconds + 1)
    assert sweeper.sweep(svc).uploads_expired == 0
    kept = svc.repo.get_job(job.id)
    assert kept is not None and (kept.status, kept.sweep_at) == (JobStatus.UPLOADING, None)
    assert jobs.start_job(svc, ALICE, job.id, None).job.status == JobStatus.QUEUED


def test_a_parts_exact_size_is_signed_into_its_url_so_r2_refuses_any_other() -> None:
    from urllib.parse import parse_qs, urlsplit

    from chalicelib.adapters.r2 import R2Store

    settings = Settings(
        r2_endpoint_url="https://account.r2.cloudflarestorage.com",
        r2_access_key_id="k",
        r2_secret_access_key=SecretStr("s"),
    )
    put = R2Store.from_settings(settings).presign_part("uploads/ws/job/source", "upload-1", 3, 16 * MIB, 900)
    query = parse_qs(urlsplit(put.url).query)
    assert (query["partNumber"], query["uploadId"]) == (["3"], ["upload-1"])
    assert query["X-Amz-SignedHeaders"] == ["content-length;host"]
    assert put.headers == {"Content-Length": str(16 * MIB)} and put.method == "PUT"
