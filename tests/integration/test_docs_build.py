"""`mkdocs build --strict` (run by `make test`) fails on each fault the site must not ship: a
link to a missing page, a link to a missing anchor, a page left out of the navigation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack import REPO_ROOT


def build(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tree / "site")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the docs and their configuration."""
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs")
    shutil.copy(REPO_ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    return tmp_path


def test_the_docs_build_cleanly(tree: Path) -> None:
    result = build(tree)
    assert result.returncode == 0, result.stderr
    assert (tree / "site" / "retries" / "index.html").exists()


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (lambda docs: _append(docs / "index.md", "[gone](no-such-page.md)"), "not found"),
        (lambda docs: _append(docs / "index.md", "[rules](retries.md#no-such-anchor)"), "no-such-anchor"),
        (lambda docs: (docs / "orphan.md").write_text("# An orphan\n"), 'not included in the "nav"'),
    ],
    ids=["missing page", "missing anchor", "page left out of the nav"],
)
def test_a_fault_fails_the_strict_build(tree: Path, fault: Callable[[Path], object], says: str) -> None:
    fault(tree / "docs")
    result = build(tree)
    assert result.returncode != 0
    assert says in result.stderr


def _append(page: Path, line: str) -> None:
    page.write_text(page.read_text() + f"\n{line}\n")
