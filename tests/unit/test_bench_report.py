"""The benchmark report's figures (benchmarks/plots.py) drawn from a small made-up run document:
every figure the document has data for, as a small PNG, and named in the Markdown page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import plots
from benchmarks.core import BenchResult
from benchmarks.report import write_results


def document() -> dict[str, Any]:
    clip = {
        "mb": 38.0,
        "stream": {"x_bare": 1.02},
        "stream_throttled": {"x_bare": 1.04},
        "download_throttled": {"x_bare": 1.1},
        "feeds": {"range server, moov first": {"x_bare": 1.01}, "pipe, moov first": {"x_bare": 1.0}},
    }
    target = {"what": "worker (small clip, moto)", "measured": "1.02x", "limit": "<= 1.03x", "met": True}
    return {
        "benchmarks": {
            "worker": {"clips": {"small": clip}, "targets": [{**target, "value": 1.02, "bound": 1.03}]},
            "segmented": {
                "one_worker": {
                    "mp3": {
                        "single_s": 100,
                        "x_single": 1.05,
                        "plan_s": 1,
                        "segments_s": 99,
                        "stitch_s": 3,
                        "other_s": 2,
                    }
                },
                "predictions": {"mp3": {"10": {"3600s": 150}, "200": {"3600s": 60}}},
                "survey": {
                    "a.mp4": {"mb": 38, "index_s": 0.01, "scan_s": 0.5},
                    "b.mp4": {"mb": 760, "index_s": 0.02, "scan_s": 5},
                },
            },
            "cost": {
                "per_minute": {
                    "small x86_64": {
                        "compute_and_requests_usd_per_minute": 0.0009,
                        "parts": {"worker": 4e-4, "api": 5e-5},
                    },
                    "small storage": {"original_30_days": 0.0012, "output_per_month": 0.0002},
                }
            },
        }
    }


def test_each_figure_is_a_small_png(tmp_path: Path) -> None:
    drawn = plots.draw(document(), tmp_path, "latest")

    assert set(drawn) == {"targets", "worker", "segmented", "survey", "cost"}
    for path in drawn.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 100_000, (path, len(data))


def test_a_run_without_data_for_a_figure_draws_none_and_the_page_names_what_it_drew(tmp_path: Path) -> None:
    res = BenchResult(name="cold", title="Cold start")
    res.target("API cold import", "0.8x", "<= 1.2x", True, value=0.8, bound=1.2)
    written = write_results(
        tmp_path,
        "partial",
        {
            "nproc": 2,
            "cpu": "x",
            "mem_gib": 1,
            "os": "l",
            "python": "3",
            "ffmpeg": "f",
            "dynamodb_local": "d",
            "packages": {"chalice": "1", "moto": "1", "pynamodb": "1"},
            "commit": "c",
        },
        [res],
        True,
        1.0,
        True,
    )

    assert sorted(p.name for p in written) == ["partial-targets.png", "partial.json", "partial.md"]
    assert (
        "![Each target's figure over its limit](partial-targets.png)" in (tmp_path / "partial.md").read_text()
    )
