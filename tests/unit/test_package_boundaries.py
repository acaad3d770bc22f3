"""The deployed package (app.py + chalicelib/) never imports the local stack or the operator CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEVER = ("devstack", "cli", "tests", "benchmarks")


def deployed_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_deployed_module_names_devstack_or_the_cli() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & set(NEVER))
        for p in deployed_files()
        if imported_roots(p) & set(NEVER)
    }
    assert offenders == {}


def test_loading_the_app_and_every_handler_loads_neither() -> None:
    probe = (
        "import sys, app, chalicelib.bootstrap;"
        "import chalicelib.handlers.worker, chalicelib.handlers.sweeper;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NEVER!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
