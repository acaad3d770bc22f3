"""The multipart routes' bodies (camelCase, as every route's): they validate what clients send
and generate their part of /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from chalicelib.config import MAX_PARTS
from chalicelib.handlers.schemas import Schema, WorkspaceIn
from chalicelib.uploads.parts import SIGN_BATCH_MAX, stored_bytes
from chalicelib.uploads.service import Progress, SignedParts


class SignPartsIn(WorkspaceIn):
    # documented: the upload's own parts run from 1 to its partCount (400 beyond)
    part_numbers: list[int] = Field(
        min_length=1,
        max_length=SIGN_BATCH_MAX,
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": MAX_PARTS}},
    )


class SignedPartOut(Schema):
    part_number: int
    url: str
    method: Literal["PUT"]
    headers: dict[str, str]  # Content-Length is signed in: the part's exact size


class SignedPartsOut(Schema):
    parts: list[SignedPartOut]
    expires_at: datetime  # the URLs' (a PUT must start before then)

    @classmethod
    def of(cls, signed: SignedParts) -> SignedPartsOut:
        return cls(
            parts=[
                SignedPartOut(part_number=n, url=put.url, method="PUT", headers=put.headers)
                for n, put in signed.parts
            ],
            expires_at=signed.expires_at,
        )


class StoredPartOut(Schema):
    part_number: int
    size: int
    etag: str


class UploadPartsOut(Schema):
    """What R2 holds of the upload (`completed`: the parts are joined into the object already)."""

    job_id: str
    size: int
    part_size: int
    part_count: int
    parts: list[StoredPartOut]
    uploaded_bytes: int
    completed: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, progress: Progress) -> UploadPartsOut:
        plan = progress.plan
        return cls(
            job_id=progress.job.id,
            size=plan.size,
            part_size=plan.part_size,
            part_count=plan.count,
            parts=[StoredPartOut(part_number=p.number, size=p.size, etag=p.etag) for p in progress.parts],
            uploaded_bytes=plan.size if progress.completed else stored_bytes(progress.parts, plan),
            completed=progress.completed,
            expires_at=progress.job.sweep_at,
        )
