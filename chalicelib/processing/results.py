"""Storing what an attempt produced, for either way of processing it (single pass, segments):
the output (an MP4, or the HLS package and the stream's index), the poster, and the thumbnail
sheets with their WebVTT index. Returns the download's key and the facts the job records.

Keys follow from the job's ids and the attempt (chalicelib.processing.storage.media_prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from chalicelib.domain import OutputFacts, QueueMessage
from chalicelib.errors import StorageError, UploadOutputError
from chalicelib.outputs import hls, package, thumbnails
from chalicelib.processing.context import Services
from chalicelib.processing.ports import Rendered, RenditionFiles
from chalicelib.processing.storage import media_prefix, output_key

POSTER = "poster.jpg"
THUMBNAILS = "thumbnails.vtt"
PACKAGE = "package.zip"
STREAM_INDEX = "stream.json"
_THREADS = 8

A = TypeVar("A")
R = TypeVar("R")


def sheet_name(first_task: int) -> str:
    """A thumbnail sheet's name beside the WebVTT file (one per segment of a long video)."""
    return f"thumbs/{first_task:05d}.jpg"


def store_single_pass(svc: Services, ref: QueueMessage, rendered: Rendered) -> tuple[str, OutputFacts]:
    """Upload a single pass's outputs; the download's key and the facts."""
    prefix = media_prefix(ref.workspace_id, ref.job_id, ref.attempt)
    poster = put_file(svc, rendered.poster, prefix + POSTER, "image/jpeg") if rendered.poster else None
    vtt = None
    if rendered.thumbs is not None:
        sheet = rendered.thumbs
        name = sheet_name(0)
        put_file(svc, sheet.path, prefix + name, "image/jpeg")
        sheets = [thumbnails.Sheet(name, sheet.first, sheet.count, sheet.columns)]
        vtt = store_thumbnails(svc, prefix, sheet.interval, rendered.duration_seconds, sheets)
    if rendered.video is not None:
        key = output_key(ref.workspace_id, ref.job_id, ref.attempt)
        put_file(svc, rendered.video, key, "video/mp4")
        size, stream_key = rendered.video.stat().st_size, None
    else:
        stream = stream_of(rendered.renditions, rendered.audio)
        root = rendered.renditions[0].directory.parent
        key, size, stream_key = store_package(svc, prefix, stream, root, rendered.poster)
    facts = OutputFacts(
        width=rendered.width,
        height=rendered.height,
        duration=round(rendered.duration_seconds, 3),
        size=size,
        poster_key=poster,
        thumbnails_key=vtt,
        stream_key=stream_key,
    )
    return key, facts


def stream_of(renditions: Sequence[RenditionFiles], audio: RenditionFiles | None) -> hls.Stream:
    """The stream a run wrote (segment names relative to the HLS directory, keys not yet known)."""
    return hls.Stream(
        renditions=tuple(_rendition_of(r) for r in renditions),
        audio=_rendition_of(audio) if audio is not None else None,
    )


def _rendition_of(files: RenditionFiles) -> hls.Rendition:
    segments = tuple(
        hls.Segment(
            key="",
            duration=duration,
            size=(files.directory / uri).stat().st_size,
            name=f"{files.name}/{uri}",
        )
        for uri, duration in hls.parse_media_playlist(files.playlist.read_text())
    )
    return hls.Rendition(files.name, files.width, files.height, files.codecs, segments)


def store_package(
    svc: Services, prefix: str, stream: hls.Stream, root: Path, poster: Path | None
) -> tuple[str, int, str]:
    """Zip the stream (the download), upload it, and store the stream's index addressing each
    segment as a byte range of the zip. (key, size, index key)."""
    zip_path = root.parent / PACKAGE
    offsets = package.write(zip_path, stream, root, {POSTER: poster} if poster else None)
    key = prefix + PACKAGE
    put_file(svc, zip_path, key, "application/zip")
    index_key = prefix + STREAM_INDEX
    put_bytes(svc, index_key, package.addressed(stream, key, offsets).to_json().encode(), "application/json")
    return key, zip_path.stat().st_size, index_key


def store_thumbnails(
    svc: Services, prefix: str, interval: float, duration: float, sheets: list[thumbnails.Sheet]
) -> str:
    key = prefix + THUMBNAILS
    cues = thumbnails.cues(interval, duration, sheets)
    put_bytes(svc, key, thumbnails.webvtt(cues).encode(), "text/vtt")
    return key


def put_file(svc: Services, path: Path, key: str, content_type: str) -> str:
    try:
        svc.store.upload_file(path, key, content_type)
    except StorageError as exc:
        raise UploadOutputError(detail=repr(exc)) from exc
    return key


def put_bytes(svc: Services, key: str, data: bytes, content_type: str) -> None:
    try:
        svc.store.write(key, data, content_type)
    except StorageError as exc:
        raise UploadOutputError(detail=repr(exc)) from exc


def concurrently(action: Callable[[A], R], items: Sequence[A]) -> list[R]:
    """`action` over `items` on a few threads, results in order (many small objects)."""
    if len(items) <= 1:
        return [action(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_THREADS, len(items))) as pool:
        return list(pool.map(action, items))
