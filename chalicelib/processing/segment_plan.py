"""Cutting a long video into segments that encode in parallel and join without seams.

A cut on a keyframe costs nothing extra: the segment's encoder starts decoding right there. When
a source has too few keyframes to cut near the target length (a screen recording with one
keyframe a minute, say), the cut goes where it should anyway, on a frame: the segment's encoder
then decodes from the keyframe before it and drops what precedes the cut (an "accurate cut"
that re-decodes part of one GOP). Every cut lands on a frame's presentation time, so no frame is
lost or doubled at a join, whatever the frame rate does.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

# A cut may land this far from the ideal point before the planner prefers an accurate cut.
KEYFRAME_SLACK = 0.5


@dataclass(frozen=True)
class Span:
    """One segment: source time [start, start + duration)."""

    index: int
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class SegmentPlan:
    spans: tuple[Span, ...]
    duration: float
    accurate_cuts: int  # how many cuts are not on a keyframe

    @property
    def count(self) -> int:
        return len(self.spans)

    def seconds_done(self, done: Sequence[int]) -> float:
        indexes = set(done)
        return sum(span.duration for span in self.spans if span.index in indexes)

    def describe(self) -> str:
        """What the attempt records about the plan, for the person and the operator."""
        words = f"{self.count} segments of about {self.duration / max(self.count, 1):.0f} s"
        if self.accurate_cuts:
            words += f"; {self.accurate_cuts} cuts between keyframes (too few keyframes: re-decoded)"
        return words


def plan_segments(
    frame_times: Sequence[float], keyframe_times: Sequence[float], duration: float, target_seconds: float
) -> SegmentPlan:
    """Segments of about target_seconds, cut on keyframes when one is near enough, else on a frame.

    Times are seconds from the start of the file (what ffmpeg's input `-ss` counts from):
    frame_times every video frame's presentation time, keyframe_times the keyframes'.
    """
    if target_seconds <= 0:
        raise ValueError("target_seconds must be positive")
    frames = sorted(frame_times)
    keys = sorted(keyframe_times)
    cuts, accurate = [0.0], 0
    while True:
        ideal = cuts[-1] + target_seconds
        if duration - ideal < target_seconds / 2:  # a short tail joins the last segment
            break
        cut = _nearest(keys, ideal, target_seconds * KEYFRAME_SLACK, after=cuts[-1])
        if cut is None:
            cut = _nearest(frames, ideal, target_seconds, after=cuts[-1])
            if cut is None:
                break
            accurate += 1
        cuts.append(cut)
    ends = [*cuts[1:], duration]
    spans = tuple(
        Span(index=i, start=start, duration=end - start)
        for i, (start, end) in enumerate(zip(cuts, ends, strict=True))
    )
    return SegmentPlan(spans=spans, duration=duration, accurate_cuts=accurate)


def _nearest(times: Sequence[float], ideal: float, slack: float, after: float) -> float | None:
    """The time closest to ideal within ±slack and strictly after `after`, or None."""
    i = bisect.bisect_left(times, ideal)
    candidates = [t for t in times[max(i - 1, 0) : i + 1] if t > after and abs(t - ideal) <= slack]
    return min(candidates, key=lambda t: abs(t - ideal)) if candidates else None
