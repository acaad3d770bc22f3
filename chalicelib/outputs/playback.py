"""Playback before download: what a player needs for a job, and the HLS playlists behind
presigned URLs.

- `playback`: for a member, the job's player source: an MP4's presigned URL, or the URL of its
  master playlist served by this API; the poster; the thumbnails' WebVTT index (also served by
  this API). A long HLS video is playable while it is encoded (its stream is published as tasks
  finish in order: an EVENT playlist).
- The playlists and the WebVTT file are fetched by players, which cannot send the member's token
  (a native HLS player sends no header at all): their URLs carry a signed link instead, valid for
  PLAYBACK_URL_EXPIRY_SECONDS, naming the job and when it ends (HMAC-SHA256 with
  PLAYBACK_SIGNING_KEY). Every segment URI in a media playlist is presigned for as long, so a
  playlist never outlives its segments' URLs; a player that plays longer asks the API for a
  fresh link when one expires (the dashboard's player does, and resumes where it was).
- Media playlists are rendered from the stream's index at each request (chalicelib.outputs.hls):
  the segments are byte ranges of the package once the job completes, separate objects while a
  long video is encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from chalicelib.domain import Job, JobStatus, Principal
from chalicelib.errors import (
    JobNotFoundError,
    LinkExpiredError,
    NotPlayableError,
    ServiceUnavailableError,
    ValidationError,
)
from chalicelib.outputs import hls, presets, thumbnails
from chalicelib.processing.access import visible_job
from chalicelib.processing.context import Services

RENDITION = re.compile(r"^([0-9]{2,4}p|audio)$")
PLAYLIST = "application/vnd.apple.mpegurl"
# What a segment's answer says it is: a browser's native player reads it without CORS, and Opaque
# Response Blocking would refuse the package's own type (application/zip) there.
SEGMENT = "video/mp2t"

if TYPE_CHECKING:
    from chalicelib.config import Settings


@dataclass(frozen=True)
class Playback:
    kind: Literal["mp4", "hls"]
    url: str
    poster_url: str | None
    thumbnails_url: str | None
    live: bool  # a stream that is still growing (the job is processing)
    expires_at: datetime


def playable(job: Job) -> bool:
    """Completed, or a long HLS video with its first segments published."""
    if job.status == JobStatus.COMPLETED:
        return bool(job.output_file_key)
    return job.status == JobStatus.PROCESSING and job.stream_key is not None and job.hls_published > 0


def playback(svc: Services, principal: Principal, job_id: str, workspace_id: str | None) -> Playback:
    job = visible_job(svc.repo, principal, job_id, workspace_id)
    if not playable(job):
        raise NotPlayableError()
    settings, now = svc.settings, svc.clock()
    token = sign(settings, job.id, now)
    base = f"{settings.public_api_url.rstrip('/')}/jobs/{job.id}"
    expires = now + timedelta(seconds=settings.playback_url_expiry_seconds)
    thumbs = f"{base}/thumbnails.vtt?token={token}" if job.thumbnails_key else None
    poster = poster_url(svc, job)
    if presets.spec(job.preset).streaming:
        live = job.status != JobStatus.COMPLETED
        return Playback("hls", f"{base}/hls/master.m3u8?token={token}", poster, thumbs, live, expires)
    assert job.output_file_key is not None
    url = svc.store.presign_download(job.output_file_key, settings.download_url_expiry_seconds)
    return Playback("mp4", url, poster, thumbs, False, expires)


def poster_url(svc: Services, job: Job) -> str | None:
    """A completed job's poster, presigned (what a card shows)."""
    if job.status != JobStatus.COMPLETED or not job.poster_key:
        return None
    return svc.store.presign_download(job.poster_key, svc.settings.download_url_expiry_seconds)


# --- signed links -------------------------------------------------------------------------------


def _key(settings: Settings) -> bytes:
    if settings.playback_signing_secret_id:  # deployed: never in the function's environment
        from chalicelib.adapters.secrets import text_secret

        return text_secret(
            settings.playback_signing_secret_id, ServiceUnavailableError, "playback signing key"
        ).encode()
    key = settings.playback_signing_key.get_secret_value()
    if not key:
        raise ServiceUnavailableError("Playback is not configured (PLAYBACK_SIGNING_KEY)")
    return key.encode()


def _mac(settings: Settings, job_id: str, until: int) -> str:
    digest = hmac.new(_key(settings), f"playback.{job_id}.{until}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(settings: Settings, job_id: str, now: datetime) -> str:
    """A link to the job's playlists, valid PLAYBACK_URL_EXPIRY_SECONDS from `now`."""
    until = int(now.timestamp()) + settings.playback_url_expiry_seconds
    return f"{until}.{_mac(settings, job_id, until)}"


def check(settings: Settings, job_id: str, token: str, now: datetime) -> datetime:
    """When a valid link for this job ends; LinkExpiredError for any other (forged, another
    job's, past its time)."""
    until_text, _, mac = token.partition(".")
    if not until_text.isdigit() or not mac:
        raise LinkExpiredError()
    until = int(until_text)
    if not hmac.compare_digest(mac, _mac(settings, job_id, until)) or until <= now.timestamp():
        raise LinkExpiredError()
    return datetime.fromtimestamp(until, tz=now.tzinfo)


# --- what players fetch (signed links, no sign-in) -------------------------------------------------


def _linked_job(svc: Services, job_id: str, token: str) -> tuple[Job, int]:
    ends = check(svc.settings, job_id, token, svc.clock())
    job = svc.repo.get_job(job_id)
    if job is None:
        raise JobNotFoundError()
    # Segment URIs live as long as the link that listed them (at least a minute).
    seconds = max(int((ends - svc.clock()).total_seconds()), 60)
    return job, seconds


def _stream(svc: Services, job: Job) -> hls.Stream:
    if not playable(job) or not presets.spec(job.preset).streaming or job.stream_key is None:
        raise NotPlayableError()
    data = svc.store.read(job.stream_key)
    if data is None:
        raise NotPlayableError()
    return hls.Stream.from_json(data)


def master_playlist(svc: Services, job_id: str, token: str) -> str:
    job, _ = _linked_job(svc, job_id, token)
    stream = _stream(svc, job)
    # Relative to the master's URL: the media playlists sit beside it, with the same link.
    return hls.master_playlist(stream, lambda name: f"{name}.m3u8?token={token}")


def media_playlist(svc: Services, job_id: str, name: str, token: str) -> str:
    if not RENDITION.match(name):
        raise ValidationError("No such rendition")
    job, seconds = _linked_job(svc, job_id, token)
    stream = _stream(svc, job)
    rendition = stream.rendition(name)
    if rendition is None:
        raise ValidationError("No such rendition")
    urls: dict[str, str] = {}

    def uri(segment: hls.Segment) -> str:
        if segment.key not in urls:  # a package's byte ranges share one URL
            urls[segment.key] = svc.store.presign_download(segment.key, seconds, content_type=SEGMENT)
        return urls[segment.key]

    return hls.media_playlist(stream, rendition, uri)


def thumbnails_vtt(svc: Services, job_id: str, token: str) -> str:
    """The thumbnails' WebVTT index with each sheet's URL presigned."""
    job, seconds = _linked_job(svc, job_id, token)
    if job.status != JobStatus.COMPLETED or not job.thumbnails_key:
        raise NotPlayableError()
    data = svc.store.read(job.thumbnails_key)
    if data is None:
        raise NotPlayableError()
    vtt = data.decode()
    folder = job.thumbnails_key.rsplit("/", 1)[0] + "/"
    urls = {name: svc.store.presign_download(folder + name, seconds) for name in thumbnails.sheet_names(vtt)}
    return thumbnails.with_image_urls(vtt, urls)
