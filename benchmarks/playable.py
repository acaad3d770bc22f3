"""16. Playable before it is finished: the `hls` part of `segmented` on its own (the same
10-minute 1080p30 clip, WORKERS=4): time to the first playable segment against time to completed,
and the prediction for Lambda from the measured segment times. `segmented` runs it too, after its
MP4 runs; this one skips those (about three times shorter).
"""

from __future__ import annotations

from benchmarks import segmented
from benchmarks.core import BenchResult, Context
from benchmarks.fixtures import quiesce

NAME = "playable"
TITLE = "Long video, hls preset: playable before it is finished"


def run(ctx: Context, res: BenchResult) -> None:
    clip, seconds, settings, row = segmented.setup(ctx, res, TITLE)
    quiesce(ctx.stack)
    segmented.hls(ctx, res, clip, seconds, settings, row)
