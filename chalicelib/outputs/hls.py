"""An HLS stream as data, and its playlists (RFC 8216). Pure.

A job's stream is stored as one small JSON index (`Stream`): its video renditions and their
segments (the R2 object, its duration and size, and where the segment lies in it when it is a
byte range of the package), and the audio rendition. The API renders the playlists from the
index at each request, with every segment's URI presigned; the package holds the same playlists
with relative URIs. A long video's stream grows while it is encoded: an EVENT playlist that starts
at the beginning and gets its ENDLIST when the job completes.

BANDWIDTH is measured, as RFC 8216 defines it: the peak segment bit rate of the video rendition
(the largest bit rate of any run of consecutive segments lasting 0.5 to 1.5 target durations)
plus the audio rendition's, the largest sum any playable combination reaches; AVERAGE-BANDWIDTH
is the sum of the two averages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.outputs.presets import SEGMENT_SECONDS

AUDIO = "audio"
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC: what the outputs carry (copied only when the source has it)
VERSION = 4  # EXT-X-BYTERANGE


@dataclass(frozen=True)
class Segment:
    key: str  # the object holding it: a segment file, or the package (with `offset`)
    duration: float
    size: int
    offset: int | None = None  # a byte range of `key` starting here
    name: str = ""  # its path inside the package (static playlists)


@dataclass(frozen=True)
class Rendition:
    name: str  # "720p", or AUDIO
    width: int = 0
    height: int = 0
    codecs: str = ""
    segments: tuple[Segment, ...] = ()

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)


@dataclass(frozen=True)
class Stream:
    renditions: tuple[Rendition, ...]  # video, largest first
    audio: Rendition | None = None
    ended: bool = True  # ENDLIST: nothing more will be added
    event: bool = False  # an EVENT playlist (a long video's stream, growing while it is encoded)
    target: int = SEGMENT_SECONDS

    def rendition(self, name: str) -> Rendition | None:
        if name == AUDIO:
            return self.audio
        return next((r for r in self.renditions if r.name == name), None)

    @property
    def top(self) -> Rendition:
        return self.renditions[0]

    @property
    def duration(self) -> float:
        return self.top.duration

    def to_json(self) -> str:
        return json.dumps(
            {
                "renditions": [_rendition_json(r) for r in self.renditions],
                "audio": _rendition_json(self.audio) if self.audio else None,
                "ended": self.ended,
                "event": self.event,
                "target": self.target,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Stream:
        data = json.loads(text)
        audio = data.get("audio")
        return cls(
            renditions=tuple(_rendition_of(r) for r in data["renditions"]),
            audio=_rendition_of(audio) if audio else None,
            ended=bool(data.get("ended", True)),
            event=bool(data.get("event", False)),
            target=int(data.get("target", SEGMENT_SECONDS)),
        )


def _rendition_json(r: Rendition) -> dict[str, Any]:
    return {
        "name": r.name,
        "width": r.width,
        "height": r.height,
        "codecs": r.codecs,
        "segments": [[s.key, round(s.duration, 6), s.size, s.offset, s.name] for s in r.segments],
    }


def _rendition_of(data: dict[str, Any]) -> Rendition:
    return Rendition(
        name=str(data["name"]),
        width=int(data.get("width", 0)),
        height=int(data.get("height", 0)),
        codecs=str(data.get("codecs", "")),
        segments=tuple(
            Segment(str(k), float(d), int(n), None if o is None else int(o), str(name))
            for k, d, n, o, name in data["segments"]
        ),
    )


def h264_codecs(level: int) -> str:
    """The CODECS entry of an H.264 High profile stream at `level` (ffprobe's level_idc)."""
    return f"avc1.6400{level:02x}"


def peak_bitrate(segments: Sequence[Segment], target: float) -> int:
    """Bits per second: the largest of any run of consecutive segments lasting 0.5 to 1.5 target
    durations (RFC 8216, 4.3.4.2); a stream shorter than that: its whole average."""
    best = 0.0
    for i in range(len(segments)):
        seconds, bits = 0.0, 0
        for seg in segments[i:]:
            seconds += seg.duration
            bits += seg.size * 8
            if seconds > 1.5 * target:
                break
            if seconds >= 0.5 * target:
                best = max(best, bits / seconds)
    return math.ceil(best) if best else average_bitrate(segments)


def average_bitrate(segments: Sequence[Segment]) -> int:
    seconds = sum(s.duration for s in segments)
    return math.ceil(sum(s.size for s in segments) * 8 / seconds) if seconds > 0 else 0


def bandwidth(stream: Stream, rendition: Rendition) -> tuple[int, int]:
    """(BANDWIDTH, AVERAGE-BANDWIDTH) of a variant: the video rendition with the audio."""
    peak, average = peak_bitrate(rendition.segments, stream.target), average_bitrate(rendition.segments)
    if stream.audio is not None and stream.audio.segments:
        peak += peak_bitrate(stream.audio.segments, stream.target)
        average += average_bitrate(stream.audio.segments)
    return peak, average


def master_playlist(stream: Stream, uri: Callable[[str], str]) -> str:
    """The master playlist; `uri(name)` addresses a rendition's media playlist."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    group = ""
    if stream.audio is not None:
        group = f',AUDIO="{AUDIO}"'
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO}",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'URI="{uri(AUDIO)}"'
        )
    for rendition in stream.renditions:
        peak, average = bandwidth(stream, rendition)
        codecs = rendition.codecs + (f",{AUDIO_CODEC}" if stream.audio is not None else "")
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},"
            f'RESOLUTION={rendition.width}x{rendition.height},CODECS="{codecs}"{group}'
        )
        lines.append(uri(rendition.name))
    return "\n".join(lines) + "\n"


def media_playlist(stream: Stream, rendition: Rendition, uri: Callable[[Segment], str]) -> str:
    """A rendition's media playlist; `uri(segment)` addresses each segment (with its byte range
    when it has an offset)."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(stream, rendition)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if stream.event else 'VOD'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if stream.event:
        lines.append("#EXT-X-START:TIME-OFFSET=0")  # from the beginning, not the live edge
    for segment in rendition.segments:
        lines.append(f"#EXTINF:{segment.duration:.6f},")
        if segment.offset is not None:
            lines.append(f"#EXT-X-BYTERANGE:{segment.size}@{segment.offset}")
        lines.append(uri(segment))
    if stream.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def target_duration(stream: Stream, rendition: Rendition) -> int:
    """EXT-X-TARGETDURATION: every segment's duration, rounded to the nearest integer, is at most
    it (RFC 8216, 4.3.3.1); at least the stream's target, so a growing playlist keeps it."""
    longest = max((round(s.duration) for s in rendition.segments), default=0)
    return max(stream.target, longest)


def static(stream: Stream) -> Stream:
    """The stream as the package's own playlists show it: relative names, whole files."""

    def local(r: Rendition) -> Rendition:
        return replace(r, segments=tuple(replace(s, key=s.name, offset=None) for s in r.segments))

    return replace(
        stream,
        renditions=tuple(local(r) for r in stream.renditions),
        audio=local(stream.audio) if stream.audio else None,
        ended=True,
    )


def parse_media_playlist(text: str) -> list[tuple[str, float]]:
    """(URI, duration) of each segment of a media playlist ffmpeg wrote."""
    segments, duration = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append((line, duration))
            duration = None
    return segments


def audio_until(audio: Rendition, seconds: float) -> Rendition:
    """The audio segments that start before `seconds` (a growing stream lists the audio as far
    as its video goes)."""
    kept, start = [], 0.0
    for segment in audio.segments:
        if start >= seconds - 1e-6:
            break
        kept.append(segment)
        start += segment.duration
    return replace(audio, segments=tuple(kept))
