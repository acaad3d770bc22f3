"""The report's figures as small PNGs (matplotlib, no display), drawn from the run's JSON document
so they can be drawn again from a saved latest.json (`python -m benchmarks.plots results/latest.json`).

Each is about 500x230 px with a handful of colours: a few tens of kilobytes, small enough to keep
beside latest.md in git.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, DPI = 6.4, 2.9, 80
MET, MISSED, BASE, OTHER = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"
PALETTE = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#9e9e9e"]


def _figure(rows: int = 1, cols: int = 1, height: float = HEIGHT) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    pyplot.rcParams.update(
        {"font.size": 8, "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False}
    )
    return pyplot.subplots(rows, cols, figsize=(WIDTH, height), dpi=DPI, squeeze=False)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, pil_kwargs={"optimize": True})
    import matplotlib.pyplot as pyplot

    pyplot.close(fig)
    return path


def targets(document: dict[str, Any], path: Path) -> Path | None:
    """Every target with a number: the figure over its limit (1 = at the limit; left of it: met)."""
    rows = [
        (t["what"], t["value"] / t["bound"], t["met"])
        for bench in document["benchmarks"].values()
        for t in bench.get("targets", [])
        if t.get("value") is not None and t.get("bound")
    ]
    if not rows:
        return None
    fig, axes = _figure(height=0.9 + 0.22 * len(rows))
    ax = axes[0][0]
    names = [_short(what) for what, _, _ in rows][::-1]
    shares = [min(share, 3.0) for _, share, _ in rows][::-1]
    colours = [MET if met else MISSED for _, _, met in rows][::-1]
    ax.barh(names, shares, color=colours)
    ax.axvline(1.0, color="black", linewidth=0.8)
    for y, (_, share, _) in enumerate(rows[::-1]):
        ax.text(min(share, 3.0) + 0.02, y, f"{share:.2f}", va="center", fontsize=7)
    ax.set_xlabel("figure / limit (at most 1)")
    ax.set_title("Targets: each figure over its limit, from this run")
    return _save(fig, path)


def worker(document: dict[str, Any], path: Path) -> Path | None:
    clips = document["benchmarks"].get("worker", {}).get("clips")
    if not clips:
        return None
    fig, axes = _figure(1, 2)
    runs = [
        ("stream", "stream, moto"),
        ("stream_throttled", "stream, R2-like"),
        ("download_throttled", "copy first, R2-like"),
    ]
    ax = axes[0][0]
    for i, (key, label) in enumerate(runs):
        xs = [n + i * 0.25 for n in range(len(clips))]
        ax.bar(
            xs,
            [clip.get(key, {}).get("x_bare", math.nan) for clip in clips.values()],
            0.25,
            label=label,
            color=PALETTE[i],
        )
    ax.axhline(1.03, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(
        [n + 0.25 for n in range(len(clips))], [f"{k} ({c['mb']:.0f} MB)" for k, c in clips.items()]
    )
    ratios = [c.get(k, {}).get("x_bare", 1) for c in clips.values() for k, _ in runs]
    ax.set_ylim(min(0.9, *ratios) - 0.02, max(1.3, *ratios) + 0.02)  # a run below 0.9 (noise) shows too
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("x bare ffmpeg")
    ax.set_title("Worker, claim -> completed")
    ax.legend(fontsize=6, loc="upper left")
    ax = axes[0][1]
    feeds = {name: clip.get("feeds", {}) for name, clip in clips.items()}
    labels = sorted({label for f in feeds.values() for label in f if not label.startswith("bare")})
    for i, name in enumerate(feeds):
        xs = [n + i * 0.35 for n in range(len(labels))]
        ax.bar(
            xs,
            [feeds[name].get(label, {}).get("x_bare", math.nan) for label in labels],
            0.35,
            label=name,
            color=PALETTE[i],
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(
        [n + 0.17 for n in range(len(labels))], [label.replace(", ", "\n") for label in labels], fontsize=6
    )
    ax.set_ylim(0.9, None)
    ax.set_title("Feeding ffmpeg early (x bare)")
    ax.legend(fontsize=6)
    return _save(fig, path)


def segmented(document: dict[str, Any], path: Path) -> Path | None:
    bench = document["benchmarks"].get("segmented", {})
    one, predictions = bench.get("one_worker"), bench.get("predictions")
    if not one:
        return None
    fig, axes = _figure(1, 2)
    ax = axes[0][0]
    labels = []
    for y, (name, d) in enumerate(one.items()):
        ax.barh(2 * y + 1, d["single_s"], color=BASE)
        left = 0.0
        for i, part in enumerate(("plan_s", "segments_s", "stitch_s", "other_s")):
            ax.barh(2 * y, max(d[part], 0), left=left, color=PALETTE[i], label=part[:-2] if y == 0 else None)
            left += max(d[part], 0)
        labels += [f"{name}: segmented ({d['x_single']:.2f}x)", f"{name}: one bare pass"]
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel("seconds (one worker)")
    ax.set_title("Segments vs one pass")
    ax.legend(fontsize=6)
    ax = axes[0][1]
    for i, (name, by_workers) in enumerate((predictions or {}).items()):
        workers = sorted(by_workers, key=int)
        ax.plot(
            [int(w) for w in workers],
            [by_workers[w]["3600s"] for w in workers],
            marker="o",
            label=name,
            color=PALETTE[i],
        )
    ax.axhline(90, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_xlabel("workers")
    ax.set_ylabel("s to result")
    ax.set_title("60 min predicted on Lambda")
    ax.legend(fontsize=6)
    return _save(fig, path)


def survey(document: dict[str, Any], path: Path) -> Path | None:
    files = document["benchmarks"].get("segmented", {}).get("survey")
    if not files:
        return None
    fig, axes = _figure()
    ax = axes[0][0]
    rows = sorted(files.values(), key=lambda f: f["mb"])
    ax.plot([f["mb"] for f in rows], [f["scan_s"] for f in rows], marker="o", label="packet scan", color=BASE)
    ax.plot(
        [f["mb"] for f in rows], [f["index_s"] for f in rows], marker="o", label="sample tables", color=OTHER
    )
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MP4 size, MB")
    ax.set_ylabel("survey s")
    ax.set_title("Keyframe survey of an MP4")
    ax.legend(fontsize=6)
    return _save(fig, path)


def cost(document: dict[str, Any], path: Path) -> Path | None:
    per = document["benchmarks"].get("cost", {}).get("per_minute")
    if not per:
        return None
    clips = [k.split()[0] for k in per if k.endswith("x86_64")]
    fig, axes = _figure()
    ax = axes[0][0]
    for n, name in enumerate(clips):
        parts = per[f"{name} x86_64"]["parts"]
        minutes_share = per[f"{name} x86_64"]["compute_and_requests_usd_per_minute"] / max(
            sum(parts.values()), 1e-12
        )
        stored = per.get(f"{name} storage", {})
        stack = [
            ("worker", parts["worker"] * minutes_share),
            ("requests", (sum(parts.values()) - parts["worker"]) * minutes_share),
            ("original, 30 days", stored.get("original_30_days", 0.0)),
            ("output, a month", stored.get("output_per_month", 0.0)),
        ]
        left = 0.0
        for i, (label, value) in enumerate(stack):
            ax.barh(n, value, left=left, color=PALETTE[i], label=label if n == 0 else None)
            left += value
    ax.axvline(0.001, color="black", linewidth=0.8, linestyle="--")
    ax.axvline(0.0075, color=BASE, linewidth=0.8, linestyle=":")
    ax.axvline(0.015, color=BASE, linewidth=0.8, linestyle="-.")
    ax.text(0.0075, len(clips) - 0.4, " MediaConvert SD", fontsize=6)
    ax.text(0.015, len(clips) - 0.4, " HD", fontsize=6)
    ax.set_yticks(range(len(clips)), clips)
    ax.set_xlabel("$ per output minute of 720p (x86_64)")
    ax.set_title("Cost: compute and requests (target: dashed) and storage")
    ax.legend(fontsize=6, loc="lower right")
    return _save(fig, path)


FIGURES: dict[str, Callable[[dict[str, Any], Path], Path | None]] = {
    "targets": targets,
    "worker": worker,
    "segmented": segmented,
    "survey": survey,
    "cost": cost,
}


def draw(document: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Path]:
    """Every figure the document has data for: {name: path of `{stem}-{name}.png`}."""
    drawn = {}
    for name, figure in FIGURES.items():
        path = figure(document, out_dir / f"{stem}-{name}.png")
        if path is not None:
            drawn[name] = path
    return drawn


def _short(what: str) -> str:
    return what if len(what) <= 60 else what[:57] + "..."


if __name__ == "__main__":
    source = Path(sys.argv[1])
    print(
        "\n".join(str(p) for p in draw(json.loads(source.read_text()), source.parent, source.stem).values())
    )
