"""The outputs' request and response bodies (camelCase, as every other route's)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, JsonValue

from chalicelib.handlers.schemas import PRESET_NAMES, PresetName, Schema, WorkspaceIn
from chalicelib.outputs.playback import Playback
from chalicelib.outputs.presets import CATALOG


class PresetOut(Schema):
    id: PresetName
    label: str
    description: str


class PresetsOut(Schema):
    workspace_id: str
    presets: list[PresetOut]
    default: PresetName  # what an upload starts with here (the last preset used, or the default)

    @classmethod
    def of(cls, workspace_id: str, default: str) -> PresetsOut:
        return cls(
            workspace_id=workspace_id,
            presets=[
                PresetOut(id=p.preset.value, label=p.label, description=p.description)
                for p in CATALOG.values()
            ],
            default=default,  # type: ignore[arg-type]
        )


class DefaultPresetIn(WorkspaceIn):
    # The preset new uploads here start with; an unknown one is refused naming the valid ones.
    preset: str = Field(json_schema_extra={"enum": list[JsonValue](PRESET_NAMES)})


class PlaybackOut(Schema):
    kind: Literal["mp4", "hls"]
    url: str  # the MP4 (presigned), or the HLS master playlist (a signed link to this API)
    poster_url: str | None
    thumbnails_url: str | None  # the seek bar's thumbnails, a WebVTT file (a signed link)
    live: bool  # a long HLS video still being encoded: the playlist grows
    expires_at: datetime  # when the signed links end (ask again after)

    @classmethod
    def of(cls, p: Playback) -> PlaybackOut:
        return cls(
            kind=p.kind,
            url=p.url,
            poster_url=p.poster_url,
            thumbnails_url=p.thumbnails_url,
            live=p.live,
            expires_at=p.expires_at,
        )
