"""A small client for the real HTTP API, and helpers that drive jobs through it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from chalicelib import bootstrap
from chalicelib.processing.ports import Repository
from tests.support.stack import AwsStack


@dataclass
class Api:
    base: str
    token: str | None = None

    def call(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        h.update(headers or {})
        return requests.request(method, self.base + path, json=json, headers=h, timeout=60, **kwargs)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.call("POST", path, json=json, **kw)

    # -- flows ----------------------------------------------------------------------------------
    def credits(self) -> int:
        r = self.get("/credits")
        assert r.status_code == 200, r.text
        return int(r.json()["credits"])

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json()["job"])

    def create(
        self, data: bytes, filename: str = "clip.mp4", content_type: str = "video/mp4"
    ) -> dict[str, Any]:
        r = self.post("/jobs", {"filename": filename, "contentType": content_type, "size": len(data)})
        assert r.status_code == 201, r.text
        body = r.json()
        put = requests.put(body["upload"]["url"], data=data, headers=body["upload"]["headers"], timeout=60)
        assert put.status_code == 200, put.text
        return dict(body["job"])

    def submit(self, data: bytes, filename: str = "clip.mp4") -> dict[str, Any]:
        """Create, upload and start a job; the job as `start` returned it."""
        job = self.create(data, filename)
        r = self.post(f"/jobs/{job['id']}/start")
        assert r.status_code == 202, r.text
        return dict(r.json()["job"])

    def wait_for(self, job_id: str, *statuses: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["status"] not in statuses:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stayed {job['status']}, wanted {statuses}")
            time.sleep(0.2)
            job = self.job(job_id)
        return job


@dataclass
class Tenant:
    """A fresh user with their own workspace, and an API client signed in as them."""

    email: str
    workspace_id: str
    api: Api


def new_tenant(stack: AwsStack, api_url: str, credits: int = 10) -> Tenant:
    tag = uuid.uuid4().hex[:10]
    email, workspace_id = f"user-{tag}@example.com", f"ws-{tag}"
    stack.add_user(email, workspace_id, credits=credits)
    return Tenant(email=email, workspace_id=workspace_id, api=Api(api_url, stack.token(email)))


def repository() -> Repository:
    """The running stack's repository (one client for the session, not one per call)."""
    return bootstrap.services().repo
