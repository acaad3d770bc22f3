"""Cloudflare R2 through its S3-compatible API: presigned PUT/GET, HEAD, upload of results,
and multipart uploads whose parts the browser PUTs to presigned URLs.

R2 rejects the CRC32 checksums boto3 >= 1.36 sends by default, so the client computes and
validates checksums only when an operation requires them. R2 has no presigned POST: uploads
are presigned PUTs with Content-Type and Content-Length signed in (a part's Content-Length too,
so R2 refuses a part of another size).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.secrets import json_secret
from chalicelib.config import Settings, get_settings
from chalicelib.errors import PartsIncompleteError, StorageError
from chalicelib.processing.ports import PresignedRequest, StoredObject, StoredPart

_MISSING = {"404", "NoSuchKey", "NotFound"}
_NO_UPLOAD = {"404", "NoSuchUpload"}
# CompleteMultipartUpload refusing the parts themselves: the client's upload, not R2, is at fault.
_PARTS_REFUSED = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload"}
# The worker's copy of an upload: at most 8 ranged GETs at once, in one wave when the size is
# known (each range is then size/8, at least 8 MiB). One HTTP stream is bounded by one
# connection's throughput; fewer, larger ranges also spare servers that re-read per request.
DOWNLOAD_THREADS = 8
DOWNLOAD_MIN_RANGE = 8 * 1024 * 1024
DOWNLOAD_DEFAULT_RANGE = 16 * 1024 * 1024
READ_PIECE = 256 * 1024  # a ranged read's body is handed on in pieces of this size
# A result goes up in parts of 5 MiB (S3's smallest), 8 at a time: one stream is bounded by one
# connection's throughput (a 60 MB output at 25 MB/s is 2.4 s in one PUT, 0.3 s in 8 streams).
UPLOAD_CONFIG = TransferConfig(
    multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=8
)


def download_config(size: int | None) -> TransferConfig:
    chunk = max(DOWNLOAD_MIN_RANGE, -(-size // DOWNLOAD_THREADS)) if size else DOWNLOAD_DEFAULT_RANGE
    return TransferConfig(
        multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=DOWNLOAD_THREADS
    )


def make_r2_client(settings: Settings) -> Any:
    config = Config(
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    kwargs: dict[str, Any] = {"region_name": settings.r2_region, "config": config}
    if settings.r2_endpoint_url:
        kwargs["endpoint_url"] = settings.r2_endpoint_url
    keys = r2_keys(settings)
    if keys is not None:
        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = keys
    return boto3.session.Session().client("s3", **kwargs)


def r2_keys(settings: Settings) -> tuple[str, str] | None:
    """The R2 token's keys: from the secret named by R2_SECRET_ID, else from the environment."""
    if not settings.r2_secret_id:
        if not settings.r2_access_key_id:
            return None
        return settings.r2_access_key_id, settings.r2_secret_access_key.get_secret_value()
    keys = json_secret(
        settings.r2_secret_id, ("accessKeyId", "secretAccessKey"), StorageError, "R2 credentials"
    )
    return keys["accessKeyId"], keys["secretAccessKey"]


class R2Store:
    """The ObjectStore port on R2."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @property
    def client(self) -> Any:
        """The boto3 client (instrumentation registers botocore event hooks on it)."""
        return self._client

    @classmethod
    def from_settings(cls, settings: Settings) -> R2Store:
        return cls(make_r2_client(settings), settings.r2_bucket)

    def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> PresignedRequest:
        params = {"Key": key, "ContentType": content_type, "ContentLength": size}
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        return self._presigned_put("put_object", params, headers, expires)

    def start_multipart(self, key: str, content_type: str) -> str:
        try:
            resp = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError() from exc
        return str(resp["UploadId"])

    def presign_part(
        self, key: str, upload_id: str, number: int, size: int, expires: int
    ) -> PresignedRequest:
        params = {"Key": key, "UploadId": upload_id, "PartNumber": number, "ContentLength": size}
        return self._presigned_put("upload_part", params, {"Content-Length": str(size)}, expires)

    def _presigned_put(
        self, operation: str, params: dict[str, Any], headers: dict[str, str], expires: int
    ) -> PresignedRequest:
        """A PUT whose `headers` (Content-Length always) are signed in: R2 refuses any other."""
        url = self._presign(
            operation, Params={"Bucket": self._bucket, **params}, ExpiresIn=expires, HttpMethod="PUT"
        )
        return PresignedRequest(url=url, method="PUT", headers=headers)

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart] | None:
        parts: list[StoredPart] = []
        try:
            pages = self._client.get_paginator("list_parts").paginate(
                Bucket=self._bucket, Key=key, UploadId=upload_id
            )
            for page in pages:
                parts += [
                    StoredPart(int(p["PartNumber"]), int(p["Size"]), str(p["ETag"]))
                    for p in page.get("Parts", [])
                ]
        except ClientError as exc:
            if _code(exc) in _NO_UPLOAD:
                return None
            raise StorageError() from exc
        except BotoCoreError as exc:
            raise StorageError() from exc
        return sorted(parts, key=lambda p: p.number)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        listed = [{"PartNumber": p.number, "ETag": p.etag} for p in sorted(parts, key=lambda p: p.number)]
        try:
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        except ClientError as exc:
            if _code(exc) in _PARTS_REFUSED:
                raise PartsIncompleteError(
                    f"Storage refused the parts ({_code(exc)}). Upload them again."
                ) from exc
            raise StorageError() from exc
        except BotoCoreError as exc:
            raise StorageError() from exc

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) not in _NO_UPLOAD:
                raise StorageError() from exc
        except BotoCoreError as exc:
            raise StorageError() from exc

    def presign_download(
        self, key: str, expires: int, filename: str | None = None, content_type: str | None = None
    ) -> str:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = attachment(filename)
        if content_type:
            params["ResponseContentType"] = content_type
        return self._presign("get_object", Params=params, ExpiresIn=expires)

    def _presign(self, operation: str, **kwargs: Any) -> str:
        # Signing is local, but it resolves credentials (a secret, an instance role) and validates.
        try:
            return str(self._client.generate_presigned_url(operation, **kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError() from exc

    def head(self, key: str) -> StoredObject | None:
        try:
            resp = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StorageError() from exc
        except BotoCoreError as exc:
            raise StorageError() from exc
        return StoredObject(
            key=key,
            size=int(resp["ContentLength"]),
            content_type=resp.get("ContentType"),
            etag=str(resp.get("ETag", "")).strip('"'),
        )

    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        try:
            self._client.upload_file(
                str(path),
                self._bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=UPLOAD_CONFIG,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("Failed to upload the result to R2") from exc

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        try:
            self._client.download_file(self._bucket, key, str(path), Config=download_config(size))
        except (ClientError, BotoCoreError, OSError) as exc:
            raise StorageError("Failed to download the upload from R2") from exc

    def read(self, key: str) -> bytes | None:
        try:
            resp = self._client.get_object(Bucket=self._bucket, Key=key)
            return bytes(resp["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise StorageError() from exc
        except BotoCoreError as exc:
            raise StorageError() from exc

    def write(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("Failed to store the result in R2") from exc

    def copy(self, source: str, target: str) -> None:
        try:
            self._client.copy_object(
                Bucket=self._bucket, Key=target, CopySource={"Bucket": self._bucket, "Key": source}
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError("Failed to copy a result in R2") from exc

    def read_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        try:
            body = self._client.get_object(
                Bucket=self._bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )["Body"]
            try:
                yield from body.iter_chunks(READ_PIECE)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:  # a body that breaks off is a BotoCoreError too
            raise StorageError("Failed to read the upload from R2") from exc

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:  # at most 1000 per page, as DeleteObjects takes
                    self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError() from exc
        return deleted


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def attachment(filename: str) -> str:
    """A Content-Disposition for a download: an ASCII name, and the real one per RFC 5987."""
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_. ") else "_" for c in filename)
    ascii_name = ascii_name.strip() or "video.mp4"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@cache
def default_store() -> R2Store:
    return R2Store.from_settings(get_settings())
