"""What a long video's tasks store, and how its outputs are assembled without re-encoding.

Below chalicelib.processing.segmented (which plans, runs tasks and claims the stitch):

- A video task stores its encoded span (an MP4 part, or for HLS each rendition's TS segments and
  a small JSON manifest of them), its share of the thumbnails (one sheet of the grid points in its
  span) and, for the first task, the poster; the part or the manifest is written LAST, so its
  presence means the task's outputs are all there (a retry reuses them by key).
- The audio task stores the whole soundtrack: an M4A part, or an HLS audio rendition.
- HLS while it runs: whenever the tasks done form a longer run from the first one (and the audio
  is done), the stream's index is published as far as that run goes: an EVENT playlist that
  plays from the start while the rest is encoded (`publish`).
- At the end (`assemble`): MP4 parts joined by stream copy, or the HLS segments packaged into the
  download (a zip the playlists address by byte range); the poster and thumbnail sheets copied
  beside the output with their WebVTT index.
"""

from __future__ import annotations

import concurrent.futures as cf
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.domain import AUDIO_TASK, OutputFacts, QueueMessage
from chalicelib.errors import DownloadError, StorageError, UploadOutputError
from chalicelib.lifecycle import transitions
from chalicelib.observability import logger
from chalicelib.outputs import hls, thumbnails
from chalicelib.processing.contention import committed
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Rendered, Segmenter
from chalicelib.processing.results import (
    POSTER,
    concurrently,
    put_bytes,
    put_file,
    sheet_name,
    store_package,
    store_thumbnails,
)
from chalicelib.processing.storage import media_prefix, output_key

if TYPE_CHECKING:
    from chalicelib.processing.segmented import StoredPlan
    from chalicelib.processing.watch import Watch

PUBLISH_TRIES = 5
PARTS_AT_ONCE = 8  # audio chunks fetched at once for the stitch


# --- a task's outputs ---------------------------------------------------------------------------


def store_segment(svc: Services, stored: StoredPlan, task: int, rendered: Rendered) -> None:
    """Upload what a video task rendered; its part (or manifest) last."""
    if rendered.thumbs is not None:
        put_file(svc, rendered.thumbs.path, stored.sheet_key(task), "image/jpeg")
    if rendered.poster is not None:
        put_file(svc, rendered.poster, stored.poster_key, "image/jpeg")
    if rendered.video is not None:
        put_file(svc, rendered.video, stored.part_key(task), "video/mp4")
        return
    manifest = []
    for files in rendered.renditions:
        uploaded = _uploaded(svc, files.directory, files.playlist, _keys(stored, files.name, task))
        manifest.append(replace(uploaded, width=files.width, height=files.height, codecs=files.codecs))
    body = hls.Stream(renditions=tuple(manifest), ended=False).to_json()
    put_bytes(svc, stored.part_key(task), body.encode(), "application/json")


def _keys(stored: StoredPlan, rendition: str, task: int) -> Callable[[int], str]:
    return lambda n: stored.segment_key(rendition, task, n)


def _uploaded(svc: Services, directory: Path, playlist: Path, key_of: Callable[[int], str]) -> hls.Rendition:
    """Upload the segments a playlist ffmpeg wrote lists; the rendition, addressed by their keys."""
    listed = hls.parse_media_playlist(playlist.read_text())
    segments = tuple(
        hls.Segment(key_of(i), duration, (directory / uri).stat().st_size)
        for i, (uri, duration) in enumerate(listed)
    )
    concurrently(
        lambda pair: put_file(svc, directory / pair[0], pair[1].key, "video/mp2t"),
        [(uri, segment) for (uri, _), segment in zip(listed, segments, strict=True)],
    )
    return hls.Rendition(directory.name, segments=segments)


def store_audio(svc: Services, stored: StoredPlan, target: Path) -> None:
    """Upload the audio task's output: the M4A part, or the HLS audio rendition and its manifest."""
    if not stored.streaming:
        put_file(svc, target, stored.part_key(AUDIO_TASK), "audio/mp4")
        return
    directory = target / "hls" / hls.AUDIO
    audio = _uploaded(svc, directory, directory / "index.m3u8", _keys(stored, hls.AUDIO, AUDIO_TASK))
    body = hls.Stream(renditions=(), audio=audio, ended=False).to_json()
    put_bytes(svc, stored.part_key(AUDIO_TASK), body.encode(), "application/json")


# --- HLS: the stream grows as tasks finish in order ----------------------------------------------


def playable_run(stored: StoredPlan, done: frozenset[int]) -> int:
    """How many video tasks, from the first, are done (0 until the audio is, when there is one)."""
    if stored.audio_stream is not None and AUDIO_TASK not in done:
        return 0
    n = 0
    while n < stored.plan.count and n in done:
        n += 1
    return n


def publish(
    svc: Services, ref: QueueMessage, stored: StoredPlan, done: frozenset[int], published: int
) -> int:
    """Publish the stream as far as the run of finished tasks goes; how far it is published now.

    Each step writes a new index object (never overwritten) and then moves the job's pointer to it
    with a guarded write (`publish`: only from the count it was built on), so a player never sees
    the stream go back, however the finishing tasks race.
    """
    if not stored.streaming:
        return published
    for _ in range(PUBLISH_TRIES):
        ready = playable_run(stored, done)
        if ready <= published:
            return published
        stream = _grown(svc, stored, published, ready)
        key = stored.live_key(ready)
        put_bytes(svc, key, stream.to_json().encode(), "application/json")
        if committed(svc.repo, transitions.publish(ref, published, ready, key, svc.clock())):
            logger().info("stream published", extra={"job_id": ref.job_id, "tasks": ready})
            return ready
        job = svc.repo.get_job(ref.job_id)  # another task published meanwhile: build on its step
        if job is None or job.attempt != ref.attempt or job.segment_plan is None:
            return published
        done, published = job.tasks_done, job.hls_published
    return published


def _grown(svc: Services, stored: StoredPlan, published: int, ready: int) -> hls.Stream:
    """The stream of tasks [0, ready): the last published step and the tasks after it."""
    base = _read_stream(svc, stored.live_key(published)) if published else None
    renditions = list(base.renditions) if base else []
    for task in range(published, ready):
        part = _read_stream(svc, stored.part_key(task))
        renditions = _appended(renditions, part.renditions)
    audio = None
    if stored.audio_stream is not None:
        whole = _read_stream(svc, stored.part_key(AUDIO_TASK)).audio
        assert whole is not None
        audio = hls.audio_until(whole, renditions[0].duration if renditions else 0.0)
    return hls.Stream(renditions=tuple(renditions), audio=audio, ended=False, event=True)


def _appended(renditions: list[hls.Rendition], more: tuple[hls.Rendition, ...]) -> list[hls.Rendition]:
    if not renditions:
        return list(more)
    by_name = {r.name: r for r in more}
    return [replace(r, segments=r.segments + by_name[r.name].segments) for r in renditions]


def _read_stream(svc: Services, key: str) -> hls.Stream:
    data = svc.store.read(key)
    if data is None:
        raise DownloadError(detail=f"missing object {key}")
    return hls.Stream.from_json(data)


# --- the end: one output, without re-encoding -----------------------------------------------------


def assemble(
    svc: Services, ref: QueueMessage, stored: StoredPlan, seg: Segmenter, watch: Watch
) -> tuple[str, OutputFacts]:
    """Join (MP4) or package (HLS) the parts, and store the poster and thumbnails beside them."""
    prefix = media_prefix(ref.workspace_id, ref.job_id, ref.attempt)
    with tempfile.TemporaryDirectory(prefix="stitch-", dir=svc.settings.work_dir) as tmp:
        if stored.streaming:
            key, facts = _package(svc, stored, prefix, Path(tmp), watch)
        else:
            key, facts = _join(svc, ref, stored, seg, Path(tmp), watch)
    poster, vtt = _poster_and_thumbnails(svc, stored, prefix, facts.duration)
    return key, replace(facts, poster_key=poster, thumbnails_key=vtt)


def _join(
    svc: Services, ref: QueueMessage, stored: StoredPlan, seg: Segmenter, tmp: Path, watch: Watch
) -> tuple[str, OutputFacts]:
    expires = svc.settings.transcode_timeout_seconds + 300
    parts = [
        (svc.store.presign_download(stored.part_key(s.index), expires), s.duration) for s in stored.plan.spans
    ]
    audio = None
    if stored.audio_chunks is not None:
        audio = _joined_audio(svc, stored, seg, tmp)
    elif stored.audio_stream is not None:
        audio = svc.store.presign_download(stored.part_key(AUDIO_TASK), expires)
    key = output_key(ref.workspace_id, ref.job_id, ref.attempt)
    target = tmp / "output.mp4"
    result = seg.stitch(parts, audio, target, stop=watch.stopped)
    watch.check()
    put_file(svc, target, key, "video/mp4")
    facts = OutputFacts(result.width, result.height, round(result.duration_seconds, 3), target.stat().st_size)
    return key, facts


def _joined_audio(svc: Services, stored: StoredPlan, seg: Segmenter, folder: Path) -> str:
    """The segment tasks' audio chunks, fetched and joined into one soundtrack; its path."""
    keys = [stored.chunk_key(span.index) for span in stored.plan.spans]
    paths = _fetched(svc, [(k, folder / f"audio-{i:05d}.m4a") for i, k in enumerate(keys) if k is not None])
    joined = folder / "joined-audio.m4a"
    seg.join_audio(stored.chunks(), paths, joined)
    return str(joined)


def _fetched(svc: Services, wanted: list[tuple[str, Path]]) -> list[Path]:
    """Copy each (key, path) down, PARTS_AT_ONCE at a time; the paths, in order. A part that
    cannot be read is a DownloadError (the platform's: the stitch is delivered again)."""

    def one(item: tuple[str, Path]) -> Path:
        key, path = item
        try:
            svc.store.download_file(key, path)
        except StorageError as exc:
            raise DownloadError(detail=f"{key}: {exc!r}") from exc
        return path

    with cf.ThreadPoolExecutor(PARTS_AT_ONCE, thread_name_prefix="stitch-fetch") as pool:
        return list(pool.map(one, wanted))


def _package(
    svc: Services, stored: StoredPlan, prefix: str, tmp: Path, watch: Watch
) -> tuple[str, OutputFacts]:
    """Every task's segments, downloaded and zipped in order with the playlists (no re-encoding)."""
    parts = concurrently(lambda task: _read_stream(svc, stored.part_key(task)), range(stored.plan.count))
    renditions: list[hls.Rendition] = []
    for part in parts:
        renditions = _appended(renditions, part.renditions)
    audio = _read_stream(svc, stored.part_key(AUDIO_TASK)).audio if stored.audio_stream is not None else None
    stream = hls.Stream(renditions=tuple(renditions), audio=audio, ended=True, event=True)
    root = tmp / "hls"
    local = _downloaded(svc, stream, root)
    watch.check()
    poster = tmp / POSTER
    if not _fetch(svc, stored.poster_key, poster):
        poster = None  # type: ignore[assignment]
    key, size, index_key = store_package(svc, prefix, local, root, poster)
    top = stream.top
    facts = OutputFacts(top.width, top.height, round(top.duration, 3), size, stream_key=index_key)
    return key, facts


def _downloaded(svc: Services, stream: hls.Stream, root: Path) -> hls.Stream:
    """The stream's segments copied under `root` (`<rendition>/NNNNN.ts`), named so."""

    def local(r: hls.Rendition) -> hls.Rendition:
        (root / r.name).mkdir(parents=True, exist_ok=True)
        named = tuple(replace(s, name=f"{r.name}/{i:05d}.ts") for i, s in enumerate(r.segments))
        concurrently(lambda s: _fetch_required(svc, s.key, root / s.name), list(named))
        return replace(r, segments=named)

    return replace(
        stream,
        renditions=tuple(local(r) for r in stream.renditions),
        audio=local(stream.audio) if stream.audio else None,
    )


def _fetch(svc: Services, key: str, path: Path) -> bool:
    if svc.store.head(key) is None:
        return False
    _fetch_required(svc, key, path)
    return True


def _fetch_required(svc: Services, key: str, path: Path) -> None:
    try:
        svc.store.download_file(key, path)
    except StorageError as exc:
        raise DownloadError(detail=repr(exc)) from exc


def _poster_and_thumbnails(
    svc: Services, stored: StoredPlan, prefix: str, duration: float
) -> tuple[str | None, str | None]:
    """Copy the first task's poster and every task's sheet beside the output; write the index."""
    poster = None
    if svc.store.head(stored.poster_key) is not None:
        poster = prefix + POSTER
        _copied(svc, stored.poster_key, poster)
    interval = thumbnails.interval_for(stored.plan.duration)
    copies, sheets = [], []
    for span in stored.plan.spans:
        points = thumbnails.points_between(interval, span.start, span.end)
        if not len(points) or svc.store.head(stored.sheet_key(span.index)) is None:
            continue
        name = sheet_name(span.index)
        copies.append((stored.sheet_key(span.index), prefix + name))
        sheets.append(thumbnails.Sheet(name, points.start, len(points), len(points)))
    if not sheets:
        return poster, None
    concurrently(lambda pair: _copied(svc, *pair), copies)
    return poster, store_thumbnails(svc, prefix, interval, duration or stored.plan.duration, sheets)


def _copied(svc: Services, source: str, target: str) -> None:
    try:
        svc.store.copy(source, target)
    except StorageError as exc:
        raise UploadOutputError(detail=repr(exc)) from exc
