"""What ffmpeg reads: a local range server that ranged reads fill while it reads (the default), a
local copy of the upload in WORK_DIR, or its presigned URL."""

from __future__ import annotations

import dataclasses
import http.client
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from chalicelib.config import Settings
from chalicelib.domain import DEFAULT_PRESET, JobStatus, Preset, QueueMessage
from chalicelib.errors import StorageError, TranscodeFailedError
from chalicelib.processing import jobs, worker
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Rendered
from tests.support.fakes import ALICE, FakeRepository, FakeStore, fake_rendered, make_services

SIZE = 4096


class SeeingTranscoder:
    """Records what it was given to read, whether that file was there while it ran, and (for a
    URL on this machine) the bytes it read from it."""

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.local_sizes: list[int | None] = []
        self.read: list[bytes] = []

    def render(
        self,
        input_url: str,
        out_dir: Path,
        preset: Preset = DEFAULT_PRESET,
        on_progress: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Rendered:
        self.inputs.append(input_url)
        local = Path(input_url)
        self.local_sizes.append(local.stat().st_size if local.is_absolute() and local.exists() else None)
        if input_url.startswith("http://127.0.0.1:"):
            try:
                with urllib.request.urlopen(input_url, timeout=10) as answer:  # noqa: S310
                    self.read.append(answer.read())
            except (OSError, http.client.HTTPException) as exc:  # ffmpeg: its input broke off
                raise TranscodeFailedError(detail=f"input ended early: {exc}") from exc
        return fake_rendered(out_dir, preset)


def queued(
    tmp_path: Path, mode: Literal["stream", "download", "url"]
) -> tuple[Services, QueueMessage, SeeingTranscoder]:
    base = make_services()
    transcoder = SeeingTranscoder()
    svc = dataclasses.replace(
        base, settings=Settings(work_dir=str(tmp_path), transcode_input=mode), transcoder=transcoder
    )
    created = jobs.create_job(svc, ALICE, "clip.mov", "video/quicktime", SIZE, None)
    assert isinstance(svc.store, FakeStore)
    svc.store.objects[created.job.input_file_key] = SIZE
    job = jobs.start_job(svc, ALICE, created.job.id, None).job
    return svc, QueueMessage(job.id, job.workspace_id, job.attempt), transcoder


def status(svc: Services, job_id: str) -> tuple[JobStatus, str | None]:
    assert isinstance(svc.repo, FakeRepository)
    job = svc.repo.jobs[job_id]
    return job.status, job.error_code


def test_by_default_ffmpeg_reads_a_local_stream_that_ranged_reads_fill_nothing_stays(tmp_path: Path) -> None:
    svc, ref, transcoder = queued(tmp_path, "stream")
    assert Settings().transcode_input == "stream"

    assert worker.process(svc, ref) is worker.Handled.COMPLETED

    [seen] = transcoder.inputs
    assert seen.startswith("http://127.0.0.1:") and transcoder.read == [b"\0" * SIZE]
    assert isinstance(svc.store, FakeStore) and svc.store.downloaded == []
    assert sum(length for _, _, length in svc.store.ranges) == SIZE  # each byte read once
    assert list(tmp_path.iterdir()) == []  # the stream's file and the output went with the job
    assert status(svc, ref.job_id) == (JobStatus.COMPLETED, None)


def test_a_stream_whose_reads_fail_is_a_download_error_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, ref, transcoder = queued(tmp_path, "stream")
    store = svc.store
    assert isinstance(store, FakeStore)

    def broken(key: str, start: int, length: int) -> Iterator[bytes]:
        raise StorageError("R2 said 500")
        yield b""  # a generator, as the adapter's

    monkeypatch.setattr(store, "read_range", broken)

    assert worker.process(svc, ref) is worker.Handled.RETRYING  # the platform's fault, tried again

    assert status(svc, ref.job_id)[0] is JobStatus.QUEUED
    assert isinstance(svc.repo, FakeRepository)
    assert svc.repo.attempts[(ref.job_id, ref.attempt)].error_code == "R2_DOWNLOAD_FAILED"
    assert list(tmp_path.iterdir()) == []


def test_with_download_ffmpeg_reads_a_local_copy_in_work_dir_that_is_gone_afterwards(tmp_path: Path) -> None:
    svc, ref, transcoder = queued(tmp_path, "download")

    assert worker.process(svc, ref) is worker.Handled.COMPLETED

    [seen] = transcoder.inputs
    assert Path(seen).is_relative_to(tmp_path) and transcoder.local_sizes == [SIZE]
    assert isinstance(svc.store, FakeStore) and len(svc.store.downloaded) == 1
    assert list(tmp_path.iterdir()) == []  # the copy and the output went with the job's temp dir
    assert status(svc, ref.job_id) == (JobStatus.COMPLETED, None)


def test_with_transcode_input_url_ffmpeg_reads_the_presigned_url_and_nothing_is_copied(
    tmp_path: Path,
) -> None:
    svc, ref, transcoder = queued(tmp_path, "url")

    assert worker.process(svc, ref) is worker.Handled.COMPLETED

    assert transcoder.inputs[0].startswith("https://r2.test/") and transcoder.local_sizes == [None]
    assert isinstance(svc.store, FakeStore) and svc.store.downloaded == []


def test_a_copy_that_fails_is_a_download_error_retried_and_ffmpeg_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, ref, transcoder = queued(tmp_path, "download")
    store = svc.store
    assert isinstance(store, FakeStore)
    original = store.download_file

    def broken(key: str, path: Path, size: int | None = None) -> None:
        store.objects.pop(key)  # gone between the HEAD and the GET
        original(key, path, size)

    monkeypatch.setattr(store, "download_file", broken)

    # A download failure is the system's, not the input's: retried automatically (issue 7).
    assert worker.process(svc, ref) is worker.Handled.RETRYING

    assert transcoder.inputs == []
    assert status(svc, ref.job_id)[0] is JobStatus.QUEUED
