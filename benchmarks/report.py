"""The result files: a small JSON (numbers, checks, machine), a Markdown page of the tables and the
main figures as PNGs beside them (benchmarks/plots.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import plots
from benchmarks.core import BenchResult, machine_line


def write_results(
    out_dir: Path,
    stem: str,
    machine: dict[str, Any],
    results: list[BenchResult],
    quick: bool,
    total_seconds: float,
    ok: bool,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document = {
        "ok": ok,
        "date": when,
        "quick": quick,
        "seconds": round(total_seconds, 1),
        "machine": machine,
        "benchmarks": {
            res.name: {
                "title": res.title,
                "seconds": round(res.seconds, 1),
                "ok": res.ok,
                **res.data,
                "targets": [
                    {
                        "what": t.what,
                        "measured": t.measured,
                        "limit": t.limit,
                        "met": t.met,
                        "why": t.why,
                        **({"value": t.value, "bound": t.bound} if t.value is not None else {}),
                    }
                    for t in res.targets
                ],
                "checks": {
                    "passed": sum(1 for c in res.checks if c.ok),
                    "failed": [f"{c.name}: {c.detail}" for c in res.checks if not c.ok],
                },
                **({"error": res.error.strip().splitlines()[-1]} if res.error else {}),
            }
            for res in results
        },
    }
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(compact_json(document) + "\n")
    for old in out_dir.glob(f"{stem}-*.png"):
        old.unlink()
    drawn = plots.draw(document, out_dir, stem)
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(markdown(document, results, machine, {k: v.name for k, v in drawn.items()}))
    return [json_path, md_path, *drawn.values()]


def compact_json(value: Any, depth: int = 0) -> str:
    """JSON with one line per leaf object or list (a route's numbers, say): small, diff-friendly."""
    leaf = not isinstance(value, dict | list) or all(not isinstance(v, dict | list) for v in _children(value))
    if leaf or not value:
        return json.dumps(value, ensure_ascii=False)
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {compact_json(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{compact_json(v, depth + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def _children(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else list(value)


# The figures drawn after each benchmark's tables.
FIGURES_OF = {"worker": ("worker",), "segmented": ("segmented", "survey"), "cost": ("cost",)}


def markdown(
    document: dict[str, Any],
    results: list[BenchResult],
    machine: dict[str, Any],
    figures: dict[str, str] | None = None,
) -> str:
    figures = figures or {}
    lines = [
        "# Benchmarks: latest run",
        "",
        f"`python -m benchmarks{' --quick' if document['quick'] else ''}` on {document['date']}, "
        f"{document['seconds']:.0f} s in all. Machine: {machine_line(machine)}.",
        "",
    ]
    if machine.get("code_changed_during_run"):
        changed = ", ".join(machine["code_changed_during_run"])
        lines += [f"**Warning**: the code under test changed during the run ({changed}).", ""]
    checks = [c for res in results for c in res.checks]
    failed = [c for c in checks if not c.ok]
    crashed = [res.name for res in results if res.error]
    if failed or crashed:
        lines += [f"**NOT OK**: {len(failed)} failed checks, crashed: {', '.join(crashed) or 'none'}", ""]
        lines += [f"- {c.name}: {c.detail}" for c in failed] + [""]
    else:
        lines += [f"All {len(checks)} invariant checks passed.", ""]
    targets = [t for res in results for t in res.targets]
    if targets:
        lines += ["## Targets (each figure beside its baseline from this run)", ""]
        lines += ["| target | measured | limit | result |", "|---|---|---|---|"]
        for t in targets:
            verdict = "met" if t.met else f"**missed**: {t.why}"
            if t.met and t.why:
                verdict += f" ({t.why})"
            lines.append(f"| {t.what} | {t.measured} | {t.limit} | {verdict} |")
        lines.append("")
        if "targets" in figures:
            lines += [f"![Each target's figure over its limit]({figures['targets']})", ""]
    for res in results:
        if not res.tables:
            continue
        lines += [f"## {res.title}", ""]
        for table in res.tables:
            lines += [table.markdown(), ""]
        lines += [f"![{name}]({figures[name]})" for name in FIGURES_OF.get(res.name, ()) if name in figures]
        if any(name in figures for name in FIGURES_OF.get(res.name, ())):
            lines.append("")
        lines += [f"- {note}" for note in res.notes]
        if res.notes:
            lines.append("")
    return "\n".join(lines)
