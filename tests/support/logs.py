"""Reading what the code logged: Powertools writes one JSON object per line."""

from __future__ import annotations


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of `text` that is a JSON object, parsed (other lines are skipped)."""
    import json

    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
