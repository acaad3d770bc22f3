"""The video frame list of an MP4 or MOV, read from its sample tables instead of its packets.

Listing every packet with ffprobe reads the whole file (about 5 s per 350 MB); the frame times
and the keyframes are already in the `moov` box, a few hundred kilobytes at most, which this
module reads with a handful of ranged reads wherever `moov` sits:

- `stts` gives each sample's decode-time delta, `ctts` its composition offset (B-frames), so a
  frame's presentation time is dts + offset in the track's timescale;
- `stss` lists the sync samples (keyframes; no `stss` means every sample is one);
- the track's edit list may delay the track (one empty edit) and start the media at the first
  presented frame (the B-frame delay); any other edit list, a fragmented file (`mvex`/`moof`),
  or tables that do not add up make `frame_list` answer None, and the caller falls back to the
  packet scan, which handles every container.

Times are anchored the way ffprobe's packet scan is: the video stream starts at ffprobe's own
`start_time` for it, and everything is counted from the file's `start_time` (what input `-ss`
counts from), so the two surveys give the same cut points (tests/integration/test_mp4index.py
compares them on generated sources).
"""

from __future__ import annotations

import os
import struct
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
MAX_MOOV_BYTES = 64 * 1024 * 1024  # far above any real index (an hour of 60 fps is a few MB)
READ_TIMEOUT_SECONDS = 30


class Source(Protocol):
    def read(self, offset: int, size: int) -> bytes: ...

    @property
    def size(self) -> int: ...


class LocalFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._size = os.path.getsize(path)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(size)


class HttpFile:
    """A presigned URL read with Range requests (R2 and S3 answer 206 with Content-Range)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._size: int | None = None

    @property
    def size(self) -> int:
        if self._size is None:
            self.read(0, 1)
        assert self._size is not None
        return self._size

    def read(self, offset: int, size: int) -> bytes:
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={offset}-{offset + size - 1}"})
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT_SECONDS) as response:  # noqa: S310
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit():
                self._size = int(total)
            return bytes(response.read())


def source_of(input_url: str) -> Source:
    if input_url.startswith(("http://", "https://")):
        return HttpFile(input_url)
    return LocalFile(input_url)


@dataclass(frozen=True)
class Track:
    handler: bytes
    timescale: int
    deltas: list[tuple[int, int]]  # stts: (count, delta)
    offsets: list[tuple[int, int]]  # ctts: (count, offset)
    sync: list[int] | None  # stss: 1-based sample numbers; None: every sample
    edits: list[tuple[int, int, int]]  # elst: (segment duration in movie ticks, media time, rate)
    samples: int  # stsz's count


class Unsupported(Exception):
    """Not an index this module reads exactly: the caller uses the packet scan."""


def frame_list(
    input_url: str, video_index: int, video_start: float, file_start: float
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(frame times, keyframe times) in seconds from the file's start, or None when the file is
    not an MP4/MOV whose index this module reads exactly. `video_index` is ffprobe's index of the
    video stream; `video_start` and `file_start` are ffprobe's start times for it and the file."""
    try:
        source = source_of(input_url)
        moov, movie_timescale = _moov(source)
        tracks = list(_tracks(moov))
        track = _video_track(tracks, video_index)
        pts = _presentation_times(track, movie_timescale)
    except (Unsupported, OSError, struct.error, ValueError, IndexError):
        return None
    if not pts:
        return None
    first = min(pts)
    shift = video_start - file_start
    times = [(t - first) / track.timescale + shift for t in pts]
    keys = [times[n - 1] for n in track.sync if 0 < n <= len(times)] if track.sync else list(times)
    return tuple(sorted(round(t, 6) for t in times)), tuple(sorted(round(t, 6) for t in keys))


def duration(input_url: str) -> float | None:
    """The movie's duration in seconds from its `mvhd` (a few ranged reads, no process), or None
    when the file is not an MP4/MOV whose index says it (ffprobe decides then)."""
    try:
        moov, timescale = _moov(source_of(input_url))
        return _movie_seconds(moov, timescale)
    except (Unsupported, OSError, struct.error, ValueError, KeyError):
        return None


def movie_facts(path: str) -> tuple[int, int, float] | None:
    """(width, height, duration in seconds) of a local MP4, read from its index without a
    process: the size is the video sample entry's (the coded size, what ffprobe reports as the
    stream's width and height, whatever the track header's display size or rotation says), the
    duration the movie header's. None when the file does not say; the caller asks ffprobe."""
    try:
        moov, timescale = _moov(LocalFile(path))
        seconds = _movie_seconds(moov, timescale)
        videos = [trak for kind, trak in _boxes(moov) if kind == b"trak" and _is_video(trak)]
        size = _coded_size(videos[0]) if videos else None
    except (Unsupported, OSError, struct.error, ValueError, KeyError, IndexError):
        return None
    if seconds is None or size is None or not all(size):
        return None
    return size[0], size[1], seconds


def _movie_seconds(moov: bytes, timescale: int) -> float | None:
    mvhd = dict(_boxes(moov))[b"mvhd"]
    ticks = struct.unpack(">Q", mvhd[24:32])[0] if mvhd[0] == 1 else struct.unpack(">I", mvhd[16:20])[0]
    return ticks / timescale if timescale and ticks else None


def _is_video(trak: bytes) -> bool:
    return dict(_boxes(dict(_boxes(trak))[b"mdia"]))[b"hdlr"][8:12] == b"vide"


def _coded_size(trak: bytes) -> tuple[int, int]:
    """The first sample entry's width and height (ISO 14496-12 VisualSampleEntry: after the
    entry's box header, 6 reserved bytes, the data reference index and 16 bytes predefined)."""
    mdia = dict(_boxes(dict(_boxes(trak))[b"mdia"]))
    stsd = dict(_boxes(dict(_boxes(mdia[b"minf"]))[b"stbl"]))[b"stsd"]
    width, height = struct.unpack(">HH", stsd[8 + 8 + 24 : 8 + 8 + 28])  # version, count, header
    return width, height


# --- boxes -----------------------------------------------------------------------------------


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box in data[start:end]."""
    end = len(data) if end is None else end
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[at + 8 : at + 16])
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise Unsupported("a box runs past its parent")
        yield kind, data[at + header : at + size]
        at += size


def _moov(source: Source) -> tuple[bytes, int]:
    """The moov box's payload, read wherever it sits, and the movie timescale."""
    total, at = source.size, 0
    while at + 8 <= total:
        head = source.read(at, 16)
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", head[8:16])
            header = 16
        elif size == 0:
            size = total - at
        if size < header:
            raise Unsupported("a malformed top-level box")
        if kind == b"moof":
            raise Unsupported("a fragmented file")
        if kind == b"moov":
            if size > MAX_MOOV_BYTES:
                raise Unsupported("an index too large to read")
            moov = source.read(at + header, size - header)
            children = dict(_boxes(moov))
            if b"mvex" in children:
                raise Unsupported("a fragmented file")
            mvhd = children.get(b"mvhd")
            if mvhd is None:
                raise Unsupported("no movie header")
            timescale = struct.unpack(">I", mvhd[20:24] if mvhd[0] == 1 else mvhd[12:16])[0]
            return moov, int(timescale)
        at += size
    raise Unsupported("no moov box")


def _tracks(moov: bytes) -> Iterator[Track]:
    for kind, trak in _boxes(moov):
        if kind == b"trak":
            yield _track(trak)


def _track(trak: bytes) -> Track:
    boxes = dict(_boxes(trak))
    mdia = dict(_boxes(boxes[b"mdia"]))
    mdhd = mdia[b"mdhd"]
    timescale = struct.unpack(">I", mdhd[20:24] if mdhd[0] == 1 else mdhd[12:16])[0]
    handler = mdia[b"hdlr"][8:12]
    stbl = dict(_boxes(dict(_boxes(mdia[b"minf"]))[b"stbl"]))
    edits = _edits(dict(_boxes(boxes[b"edts"])).get(b"elst")) if b"edts" in boxes else []
    return Track(
        handler=handler,
        timescale=int(timescale),
        deltas=_pairs(stbl[b"stts"]),
        offsets=_pairs(stbl[b"ctts"], signed=stbl[b"ctts"][0] == 1) if b"ctts" in stbl else [],
        sync=_numbers(stbl[b"stss"]) if b"stss" in stbl else None,
        edits=edits,
        samples=_sample_count(stbl),
    )


def _pairs(box: bytes, signed: bool = False) -> list[tuple[int, int]]:
    (count,) = struct.unpack(">I", box[4:8])
    fmt = ">Ii" if signed else ">II"
    return [struct.unpack(fmt, box[8 + 8 * i : 16 + 8 * i]) for i in range(count)]


def _numbers(box: bytes) -> list[int]:
    (count,) = struct.unpack(">I", box[4:8])
    return list(struct.unpack(f">{count}I", box[8 : 8 + 4 * count]))


def _sample_count(stbl: dict[bytes, bytes]) -> int:
    if b"stsz" in stbl:
        return int(struct.unpack(">I", stbl[b"stsz"][8:12])[0])
    if b"stz2" in stbl:
        return int(struct.unpack(">I", stbl[b"stz2"][8:12])[0])
    raise Unsupported("no sample sizes")


def _edits(elst: bytes | None) -> list[tuple[int, int, int]]:
    if elst is None:
        return []
    version, (count,) = elst[0], struct.unpack(">I", elst[4:8])
    entry, fmt = (20, ">QqI") if version == 1 else (12, ">IiI")
    return [struct.unpack(fmt, elst[8 + entry * i : 8 + entry * (i + 1)]) for i in range(count)]


def _video_track(tracks: list[Track], video_index: int) -> Track:
    if 0 <= video_index < len(tracks) and tracks[video_index].handler == b"vide":
        return tracks[video_index]
    videos = [t for t in tracks if t.handler == b"vide"]
    if len(videos) != 1:
        raise Unsupported("not exactly one video track to match ffprobe's")
    return videos[0]


def _presentation_times(track: Track, movie_timescale: int) -> list[int]:
    """Each sample's presentation time in the track's timescale, in decode order; refuses edit
    lists that would drop or repeat frames (ffmpeg's own edit-list handling then decides)."""
    dts, times = 0, []
    for count, delta in track.deltas:
        for _ in range(count):
            times.append(dts)
            dts += delta
    if len(times) != track.samples:
        raise Unsupported("stts and stsz disagree")
    if track.offsets:
        offsets = [offset for count, offset in track.offsets for _ in range(count)]
        if len(offsets) != len(times):
            raise Unsupported("ctts and stsz disagree")
        times = [t + o for t, o in zip(times, offsets, strict=True)]
    _check_edits(track, times, movie_timescale)
    return times


def _check_edits(track: Track, times: list[int], movie_timescale: int) -> None:
    """Allowed: no edit list, or one optional empty edit then one edit at rate 1 that starts at
    the first presented frame and lasts the whole media (within a frame)."""
    edits = [e for e in track.edits if e[1] != -1]  # an empty edit only delays the track
    if len(track.edits) - len(edits) > 1 or len(edits) > 1:
        raise Unsupported("an edit list with several edits")
    if not edits:
        return
    duration, media_time, rate = edits[0]
    if rate != 0x10000 or media_time != min(times):
        raise Unsupported("an edit list that trims the start or changes the rate")
    last_frame = max(delta for _, delta in track.deltas) if track.deltas else 0
    media_end = max(times) + last_frame - media_time
    shown = duration * track.timescale / max(movie_timescale, 1)
    if duration and shown + last_frame < media_end:
        raise Unsupported("an edit list that trims the end")
