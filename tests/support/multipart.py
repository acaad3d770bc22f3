"""A client for multipart uploads through the API, as a program (not the dashboard) drives one:
create the job, presign parts in batches, PUT them in parallel, complete, start."""

from __future__ import annotations

import concurrent.futures as cf
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

SIGN_BATCH = 100


class Answer(Protocol):
    status_code: int

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class Caller(Protocol):
    def call(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any: ...


@dataclass
class InProcessAnswer:
    status_code: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body


@dataclass
class InProcessApi:
    """The Api's `call` over Chalice's test client (same app, collaborators swapped by the test)."""

    client: Any
    token: str

    def call(self, method: str, path: str, json: Any = None, **kwargs: Any) -> InProcessAnswer:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        body = _dumps(json) if json is not None else None
        r = getattr(self.client.http, method.lower())(path, headers=headers, body=body)
        return InProcessAnswer(r.status_code, r.body.decode() if isinstance(r.body, bytes) else r.body)


def _dumps(value: Any) -> str:
    return json.dumps(value)


@dataclass
class PartsUpload:
    """A job created for `source` with a multipart upload, and the parts' plan the API chose."""

    api: Caller
    source: Path
    job: dict[str, Any]
    upload: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.job["id"])

    @property
    def part_size(self) -> int:
        return int(self.upload["partSize"])

    @property
    def part_count(self) -> int:
        return int(self.upload["partCount"])

    def sign(self, numbers: list[int]) -> Answer:
        answer: Answer = self.api.call("POST", f"/jobs/{self.job_id}/upload/parts", {"partNumbers": numbers})
        return answer

    def send(self, numbers: list[int] | None = None, threads: int = 4) -> list[int]:
        """PUT parts (default: all) to URLs presigned in batches, `threads` at a time."""
        wanted = numbers if numbers is not None else list(range(1, self.part_count + 1))
        signed: dict[int, dict[str, Any]] = {}
        for i in range(0, len(wanted), SIGN_BATCH):
            r = self.sign(wanted[i : i + SIGN_BATCH])
            assert r.status_code == 200, r.json()
            signed |= {p["partNumber"]: p for p in r.json()["parts"]}

        def put(n: int) -> None:
            with self.source.open("rb") as f:
                f.seek((n - 1) * self.part_size)
                data = f.read(self.part_size)
            part = signed[n]
            done = requests.put(part["url"], data=data, headers=part["headers"], timeout=300)
            assert done.status_code == 200, done.text

        with cf.ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, wanted))
        return wanted

    def parts(self) -> Answer:
        answer: Answer = self.api.call("GET", f"/jobs/{self.job_id}/upload/parts")
        return answer

    def complete(self) -> Answer:
        answer: Answer = self.api.call("POST", f"/jobs/{self.job_id}/upload/complete", {})
        return answer

    def abort(self) -> Answer:
        answer: Answer = self.api.call("DELETE", f"/jobs/{self.job_id}/upload")
        return answer

    def start(self) -> Answer:
        answer: Answer = self.api.call("POST", f"/jobs/{self.job_id}/start", {})
        return answer


def create_in_parts(api: Caller, source: Path, content_type: str = "video/x-matroska") -> PartsUpload:
    """POST /jobs for `source`; the API must answer with a multipart upload."""
    body = {"filename": source.name, "contentType": content_type, "size": source.stat().st_size}
    r = api.call("POST", "/jobs", body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["upload"]["method"] == "MULTIPART", created["upload"]
    return PartsUpload(api=api, source=source, job=created["job"], upload=created["upload"])
