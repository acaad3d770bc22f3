"""The job routes: create, start, list, get, download, retry, batch retry, cancel, a new file.

Each one translates: input model in, one service call, response model out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from chalice import Blueprint

from chalicelib.bootstrap import services
from chalicelib.domain import JobStatus, Principal
from chalicelib.handlers.http import idempotently, route
from chalicelib.handlers.lazy import models
from chalicelib.handlers.params import parse_job_id
from chalicelib.outputs import presets
from chalicelib.processing import cancel, jobs, retry
from chalicelib.processing.dispatch import Dispatch, Queued
from chalicelib.processing.idempotency import Key
from chalicelib.processing.ports import KeyedAnswer, PresignedRequest
from chalicelib.uploads.parts import SIGN_BATCH_MAX, Multipart

if TYPE_CHECKING:
    from chalicelib.handlers.schemas import (
        BatchRetryIn,
        BatchRetryOut,
        CancelOut,
        CreatedJobOut,
        CreateJobIn,
        DownloadOut,
        JobDetailEnvelope,
        JobDetailOut,
        JobOut,
        JobPageOut,
        ListJobsQuery,
        MultipartUploadOut,
        ReplacedOut,
        ReplaceInputIn,
        RetryIn,
        RetryItemOut,
        RetryOut,
        StartedOut,
        UploadOut,
        WorkspaceIn,
    )
else:  # named here, built at their first use (chalicelib.handlers.lazy)
    globals().update(
        models(
            "chalicelib.handlers.schemas",
            "BatchRetryIn",
            "BatchRetryOut",
            "CancelOut",
            "CreatedJobOut",
            "CreateJobIn",
            "DownloadOut",
            "JobDetailEnvelope",
            "JobDetailOut",
            "JobOut",
            "JobPageOut",
            "ListJobsQuery",
            "MultipartUploadOut",
            "ReplacedOut",
            "ReplaceInputIn",
            "RetryIn",
            "RetryItemOut",
            "RetryOut",
            "StartedOut",
            "UploadOut",
            "WorkspaceIn",
        )
    )

blueprint = Blueprint(__name__)


@route(
    blueprint,
    "/jobs",
    "POST",
    summary="Create a job and get its upload: one presigned PUT, or a multipart upload for a large file",
    status=201,
    body=CreateJobIn,
    response=CreatedJobOut,
    errors=(400, 403, 404, 413, 429),
)
def create_job(principal: Principal, body: CreateJobIn) -> CreatedJobOut:
    created = jobs.create_job(
        services(), principal, body.filename, body.content_type, body.size, body.workspace_id, body.preset
    )
    return CreatedJobOut(
        job=JobOut.of(created.job, max_tries=services().settings.max_auto_attempts),
        upload=_upload_out(created.upload),
    )


def _upload_out(upload: PresignedRequest | Multipart) -> UploadOut | MultipartUploadOut:
    if isinstance(upload, Multipart):
        return MultipartUploadOut(
            method="MULTIPART",
            part_size=upload.plan.part_size,
            part_count=upload.plan.count,
            max_parts_per_request=SIGN_BATCH_MAX,
            expires_at=upload.expires_at,
        )
    return UploadOut(url=upload.url, method="PUT", headers=upload.headers)


@route(
    blueprint,
    "/jobs/{jobId}/start",
    "POST",
    summary="Charge 1 credit and queue the uploaded job",
    status=202,
    body=WorkspaceIn,
    response=StartedOut,
    errors=(400, 403, 404, 409, 429, 503),
)
def start_job(principal: Principal, body: WorkspaceIn, jobId: str) -> StartedOut:  # noqa: N803
    job_id = parse_job_id(jobId)

    def act(key: Key[Queued] | None) -> Queued:
        return jobs.start_job(services(), principal, job_id, body.workspace_id, key)

    def render(queued: Queued) -> dict[str, Any]:
        job = JobOut.of(queued.job, max_tries=services().settings.max_auto_attempts)
        return StartedOut(job=job, delivery=_deferred(queued.delivery)).model_dump(mode="json", by_alias=True)

    return StartedOut.model_validate(idempotently(blueprint, principal, "start", job_id, act, render))


@route(
    blueprint,
    "/jobs",
    "GET",
    summary="Jobs, newest first",
    query=ListJobsQuery,
    response=JobPageOut,
    errors=(400, 403, 404),
)
def list_jobs(principal: Principal, query: ListJobsQuery) -> JobPageOut:
    status = JobStatus(query.status) if query.status else None
    page = jobs.list_jobs(services(), principal, query.workspace_id, status, query.limit, query.cursor)
    tries = services().settings.max_auto_attempts
    shown = [JobOut.of(j, page.pricing, tries, page.posters.get(j.id)) for j in page.jobs]
    return JobPageOut(jobs=shown, cursor=page.cursor)


@route(
    blueprint,
    "/jobs/{jobId}",
    "GET",
    summary="One job with its attempts",
    query=WorkspaceIn,
    response=JobDetailEnvelope,
    errors=(400, 404),
)
def get_job(principal: Principal, query: WorkspaceIn, jobId: str) -> JobDetailEnvelope:  # noqa: N803
    detail = jobs.get_job(services(), principal, parse_job_id(jobId), query.workspace_id)
    tries = services().settings.max_auto_attempts
    job = JobDetailOut.of_detail(detail.job, detail.attempts, detail.pricing, tries, detail.poster_url)
    return JobDetailEnvelope(job=job)


@route(
    blueprint,
    "/jobs/{jobId}/download",
    "GET",
    summary="A presigned download URL of the result",
    query=WorkspaceIn,
    response=DownloadOut,
    errors=(400, 404),
)
def download(principal: Principal, query: WorkspaceIn, jobId: str) -> DownloadOut:  # noqa: N803
    return DownloadOut(url=jobs.download_url(services(), principal, parse_job_id(jobId), query.workspace_id))


@route(
    blueprint,
    "/jobs/{jobId}/retry",
    "POST",
    summary="Retry a failed job (1 credit; free under RETRY_PRICING first_free for its first retry)",
    body=RetryIn,
    response=RetryOut,
    errors=(400, 403, 404, 409, 429, 503),
)
def retry_job(principal: Principal, body: RetryIn, jobId: str) -> RetryOut:  # noqa: N803
    job_id = parse_job_id(jobId)
    preset = presets.parse(body.preset)

    def act(key: Key[retry.Retried] | None) -> retry.Retried:
        return retry.retry_job(services(), principal, job_id, body.workspace_id, key, preset)

    def render(retried: retry.Retried) -> dict[str, Any]:
        out = RetryOut(
            success=True,
            job_id=retried.job.id,
            credits_charged=retried.credits_charged,
            delivery=_deferred(retried.delivery),
            preset=retried.job.preset.value if preset else None,  # said when the request chose it
        )
        return out.model_dump(mode="json", by_alias=True)

    # One key, one intent: the same key for another preset is another request (a 400).
    target = f"{job_id}#{preset.value}" if preset else job_id
    return RetryOut.model_validate(idempotently(blueprint, principal, "retry", target, act, render))


@route(
    blueprint,
    "/jobs/{jobId}/replace",
    "POST",
    summary="A new file for a failed job: a presigned upload; then retry the job (its price) to process it",
    body=ReplaceInputIn,
    response=ReplacedOut,
    errors=(400, 404, 409, 413),
)
def replace_input(principal: Principal, body: ReplaceInputIn, jobId: str) -> ReplacedOut:  # noqa: N803
    replaced = jobs.replace_input(
        services(),
        principal,
        parse_job_id(jobId),
        body.filename,
        body.content_type,
        body.size,
        body.workspace_id,
    )
    upload = replaced.upload
    return ReplacedOut(
        job=JobOut.of(replaced.job, max_tries=services().settings.max_auto_attempts),
        upload=UploadOut(url=upload.url, method="PUT", headers=upload.headers),
    )


@route(
    blueprint,
    "/jobs/{jobId}/cancel",
    "POST",
    summary="Cancel an upload, a queued or a processing job; what it was charged comes back",
    body=WorkspaceIn,
    response=CancelOut,
    errors=(400, 404, 409, 503),
)
def cancel_job(principal: Principal, body: WorkspaceIn, jobId: str) -> CancelOut:  # noqa: N803
    cancelled = cancel.cancel_job(services(), principal, parse_job_id(jobId), body.workspace_id)
    return CancelOut(
        success=True,
        job_id=cancelled.job.id,
        status="cancelled",
        credits_refunded=cancelled.credits_refunded,
    )


@route(
    blueprint,
    "/jobs/retry",
    "POST",
    summary="Retry several failed jobs at once (at most 25)",
    body=BatchRetryIn,
    response=BatchRetryOut,
    errors=(400, 403, 404, 409),
)
def retry_jobs(principal: Principal, body: BatchRetryIn) -> BatchRetryOut:
    too_many = len(body.job_ids) > services().settings.batch_retry_max  # the service says so first
    job_ids = body.job_ids if too_many else [parse_job_id(i) for i in body.job_ids]

    def act(key: Key[retry.BatchResult] | None) -> retry.BatchResult:
        return retry.retry_jobs(services(), principal, job_ids, body.workspace_id, key)

    def replay(stored: KeyedAnswer) -> dict[str, Any]:
        return _batch_replay(stored, retry.balance_if_readable(services(), principal, body.workspace_id))

    target = ",".join(sorted(job_ids))
    answer = idempotently(blueprint, principal, "retry-batch", target, act, _batch_answer, replay)
    return BatchRetryOut.model_validate(answer)


def _deferred(delivery: Dispatch | None) -> Literal["deferred"] | None:
    """Said only when it matters: the send and the refund failed, the sweeper sends the job."""
    return "deferred" if delivery == Dispatch.DEFERRED else None


def _batch_answer(outcome: retry.BatchResult) -> dict[str, Any]:
    return BatchRetryOut(
        results=[
            RetryItemOut(
                job_id=r.job_id,
                success=r.success,
                code=r.code,
                message=r.message,
                delivery=_deferred(r.delivery),
                credits_charged=r.credits_charged,
            )
            for r in outcome.results
        ],
        credits_charged=outcome.credits_charged,
        credits=outcome.credits,
    ).model_dump(mode="json", by_alias=True)


def _batch_replay(stored: KeyedAnswer, credits: int | None) -> dict[str, Any]:
    """The stored answer, with the jobs refunded since (their send failed) reported as such, and
    the balance as it is now."""
    answer = BatchRetryOut.model_validate(stored.response)
    answer.credits = credits
    for i, result in enumerate(answer.results):
        if result.success and result.job_id in stored.refunded:
            price = result.credits_charged or 0
            item = retry.refunded_item(result.job_id, price)
            answer.results[i] = RetryItemOut(
                job_id=item.job_id, success=False, code=item.code, message=item.message
            )
            answer.credits_charged -= price
    return answer.model_dump(mode="json", by_alias=True)
