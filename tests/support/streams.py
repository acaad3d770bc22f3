"""Reading an HLS stream as a player does, with an independent parser (the `m3u8` package):
the master playlist, each rendition's media playlist, and every segment through its URL (and
byte range)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import m3u8
import requests


def measured_peak(segments: list[tuple[float, int]], target: float) -> float:
    """RFC 8216 4.3.4.2: the largest bit rate of consecutive segments lasting 0.5-1.5 targets."""
    best = 0.0
    for i in range(len(segments)):
        seconds = bits = 0.0
        for duration, size in segments[i:]:
            seconds, bits = seconds + duration, bits + size * 8
            if seconds > 1.5 * target:
                break
            if seconds >= 0.5 * target:
                best = max(best, bits / seconds)
    return best


def fetch_segments(playlist: m3u8.M3U8, base: str, folder: Path, name: str) -> list[tuple[Path, float, int]]:
    """Every segment of a media playlist, through its presigned URL (and byte range)."""
    got = []
    for i, segment in enumerate(playlist.segments):
        headers = {}
        size = None
        if segment.byterange:
            length, _, offset = segment.byterange.partition("@")
            size = int(length)
            headers["Range"] = f"bytes={int(offset)}-{int(offset) + size - 1}"
        r = requests.get(urljoin(base, segment.uri), headers=headers, timeout=60)
        assert r.status_code in (200, 206), r.status_code
        data = r.content
        assert size is None or len(data) == size
        path = folder / f"{name}-{i:03d}.ts"
        path.write_bytes(data)
        got.append((path, float(segment.duration), len(data)))
    return got


def read_stream(master_url: str, folder: Path) -> dict[str, Any]:
    """The stream as a player reads it: the master, each rendition's playlist and segments."""
    folder.mkdir(parents=True, exist_ok=True)
    master = m3u8.loads(requests.get(master_url, timeout=30).text, uri=master_url)
    audio_media = [m for m in master.media if m.type == "AUDIO"]
    renditions = {}
    for variant in master.playlists:
        url = urljoin(master_url, variant.uri)
        media = m3u8.loads(requests.get(url, timeout=30).text, uri=url)
        name = f"{variant.stream_info.resolution[1]}p"
        renditions[name] = {
            "variant": variant,
            "media": media,
            "segments": fetch_segments(media, url, folder, name),
        }
    audio = None
    if audio_media:
        url = urljoin(master_url, audio_media[0].uri)
        media = m3u8.loads(requests.get(url, timeout=30).text, uri=url)
        audio = {"media": media, "segments": fetch_segments(media, url, folder, "audio")}
    return {"master": master, "renditions": renditions, "audio": audio}
