"""The outputs' routes, on their own blueprint: the presets, a job's playback, and what players
fetch with a signed link (the HLS playlists, the thumbnails' WebVTT index), which are not JSON
and need no sign-in (docs/outputs.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.bootstrap import services
from chalicelib.domain import Principal
from chalicelib.errors import DomainError, ValidationError
from chalicelib.handlers.http import CORS, error_response, route
from chalicelib.handlers.lazy import models
from chalicelib.handlers.params import parse_job_id
from chalicelib.outputs import playback, presets
from chalicelib.processing import jobs

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import WorkspaceIn
    from chalicelib.outputs.schemas import DefaultPresetIn, PlaybackOut, PresetsOut
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(models("chalicelib.handlers.schemas", "WorkspaceIn"))
    globals().update(models("chalicelib.outputs.schemas", "DefaultPresetIn", "PlaybackOut", "PresetsOut"))

blueprint = Blueprint(__name__)


@route(
    blueprint,
    "/presets",
    "GET",
    summary="The output presets, and the one uploads start with in the workspace",
    query=WorkspaceIn,
    response=PresetsOut,
    errors=(400, 403, 404),
)
def list_presets(principal: Principal, query: WorkspaceIn) -> PresetsOut:
    workspace_id, default = jobs.workspace_preset(services(), principal, query.workspace_id)
    return PresetsOut.of(workspace_id, default.value)


@route(
    blueprint,
    "/presets/default",
    "PUT",
    summary="Choose the preset uploads start with in the workspace",
    body=DefaultPresetIn,
    response=PresetsOut,
    errors=(400, 403, 404),
)
def set_default_preset(principal: Principal, body: DefaultPresetIn) -> PresetsOut:
    chosen = presets.parse(body.preset)
    assert chosen is not None
    workspace_id = jobs.set_workspace_preset(services(), principal, body.workspace_id, chosen)
    return PresetsOut.of(workspace_id, chosen.value)


@route(
    blueprint,
    "/jobs/{jobId}/playback",
    "GET",
    summary="What a player needs: the MP4 or the HLS master playlist, the poster, the thumbnails",
    query=WorkspaceIn,
    response=PlaybackOut,
    errors=(400, 404),
)
def get_playback(principal: Principal, query: WorkspaceIn, jobId: str) -> PlaybackOut:  # noqa: N803
    return PlaybackOut.of(playback.playback(services(), principal, parse_job_id(jobId), query.workspace_id))


def _text(content_type: str, make: Callable[[str], str]) -> Response:
    """A signed-link answer: the text, or the error as `{code, message}`; never cached, as the
    links and presigned URLs in it expire."""
    request = blueprint.current_request
    params: dict[str, str] = dict(request.query_params or {})
    token = params.get("token", "")
    try:
        body = make(token)
    except DomainError as error:
        return error_response(error)
    return Response(
        body=body, status_code=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
    )


@blueprint.route("/jobs/{jobId}/hls/{playlist}", methods=["GET"], cors=CORS)
def hls_playlist(jobId: str, playlist: str) -> Response:  # noqa: N803
    def make(token: str) -> str:
        job_id = parse_job_id(jobId)
        name, dot, ext = playlist.rpartition(".")
        if not dot or ext != "m3u8":
            raise ValidationError("No such playlist")
        if name == "master":
            return playback.master_playlist(services(), job_id, token)
        return playback.media_playlist(services(), job_id, name, token)

    return _text(playback.PLAYLIST, make)


@blueprint.route("/jobs/{jobId}/thumbnails.vtt", methods=["GET"], cors=CORS)
def thumbnails_vtt(jobId: str) -> Response:  # noqa: N803
    return _text(
        "text/vtt; charset=utf-8",
        lambda token: playback.thumbnails_vtt(services(), parse_job_id(jobId), token),
    )
