"""The one settings model: every knob, its environment variable and its local default.

AWS services (DynamoDB, SQS, Cognito) take their endpoints from boto3's own variables
(`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, ...), so nothing here switches
endpoints for them. R2 is not AWS and has its own settings.

Nothing is read at import time: `get_settings()` builds the model on first use and caches it;
`reset_settings()` forgets it (tests and the local stack change the environment).

A plain pydantic model reads the environment itself (`_environment`): pydantic-settings did the
same for 50 ms of every cold start (its sources, dotenv and secrets-dir support go unused here).
Values given to the constructor win over the environment, as with BaseSettings.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from chalicelib.domain import (
    GIB,
    MAX_PARTS,
    MAX_RETENTION_DAYS,
    MIB,
    PART_MAX_BYTES,
    PART_MIN_BYTES,
    RetryPricing,
)


class CreditPack(BaseModel):
    """A pack of credits the dashboard offers for sale (CREDIT_PACKS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    credits: int = Field(gt=0, le=100_000)
    price: int = Field(gt=0)  # in the currency's smallest unit (cents for usd)


DEFAULT_CREDIT_PACKS = (
    CreditPack(id="small", credits=10, price=500),
    CreditPack(id="medium", credits=50, price=2000),
    CreditPack(id="large", credits=200, price=6000),
)


class Settings(BaseModel):
    """Every setting of the service. Environment variable names are the field names, upper-cased
    (case-insensitive), or the field's validation aliases when it has them."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, validate_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, data: Any) -> Any:
        given = dict(data) if isinstance(data, dict) else {}
        environ = {key.lower(): value for key, value in os.environ.items()}
        merged: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            for key in _env_names(name, field.validation_alias):
                if key in environ:
                    merged[name] = environ[key]
                    break
        for key, value in given.items():  # the constructor's values win
            merged[_field_for(cls, key)] = value
        return merged

    # --- AWS -------------------------------------------------------------------------------
    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    table_prefix: str = "vidproc"
    jobs_queue_name: str = "vidproc-jobs"
    jobs_queue_url: str = ""  # resolved from jobs_queue_name when empty
    jobs_dlq_url: str = ""  # resolved from "{jobs_queue_name}-dlq" when empty
    # = the jobs queue's redrive policy: the receive after which SQS moves a message to the DLQ
    max_receive_count: int = Field(default=5, ge=1)

    # --- Cloudflare R2 (S3-compatible API) ---------------------------------------------------
    r2_endpoint_url: str = ""  # empty: AWS S3 itself (AWS_ENDPOINT_URL_S3 applies)
    r2_bucket: str = "vidproc-media"
    r2_access_key_id: str = ""
    r2_secret_access_key: SecretStr = SecretStr("")
    # A Secrets Manager secret {"accessKeyId", "secretAccessKey"}; when set it wins over the two
    # variables above and is read at run time (Powertools Parameters), never put in the environment.
    r2_secret_id: str = ""
    r2_region: str = "auto"

    # --- Uploads and downloads ---------------------------------------------------------------
    upload_max_bytes: int = Field(default=50 * GIB, gt=0, le=MAX_PARTS * PART_MAX_BYTES)
    upload_url_expiry_seconds: int = Field(default=900, gt=0, le=900)  # a PUT's, or a part's
    # A file larger than this is uploaded in parts (multipart, resumable); up to it, one PUT.
    upload_multipart_threshold_bytes: int = Field(default=100 * MIB, gt=0, le=PART_MAX_BYTES)
    # Every part but the last has this size (larger when a file would need over 10,000 parts).
    upload_part_bytes: int = Field(default=16 * MIB, ge=PART_MIN_BYTES, le=PART_MAX_BYTES)
    # An unfinished multipart upload is aborted by the sweeper this long after it was created
    # (and by R2's lifecycle rule a day later: infra/r2-lifecycle.json).
    upload_multipart_expiry_seconds: int = Field(default=48 * 3600, gt=0)
    download_url_expiry_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    # Playback (chalicelib.outputs.playback): the playlists' signed links and every segment URI
    # they hold live this long (a player that outlives them asks for fresh ones); the links are
    # signed with this key (HMAC-SHA256; the local stack writes a random one into stack.env).
    playback_url_expiry_seconds: int = Field(default=600, ge=30, le=3600)
    playback_signing_key: SecretStr = SecretStr("")
    # Deployed: a Secrets Manager secret holding that key, read at run time (Powertools
    # Parameters, cached) by the API, the one function that signs and verifies; it wins over the above.
    playback_signing_secret_id: str = ""

    # --- Authentication (Cognito) ------------------------------------------------------------
    cognito_user_pool_id: str = ""
    cognito_client_id: str = ""
    cognito_issuer: str = ""  # default: https://cognito-idp.{region}.amazonaws.com/{pool}
    cognito_jwks_url: str = ""  # default: {issuer}/.well-known/jwks.json
    jwks_cache_seconds: int = 3600

    # --- API -----------------------------------------------------------------------------------
    cors_allow_origin: str = "http://127.0.0.1:8080"
    jobs_page_max: int = 100
    batch_retry_max: int = 25
    idempotency_ttl_seconds: int = 600
    # Abuse limits. A workspace's jobs queued or processing at once (start and retry answer 429
    # past it, charging nothing); what a 429 tells the client to wait (Retry-After) when nothing
    # better is known; a user's requests on the job-creating routes per window (429 past it);
    # the largest request body any route reads (413 above it, before any work).
    max_active_jobs: int = Field(default=50, gt=0)
    retry_after_seconds: int = Field(default=60, gt=0)
    rate_limit_requests: int = Field(default=60, ge=0)  # 0: no per-user limit
    rate_limit_window_seconds: int = Field(default=60, gt=0)
    request_body_max_bytes: int = Field(default=64 * 1024, gt=0)

    # --- Worker --------------------------------------------------------------------------------
    ffmpeg_path: str = "ffmpeg"
    ffprobe_path: str = "ffprobe"
    transcode_timeout_seconds: int = Field(default=780, gt=0)
    transcode_preset: str = "veryfast"  # x264's; the output sizes are the job's preset's
    transcode_crf: int = 23
    work_dir: str = "/tmp"
    # "stream": ffmpeg starts at once, reading a local range server that parallel ranged reads
    # fill (the bytes it waits for first); "download": copy the upload to WORK_DIR first, then
    # ffmpeg reads the local file; "url": ffmpeg reads the presigned URL itself (one HTTP stream,
    # no /tmp for the input). docs/performance.md has the measurements behind the default.
    transcode_input: Literal["stream", "download", "url"] = "stream"
    # A worker's claim on an attempt. While an attempt (or a segment task) runs, one conditional
    # write every `pulse_seconds` renews the claim and records the progress, so a long transcode is
    # never taken for a dead one; a refused write (the job was cancelled) stops ffmpeg within it.
    # The message's visibility is extended every `heartbeat_seconds`.
    claim_lease_seconds: int = Field(default=900, gt=0, le=43200)
    pulse_seconds: float = Field(default=2.0, gt=0, le=5)
    heartbeat_seconds: float = Field(default=60, gt=0)
    # A record is claimed only if the invocation has the transcode limit + this margin left.
    invocation_margin_seconds: int = Field(default=60, ge=0)

    # --- Retry policy ----------------------------------------------------------------------------
    max_auto_attempts: int = Field(default=3, ge=1)  # tries per charged attempt, the charged one included
    auto_retry_base_seconds: float = Field(default=20, ge=0)  # full jitter: uniform(0, base * 2^(try-1))
    auto_retry_cap_seconds: float = Field(default=900, ge=0, le=900)  # SQS DelaySeconds is at most 900
    retry_pricing: RetryPricing = RetryPricing.FULL  # a workspace may override it (cli pricing)

    # --- Long videos ---------------------------------------------------------------------------
    # Long videos: longer than the threshold go in segments of about segment_seconds each.
    segment_threshold_seconds: float = Field(default=120, gt=0)
    segment_seconds: float = Field(default=60, gt=0)
    # A segment task failing for a system reason is re-delivered by SQS until this many receives.
    segment_max_tries: int = Field(default=3, gt=0)

    # --- Sweeper -------------------------------------------------------------------------------
    sweeper_requeue_after_seconds: int = Field(default=120, gt=0)
    # Days an upload is kept after its job completed or was cancelled, for workspaces whose owner
    # chose nothing (docs/performance.md, "Storage"); 0 deletes it at the sweeper's next pass.
    originals_retention_days: int = Field(default=30, ge=0, le=MAX_RETENTION_DAYS)

    # --- Notifications (email, webhooks) -------------------------------------------------------
    # Events to fan out (emails, and a delivery per endpoint); the webhook tries go to their own
    # queue, consumed by a function of their own, so a slow endpoint never holds up a fan-out.
    notifications_queue_name: str = "vidproc-notifications"
    notifications_queue_url: str = ""  # resolved from notifications_queue_name when empty
    webhook_queue_name: str = "vidproc-webhooks"
    webhook_queue_url: str = ""  # resolved from webhook_queue_name when empty
    notify_email_from: str = "notifications@vidproc.local"  # an SES-verified sender
    # Signs unsubscribe links (HMAC-SHA256); the local stack writes a random one into stack.env.
    notify_signing_key: SecretStr = SecretStr("")
    # Deployed: a Secrets Manager secret holding that key, read at run time (Powertools
    # Parameters, cached) by the functions that sign or verify links; it wins over the above.
    notify_signing_secret_id: str = ""
    # An unsubscribe link works this long (and only until the member's email choices change).
    unsubscribe_link_days: int = Field(default=60, gt=0, le=365)
    dashboard_url: str = "http://127.0.0.1:8080"  # links in emails
    public_api_url: str = "http://127.0.0.1:8000"  # unsubscribe links (an API route)
    # Local stack only: accept http:// endpoints on loopback (127.0.0.1, ::1, localhost).
    webhook_allow_local: bool = False
    # A try's whole deadline (connect, TLS, sending, the answer), not a limit per socket read.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # Tries of one workspace's endpoints under way at once; a try beyond it waits its turn. With
    # the delivery function's reserved concurrency above it, one workspace's slow endpoints never
    # hold every delivery up.
    webhook_max_concurrent_tries: int = Field(default=2, gt=0, le=20)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_delay_seconds: float = Field(default=3 * 3600, gt=0)
    webhook_retry_window_seconds: float = Field(default=24 * 3600, gt=0)
    webhook_disable_after_failures: int = Field(default=3, gt=0)  # failed deliveries in a row
    webhook_max_endpoints: int = Field(default=10, gt=0)
    webhook_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0)

    # --- Web Push (notifications to a closed browser) -------------------------------------------
    # A Secrets Manager secret {"privateKey", "publicKey"} (the VAPID key pair, base64url, P-256):
    # read at run time, never put in the environment. Empty: push is off (the routes answer 503).
    vapid_secret_id: str = ""
    vapid_subject: str = "mailto:notifications@vidproc.local"  # who the push services may contact
    push_ttl_seconds: int = Field(default=24 * 3600, ge=0, le=28 * 24 * 3600)  # kept for an offline device
    push_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    push_max_subscriptions: int = Field(default=10, gt=0)  # devices per person
    # --- Payments (Stripe Checkout) -------------------------------------------------------------
    # A Secrets Manager secret {"apiKey", "webhookSecret"}, read at run time (Powertools Parameters);
    # the keys are never in the environment or a template. Empty: buying credits is unavailable.
    stripe_secret_id: str = ""
    stripe_api_base: str = ""  # empty: Stripe's own API; the local stack points it at its stand-in
    credit_packs: tuple[CreditPack, ...] = DEFAULT_CREDIT_PACKS  # CREDIT_PACKS: a JSON list
    credit_currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")  # ISO 4217, lower case

    @field_validator("credit_packs", mode="before")
    @classmethod
    def _packs_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment's JSON; empty: the defaults
            return json.loads(value) if value.strip() else DEFAULT_CREDIT_PACKS
        return value

    @field_validator("credit_packs")
    @classmethod
    def _packs_are_distinct(cls, packs: tuple[CreditPack, ...]) -> tuple[CreditPack, ...]:
        if not packs:
            raise ValueError("at least one credit pack")
        if len({p.id for p in packs}) != len(packs):
            raise ValueError("credit pack ids must be distinct")
        return packs

    def table_name(self, kind: str) -> str:
        return f"{self.table_prefix}-{kind}"

    @property
    def issuer(self) -> str:
        if self.cognito_issuer:
            return self.cognito_issuer
        return f"https://cognito-idp.{self.aws_region}.amazonaws.com/{self.cognito_user_pool_id}"

    @property
    def jwks_url(self) -> str:
        return self.cognito_jwks_url or f"{self.issuer}/.well-known/jwks.json"


def _env_names(name: str, alias: object) -> list[str]:
    if isinstance(alias, AliasChoices):
        return [str(choice).lower() for choice in alias.choices]
    if isinstance(alias, str):
        return [alias.lower()]
    return [name]


def _field_for(model: type[BaseModel], key: str) -> str:
    if key in model.model_fields:
        return key
    for name, field in model.model_fields.items():
        if key.lower() in _env_names(name, field.validation_alias):
            return name
    return key


@cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
