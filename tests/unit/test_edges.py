"""Small pure pieces at the edges: the error table, the queue codec, settings, token parsing, schemas."""

from __future__ import annotations

import pytest

from chalicelib import errors
from chalicelib.adapters.r2 import attachment
from chalicelib.adapters.sqs import decode, encode
from chalicelib.auth import bearer_token
from chalicelib.config import Settings
from chalicelib.domain import AUDIO_TASK, QueueMessage
from chalicelib.handlers.params import parse_job_id
from chalicelib.handlers.schemas import CreateJobIn, JobOut


def test_every_domain_error_maps_to_a_status_and_code() -> None:
    def all_subclasses(cls: type[errors.DomainError]) -> list[type[errors.DomainError]]:
        return [cls] + [s for sub in cls.__subclasses__() for s in all_subclasses(sub)]

    for cls in all_subclasses(errors.DomainError):
        mapped = errors.http_error_for(cls.__new__(cls))
        assert mapped.status in {400, 401, 403, 404, 409, 413, 429, 500, 503}
    assert errors.http_error_for(errors.InsufficientCreditsForRetryError()) == (403, "FORBIDDEN")
    assert errors.http_error_for(errors.UploadGoneError()) == (409, "CONFLICT")
    assert errors.http_error_for(errors.JobsChangedError({"x"})) == (400, "BAD_REQUEST")


def test_a_job_id_in_a_path_is_a_uuid_made_canonical() -> None:
    assert parse_job_id("0B8E6F1E-7D0A-4F7E-9D5C-1F2A3B4C5D6E") == "0b8e6f1e-7d0a-4f7e-9d5c-1f2a3b4c5d6e"
    for wrong in ("not-a-uuid", "0b8e6f1e7d0a4f7e9d5c1f2a3b4c5d6e", "{0b8e6f1e-7d0a-4f7e-9d5c-1f2a3b4c5d6e}"):
        with pytest.raises(errors.ValidationError, match="jobId must be a UUID"):
            parse_job_id(wrong)


def test_the_seeds_messages_are_the_defaults() -> None:
    assert errors.JobNotFoundError().message == "Job not found"
    assert errors.JobNotFailedError().message == "Only failed jobs can be retried"
    assert errors.InsufficientCreditsForRetryError().message == (
        "Insufficient credits. Please purchase more credits to retry."
    )
    assert errors.FFmpegNotFoundError().message == "FFmpeg not found"
    assert errors.DownloadError().message == "Failed to download from R2"


def test_queue_messages_round_trip_and_strangers_are_rejected() -> None:
    message = QueueMessage("j", "w", 3)
    assert decode(encode(message)) == message
    assert "task" not in encode(message)  # an attempt's message is what it was before segments
    for task in (0, 41, AUDIO_TASK):
        assert decode(encode(QueueMessage("j", "w", 3, task=task))) == QueueMessage("j", "w", 3, task=task)
    for not_a_task in ('"1"', "true", "-2", "1.5"):
        with pytest.raises(errors.ValidationError):
            decode(f'{{"jobId": "j", "workspaceId": "w", "attempt": 1, "task": {not_a_task}}}')
    for body in ("", "[]", '{"jobId": "j"}', '{"jobId": "j", "workspaceId": "w", "attempt": "x"}'):
        with pytest.raises(errors.ValidationError):
            decode(body)


def test_settings_derive_issuer_and_jwks_from_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COGNITO_USER_POOL_ID", "eu-west-1_abc")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("COGNITO_ISSUER", raising=False)
    monkeypatch.delenv("COGNITO_JWKS_URL", raising=False)
    s = Settings()
    assert s.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
    assert s.jwks_url == s.issuer + "/.well-known/jwks.json"
    assert s.upload_max_bytes == 50 * 1024**3 and s.upload_url_expiry_seconds <= 900


def test_upload_expiry_cannot_exceed_15_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_URL_EXPIRY_SECONDS", "3600")
    with pytest.raises(ValueError):
        Settings()


@pytest.mark.parametrize("header", [None, "", "Bearer", "Token abc", "bearer   "])
def test_bearer_token_needs_the_bearer_scheme(header: str | None) -> None:
    with pytest.raises(errors.UnauthorizedError):
        bearer_token(header)


def test_bearer_token_is_case_insensitive_on_the_scheme() -> None:
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"


def test_a_filename_with_a_path_keeps_only_its_name() -> None:
    body = CreateJobIn.model_validate(
        {"filename": "C:\\Users\\me\\clip.mov", "contentType": "video/mp4", "size": 1}
    )
    assert body.filename == "clip.mov"


def test_jobs_serialise_with_the_seeds_camel_case_names() -> None:
    assert set(JobOut.model_json_schema(by_alias=True)["properties"]) >= {
        "id",
        "workspaceId",
        "status",
        "originalFilename",
        "inputFileKey",
        "outputFileKey",
        "error",
        "errorCode",
        "createdAt",
        "updatedAt",
        "completedAt",
        "attempt",
        "retryCount",
    }


@pytest.mark.parametrize(
    ("name", "ascii_name", "encoded"),
    [
        ("holiday.mp4", "holiday.mp4", "holiday.mp4"),
        ("vidéo clip.mp4", "vid_o clip.mp4", "vid%C3%A9o%20clip.mp4"),
        ('"; evil.mp4', "__ evil.mp4", "%22%3B%20evil.mp4"),
    ],
)
def test_download_names_are_latin1_safe_and_keep_the_real_name(
    name: str, ascii_name: str, encoded: str
) -> None:
    header = attachment(name)
    header.encode("latin-1")  # an HTTP header must be
    assert header == f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"
