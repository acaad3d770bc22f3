"""The HLS download: one zip holding the stream (master and media playlists with relative URIs,
every segment, the poster), stored uncompressed, so that each segment is one contiguous byte
range of the zip. The playlists the API serves address the segments as byte ranges of this one
object (EXT-X-BYTERANGE): the stream is stored once and the download is the same object a
player reads. Opened in VLC or ffplay, the package plays from disk.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chalicelib.outputs import hls

MASTER = "master.m3u8"
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # a zip local file header (30 bytes)
LOCAL_SIGNATURE = 0x04034B50
_FIXED = (2020, 1, 1, 0, 0, 0)  # every member's time: the same content gives the same zip


def write(
    zip_path: Path, stream: hls.Stream, root: Path, extra: dict[str, Path] | None = None
) -> dict[str, int]:
    """Write the package: each segment of `stream` (its `name`, a path under `root`), the static
    playlists, and `extra` files (name -> path). Returns each member's data offset."""
    static = hls.static(stream)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for rendition in (*static.renditions, *([static.audio] if static.audio else [])):
            for segment in rendition.segments:
                _add_file(zf, segment.name, root / segment.name)
            playlist = hls.media_playlist(static, rendition, _relative_to(rendition.name))
            _add_text(zf, f"{rendition.name}/index.m3u8", playlist)
        _add_text(zf, MASTER, hls.master_playlist(static, lambda name: f"{name}/index.m3u8"))
        for name, path in (extra or {}).items():
            _add_file(zf, name, path)
    return data_offsets(zip_path)


def _relative_to(rendition: str) -> Callable[[hls.Segment], str]:
    """A segment's URI in its rendition's playlist: its name without the rendition's folder."""
    prefix = f"{rendition}/"
    return lambda s: s.name[len(prefix) :] if s.name.startswith(prefix) else s.name


def _add_file(zf: zipfile.ZipFile, name: str, path: Path) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED)
    info.compress_type = zipfile.ZIP_STORED
    with (
        path.open("rb") as source,
        zf.open(info, "w", force_zip64=path.stat().st_size > 0xFFFFFFFF) as target,
    ):
        while chunk := source.read(1 << 20):
            target.write(chunk)


def _add_text(zf: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED)
    info.compress_type = zipfile.ZIP_STORED
    zf.writestr(info, text.encode())


def data_offsets(zip_path: Path) -> dict[str, int]:
    """Where each member's bytes start in the zip (after its local header), read from the file."""
    offsets = {}
    with zipfile.ZipFile(zip_path) as zf, zip_path.open("rb") as raw:
        for info in zf.infolist():
            raw.seek(info.header_offset)
            fields = LOCAL_HEADER.unpack(raw.read(LOCAL_HEADER.size))
            if fields[0] != LOCAL_SIGNATURE or info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{zip_path}: {info.filename} is not a stored member")
            name_length, extra_length = fields[9], fields[10]
            offsets[info.filename] = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
    return offsets


def addressed(stream: hls.Stream, package_key: str, offsets: dict[str, int]) -> hls.Stream:
    """The stream with every segment a byte range of the package."""

    def inside(r: hls.Rendition) -> hls.Rendition:
        return replace(
            r, segments=tuple(replace(s, key=package_key, offset=offsets[s.name]) for s in r.segments)
        )

    return replace(
        stream,
        renditions=tuple(inside(r) for r in stream.renditions),
        audio=inside(stream.audio) if stream.audio else None,
    )
