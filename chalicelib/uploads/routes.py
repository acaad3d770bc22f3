"""The multipart upload routes: presign parts in batches, list the parts R2 holds, complete, abort.

Each one translates: input model in, one service call, response model out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.bootstrap import services
from chalicelib.domain import Job, Principal
from chalicelib.handlers.http import route
from chalicelib.handlers.lazy import models
from chalicelib.handlers.params import parse_job_id
from chalicelib.uploads import service

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import JobEnvelope, JobOut, WorkspaceIn
    from chalicelib.uploads.schemas import SignedPartsOut, SignPartsIn, UploadPartsOut
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(models("chalicelib.handlers.schemas", "JobEnvelope", "JobOut", "WorkspaceIn"))
    globals().update(models("chalicelib.uploads.schemas", "SignedPartsOut", "SignPartsIn", "UploadPartsOut"))

blueprint = Blueprint(__name__)


@route(
    blueprint,
    "/jobs/{jobId}/upload/parts",
    "POST",
    summary="Presign PUTs for parts of a multipart upload (at most 100 per request)",
    body=SignPartsIn,
    response=SignedPartsOut,
    errors=(400, 404, 409),
)
def sign_parts(principal: Principal, body: SignPartsIn, jobId: str) -> SignedPartsOut:  # noqa: N803
    signed = service.sign_parts(
        services(), principal, parse_job_id(jobId), body.workspace_id, body.part_numbers
    )
    return SignedPartsOut.of(signed)


@route(
    blueprint,
    "/jobs/{jobId}/upload/parts",
    "GET",
    summary="The parts of a multipart upload that storage holds (resume: send only the others)",
    query=WorkspaceIn,
    response=UploadPartsOut,
    errors=(400, 404, 409),
)
def list_parts(principal: Principal, query: WorkspaceIn, jobId: str) -> UploadPartsOut:  # noqa: N803
    return UploadPartsOut.of(
        service.list_parts(services(), principal, parse_job_id(jobId), query.workspace_id)
    )


@route(
    blueprint,
    "/jobs/{jobId}/upload/complete",
    "POST",
    summary="Join the stored parts into the file (refused unless they add up to it); then start the job",
    body=WorkspaceIn,
    response=JobEnvelope,
    errors=(400, 404, 409),
)
def complete(principal: Principal, body: WorkspaceIn, jobId: str) -> JobEnvelope:  # noqa: N803
    return _envelope(service.complete(services(), principal, parse_job_id(jobId), body.workspace_id))


@route(
    blueprint,
    "/jobs/{jobId}/upload",
    "DELETE",
    summary="Abort the upload: what storage holds of it is discarded and the job cancelled (nothing charged)",
    query=WorkspaceIn,
    response=JobEnvelope,
    errors=(400, 404, 409),
)
def abort(principal: Principal, query: WorkspaceIn, jobId: str) -> JobEnvelope:  # noqa: N803
    return _envelope(service.abort(services(), principal, parse_job_id(jobId), query.workspace_id))


def _envelope(job: Job) -> JobEnvelope:
    return JobEnvelope(job=JobOut.of(job, max_tries=services().settings.max_auto_attempts))
