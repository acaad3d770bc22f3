"""The output presets: what each one encodes. Pure data, no I/O (the API lists it, the worker
follows it).

Every video output is H.264 High (yuv420p) and AAC-LC stereo, what every browser plays. A size
bounds the SHORT side (a portrait phone video keeps the detail of a landscape one) and is never
upscaled. The MP4 presets are one file (plain CRF, as the seed's 720p output always was). `hls`
is a ladder of renditions, each only when the source is at least that tall, encoded from one
decode with keyframes forced every KEYFRAME_SECONDS in every rendition (so they switch cleanly),
cut into segments of about SEGMENT_SECONDS, with the bit rate capped per rendition (capped CRF:
the master playlist's BANDWIDTH then means something to a player choosing a rendition).
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain import DEFAULT_PRESET, Preset
from chalicelib.errors import UnknownPresetError

SEGMENT_SECONDS = 6  # an HLS segment's target length
KEYFRAME_SECONDS = 2  # keyframes forced this often in every rendition (3 per segment)


@dataclass(frozen=True)
class Rung:
    """One rendition: the bound on its short side and (HLS) its bit rate cap."""

    bound: int
    maxrate_kbps: int | None = None
    bufsize_kbps: int | None = None

    @property
    def name(self) -> str:
        return f"{self.bound}p"


@dataclass(frozen=True)
class PresetSpec:
    preset: Preset
    label: str
    description: str
    rungs: tuple[Rung, ...]  # largest first

    @property
    def streaming(self) -> bool:
        return self.preset is Preset.HLS


CATALOG: dict[Preset, PresetSpec] = {
    Preset.MP4_720P: PresetSpec(
        Preset.MP4_720P, "MP4 720p", "One MP4 file, at most 720p (H.264 + AAC)", (Rung(720),)
    ),
    Preset.MP4_1080P: PresetSpec(
        Preset.MP4_1080P, "MP4 1080p", "One MP4 file, at most 1080p (H.264 + AAC)", (Rung(1080),)
    ),
    Preset.MP4_480P: PresetSpec(
        Preset.MP4_480P, "MP4 480p", "One small MP4 file, at most 480p (H.264 + AAC)", (Rung(480),)
    ),
    Preset.HLS: PresetSpec(
        Preset.HLS,
        "HLS streaming",
        "Adaptive streaming: 1080p, 720p and 480p as the source allows, segments of about 6 s",
        (Rung(1080, 5000, 10000), Rung(720, 3000, 6000), Rung(480, 1200, 2400)),
    ),
}


def spec(preset: Preset) -> PresetSpec:
    return CATALOG[preset]


def names() -> list[str]:
    return [p.value for p in Preset]


def parse(value: str | None) -> Preset | None:
    """The preset a request names (None: it names none); an unknown one is the caller's error."""
    if value is None:
        return None
    try:
        return Preset(value)
    except ValueError:
        raise UnknownPresetError(value, names()) from None


def ladder(preset: Preset, short_side: int) -> tuple[Rung, ...]:
    """The renditions a source whose displayed short side is `short_side` gets.

    An MP4 preset: its one rung (never upscaled). HLS: every rung the source is at least as tall
    as; a source smaller than the smallest rung gets that one rung at its own size.
    """
    rungs = CATALOG[preset].rungs
    if not CATALOG[preset].streaming:
        return rungs
    fitting = tuple(r for r in rungs if short_side >= r.bound)
    return fitting or rungs[-1:]


def rendition_name(rung: Rung, short_side: int = 0) -> str:
    """'720p'; a source smaller than the rung names it by its own (even) short side."""
    if 0 < short_side < rung.bound:
        return f"{short_side // 2 * 2}p"
    return rung.name


def or_default(preset: Preset | None) -> Preset:
    return preset or DEFAULT_PRESET
