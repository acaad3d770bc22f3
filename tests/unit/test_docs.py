"""The documentation's promises that a build cannot check: the README links every page of the
site, every relative link in the README resolves, and every setting is on the settings page
with its default. (`mkdocs build --strict` in `make test` checks the site's own links, anchors
and navigation; tests/integration/test_docs_build.py proves that it does.)"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs
from pydantic import SecretStr

from chalicelib.config import Settings, _env_names

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def nav_pages() -> list[str]:
    def walk(items: list[object]) -> list[str]:
        pages: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            pages += walk(value) if isinstance(value, list) else [str(value)]
        return pages

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return walk(config["nav"])


def readme_links() -> list[str]:
    return LINK.findall((ROOT / "README.md").read_text())


def test_every_page_of_the_site_is_in_its_navigation_and_linked_from_the_readme() -> None:
    pages = nav_pages()
    on_disk = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(pages) == on_disk
    linked = {link.split("#")[0] for link in readme_links()}
    missing = [page for page in pages if page != "index.md" and f"docs/{page}" not in linked]
    assert missing == []


def test_every_relative_link_in_the_readme_resolves() -> None:
    broken = []
    for link in readme_links():
        if re.match(r"^[a-z]+:", link):
            continue
        path = link.split("#")[0]
        if path and not (ROOT / path).exists():
            broken.append(link)
    assert broken == []


def _shown(default: object) -> str:
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, Enum):
        default = default.value
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if default == "":
        return "(empty"
    return str(default)


def test_every_setting_is_documented_with_its_environment_name_and_default() -> None:
    rows = [line for line in (ROOT / "docs" / "settings.md").read_text().splitlines() if line.startswith("|")]
    undocumented = []
    for name, field in Settings.model_fields.items():
        env = [n.upper() for n in _env_names(name, field.validation_alias)]
        row = next((r for r in rows if any(f"`{n}`" in r.split("|")[1] for n in env)), None)
        scalar = not isinstance(field.default, (tuple, list, dict))  # (a JSON default: said in words)
        if row is None or (scalar and _shown(field.default) not in row):
            undocumented.append(f"{env[0]} (default {_shown(field.default)!r})")
    assert undocumented == []
