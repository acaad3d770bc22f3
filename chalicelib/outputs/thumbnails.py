"""Where a video's thumbnails fall and their WebVTT index: the seek bar's previews. Pure.

A source of D seconds gets at most MAX_THUMBS thumbnails, one every `interval_for(D)` seconds
(at least one a second): grid point k is the first frame at or after k * interval. They are
packed into JPEG sheets of THUMB cells (one sheet for a single pass; one per segment of a long
video), and the WebVTT file maps each interval of the timeline to its cell with a media fragment
(`sheet.jpg#xywh=x,y,w,h`), the format players and the dashboard read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_THUMBS = 100
THUMB_W, THUMB_H = 160, 90


def interval_for(duration: float) -> float:
    """Seconds between thumbnails: whole seconds, at least 1, at most MAX_THUMBS of them."""
    return float(max(1, math.ceil(duration / MAX_THUMBS)))


def points_between(interval: float, start: float, end: float) -> range:
    """The grid points k with start <= k * interval < end."""
    first = math.ceil(start / interval - 1e-9)
    last = math.ceil(end / interval - 1e-9) - 1
    return range(max(first, 0), max(last + 1, max(first, 0)))


@dataclass(frozen=True)
class Sheet:
    """One JPEG of thumbnails: grid points first .. first+count-1, row by row."""

    name: str  # relative to the WebVTT file
    first: int
    count: int
    columns: int


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    image: str
    x: int
    y: int


def cues(interval: float, duration: float, sheets: list[Sheet]) -> list[Cue]:
    out = []
    for sheet in sheets:
        for i in range(sheet.count):
            k = sheet.first + i
            start = k * interval
            if start >= duration:
                break
            row, column = divmod(i, sheet.columns)
            end = min(start + interval, duration)
            out.append(Cue(start, end, sheet.name, column * THUMB_W, row * THUMB_H))
    return out


def _time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def webvtt(all_cues: list[Cue]) -> str:
    lines = ["WEBVTT", ""]
    for cue in all_cues:
        lines += [
            f"{_time(cue.start)} --> {_time(cue.end)}",
            f"{cue.image}#xywh={cue.x},{cue.y},{THUMB_W},{THUMB_H}",
            "",
        ]
    return "\n".join(lines)


def with_image_urls(vtt: str, url_of: dict[str, str]) -> str:
    """The WebVTT file with each sheet's relative name replaced by its URL (`url_of[name]`)."""
    out = []
    for line in vtt.splitlines():
        name, sep, fragment = line.partition("#xywh=")
        out.append(f"{url_of.get(name, name)}{sep}{fragment}" if sep else line)
    return "\n".join(out) + "\n"


def sheet_names(vtt: str) -> list[str]:
    """The sheets a WebVTT file names, in order, each once."""
    names: dict[str, None] = {}
    for line in vtt.splitlines():
        name, sep, _ = line.partition("#xywh=")
        if sep:
            names[name] = None
    return list(names)
