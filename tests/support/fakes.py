"""In-memory fakes of the ports, for unit tests of the service layer (no I/O).

The fake repository commits the lifecycle's transitions with the lifecycle's own guard and apply
functions; the real transactions and their concurrency are proven on DynamoDB Local in
tests/integration (test_contract.py runs one suite against both).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain import (
    DEFAULT_PRESET,
    Attempt,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    PaymentEvent,
    Preset,
    Principal,
    Purchase,
    QueueMessage,
    Role,
    Workspace,
    utcnow,
)
from chalicelib.errors import PartsIncompleteError, QueueSendError, StorageError, WebhookRejectedError
from chalicelib.lifecycle import KeyedAnswer, Release, Transition, apply, transitions
from chalicelib.payments.ports import CheckoutRequest, CheckoutSession, PaymentServices, ProviderEvent
from chalicelib.processing.context import Services
from chalicelib.processing.ports import (
    LedgerPage,
    Page,
    PresignedRequest,
    Rendered,
    StoredObject,
    StoredPart,
    ThumbSheet,
)


class FakeRepository:
    """The Repository port in memory. `commit` finds the writes whose guards fail and applies the
    transition only when none does, with the lifecycle's own guard and apply functions: it holds no
    rule of its own. tests/integration/test_contract.py proves it refuses what DynamoDB refuses."""

    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.members: dict[tuple[str, str], Membership] = {}
        self.jobs: dict[str, Job] = {}
        self.attempts: dict[tuple[str, int], Attempt] = {}
        self.entries: list[LedgerEntry] = []
        self.answers: dict[str, tuple[KeyedAnswer, bool]] = {}  # record id -> (answer, released)
        self.events: dict[str, PaymentEvent] = {}
        self.purchases: dict[str, Purchase] = {}  # session id -> purchase
        self.paid_for: dict[str, str] = {}  # payment id -> session id
        self.committed: list[Transition] = []

    def commit(self, t: Transition) -> None:
        failed = frozenset(self._refusing(t))
        if failed:
            raise t.refused(failed)
        self._apply(t)
        self.committed.append(t)

    def _refusing(self, t: Transition) -> Iterator[str]:
        if t.member is not None and t.member not in self.members:
            yield "member"
        if t.answer is not None and self.get_answer(t.answer.record_id, t.at) is not None:
            yield "answer"
        if t.workspace is not None:
            yield from apply.workspace_refusals(t.workspace, self.workspaces.get(t.workspace.workspace_id))
        if t.event is not None and t.event.id in self.events:
            yield "event"
        if t.purchase is not None:
            p = t.purchase
            created = p.create
            recorded = created is not None and created.payment_id in self.paid_for
            if not apply.purchase_write_holds(p, self.purchases.get(p.session_id), recorded):
                yield p.label
        for a in t.attempts:
            if not apply.attempt_write_holds(a, self.attempts.get((a.job_id, a.n))):
                yield a.label
        for j in t.jobs:
            if not apply.job_write_holds(j, self.jobs.get(j.job_id)):
                yield j.label

    def _apply(self, t: Transition) -> None:
        if t.membership is not None:
            m = t.membership
            self.members[(m.user_id, m.workspace_id)] = m
        if t.answer is not None:
            self.answers[t.answer.record_id] = (t.answer, False)
        if t.release is not None and t.release.record_id in self.answers:
            self._release(t.release)
        if t.workspace is not None:
            w = t.workspace
            self.workspaces[w.workspace_id] = apply.apply_workspace(self.workspaces.get(w.workspace_id), w)
        self.entries.extend(t.entries)
        if t.event is not None:
            self.events[t.event.id] = t.event
        if t.purchase is not None:
            p = t.purchase
            self.purchases[p.session_id] = apply.apply_purchase(self.purchases.get(p.session_id), p)
            if p.create is not None and p.create.payment_id is not None:
                self.paid_for[p.create.payment_id] = p.session_id
        for a in t.attempts:
            self.attempts[(a.job_id, a.n)] = apply.apply_attempt(self.attempts.get((a.job_id, a.n)), a)
        for j in t.jobs:
            self.jobs[j.job_id] = apply.apply_job(self.jobs.get(j.job_id), j)

    def _release(self, release: Release) -> None:
        stored, released = self.answers[release.record_id]
        if release.whole:
            self.answers[release.record_id] = (stored, True)
            return
        noted = dataclasses.replace(stored, refunded=stored.refunded | {release.job_id})
        self.answers[release.record_id] = (noted, released)

    # reads
    def get_workspace(self, workspace_id: str) -> Workspace | None:
        return copy.copy(self.workspaces.get(workspace_id))

    def get_workspaces(self, workspace_ids: Sequence[str]) -> dict[str, Workspace]:
        return {i: copy.copy(self.workspaces[i]) for i in workspace_ids if i in self.workspaces}

    def memberships_of(self, user_id: str) -> list[Membership]:
        return [m for (u, _), m in self.members.items() if u == user_id]

    def get_membership(self, user_id: str, workspace_id: str) -> Membership | None:
        return self.members.get((user_id, workspace_id))

    def ledger(self, workspace_id: str, limit: int, cursor: str | None) -> LedgerPage:
        mine = [e for e in reversed(self.entries) if e.workspace_id == workspace_id]
        return LedgerPage(entries=mine[:limit], cursor=None)

    def ledger_sum(self, workspace_id: str) -> int:
        return sum(e.delta for e in self.entries if e.workspace_id == workspace_id)

    def get_job(self, job_id: str) -> Job | None:
        return copy.copy(self.jobs.get(job_id))

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, Job]:
        return {i: copy.copy(self.jobs[i]) for i in job_ids if i in self.jobs}

    def list_jobs(self, workspace_id: str, status: JobStatus | None, limit: int, cursor: str | None) -> Page:
        mine = [
            j for j in self.jobs.values() if j.workspace_id == workspace_id and status in (None, j.status)
        ]
        return Page(jobs=sorted(mine, key=lambda j: j.created_at, reverse=True)[:limit], cursor=None)

    def attempts_of(self, job_id: str) -> list[Attempt]:
        return sorted((a for (j, _), a in self.attempts.items() if j == job_id), key=lambda a: a.n)

    def get_attempt(self, job_id: str, n: int) -> Attempt | None:
        return copy.copy(self.attempts.get((job_id, n)))

    def jobs_to_sweep(self, status: JobStatus, before: datetime, limit: int) -> list[Job]:
        due = [j for j in self.jobs.values() if j.status == status and j.sweep_at and j.sweep_at < before]
        return sorted(due, key=lambda j: j.sweep_at or before)[:limit]

    def get_answer(self, record_id: str, now: datetime) -> KeyedAnswer | None:
        stored = self.answers.get(record_id)
        if stored is None or not apply.answer_is_live(stored[0], stored[1], now):
            return None
        return stored[0]

    # the payments port's reads (chalicelib.payments.ports.PurchaseRecords)
    def get_purchase(self, session_id: str) -> Purchase | None:
        return self.purchases.get(session_id)

    def purchase_paid_by(self, payment_id: str) -> Purchase | None:
        session_id = self.paid_for.get(payment_id)
        return self.purchases.get(session_id) if session_id else None

    def event_applied(self, event_id: str) -> bool:
        return event_id in self.events


class FakeStore:
    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.uploaded: dict[str, Path] = {}
        self.downloaded: list[str] = []
        self.data: dict[str, bytes] = {}  # what `write` stored (and what `read` gives back)
        self.ranges: list[tuple[str, int, int]] = []
        self.multipart: dict[str, tuple[str, dict[int, int]]] = {}  # upload id -> (key, part -> size)
        self.aborted: list[str] = []

    def start_multipart(self, key: str, content_type: str) -> str:
        upload_id = f"upload-{len(self.multipart) + len(self.aborted) + 1}"
        self.multipart[upload_id] = (key, {})
        return upload_id

    def presign_part(
        self, key: str, upload_id: str, number: int, size: int, expires: int
    ) -> PresignedRequest:
        url = f"https://r2.test/{key}?partNumber={number}&uploadId={upload_id}"
        return PresignedRequest(url=url, method="PUT", headers={"Content-Length": str(size)})

    def put_part(self, upload_id: str, number: int, size: int) -> None:
        """What a client's PUT to a part's URL does (a test's stand-in for the browser)."""
        self.multipart[upload_id][1][number] = size

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart] | None:
        if upload_id not in self.multipart:
            return None
        parts = self.multipart[upload_id][1]
        return [StoredPart(n, size, f'"etag-{n}"') for n, size in sorted(parts.items())]

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        if upload_id not in self.multipart:
            raise PartsIncompleteError("Storage refused the parts (NoSuchUpload). Upload them again.")
        self.objects[key] = sum(p.size for p in parts)
        del self.multipart[upload_id]

    def abort_multipart(self, key: str, upload_id: str) -> None:
        if self.multipart.pop(upload_id, None) is not None:
            self.aborted.append(upload_id)

    def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> PresignedRequest:
        return PresignedRequest(
            url=f"https://r2.test/{key}?put",
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
        )

    def presign_download(
        self, key: str, expires: int, filename: str | None = None, content_type: str | None = None
    ) -> str:
        return f"https://r2.test/{key}?get"

    def head(self, key: str) -> StoredObject | None:
        return (
            StoredObject(key=key, size=self.objects[key], content_type=None) if key in self.objects else None
        )

    def upload_file(self, path: Path, key: str, content_type: str) -> None:
        self.uploaded[key] = path
        self.objects[key] = 1

    def download_file(self, key: str, path: Path, size: int | None = None) -> None:
        # As the adapter: a missing object is a StorageError (R2 answers 404 to the ranged GET).
        if key not in self.objects:
            raise StorageError(f"no object {key}")
        path.write_bytes(b"\0" * self.objects[key])
        self.downloaded.append(key)

    def read(self, key: str) -> bytes | None:
        if key not in self.objects:
            return None
        return self.data.get(key, b"")

    def write(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = len(data)
        self.data[key] = data

    def copy(self, source: str, target: str) -> None:
        if source not in self.objects:
            raise StorageError(f"no object {source}")
        self.objects[target] = self.objects[source]
        if source in self.data:
            self.data[target] = self.data[source]

    def read_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        if key not in self.objects:
            raise StorageError(f"no object {key}")
        self.ranges.append((key, start, length))
        yield b"\0" * max(min(length, self.objects[key] - start), 0)

    def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self.objects if key.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
            self.uploaded.pop(key, None)
            self.data.pop(key, None)
        return len(doomed)


class FakeQueue:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[QueueMessage] = []
        self.delays: list[int] = []
        self.visibility: list[tuple[str, int]] = []
        self.dead: list[tuple[str, str]] = []
        self.fail = fail

    def send(self, message: QueueMessage, delay_seconds: int = 0) -> None:
        if self.fail:
            raise QueueSendError()
        if not 0 <= delay_seconds <= 900:
            raise QueueSendError("DelaySeconds must be 0..900")
        self.sent.append(message)
        self.delays.append(delay_seconds)

    def extend_visibility(self, receipt_handle: str, seconds: int) -> None:
        if self.fail:
            raise QueueSendError()
        self.visibility.append((receipt_handle, seconds))

    def dead_letter(self, body: str, reason: str) -> None:
        if self.fail:
            raise QueueSendError()
        self.dead.append((body, reason))


def fake_rendered(out_dir: Path, preset: Preset = DEFAULT_PRESET, elapsed: float = 0.01) -> Rendered:
    """What a transcoder's `render` leaves, as small files (an MP4 preset's output, a poster and one
    sheet of three thumbnails): for unit tests of the service layer."""
    out_dir = Path(out_dir)
    video, poster, sheet = out_dir / "video.mp4", out_dir / "poster.jpg", out_dir / "thumbs.jpg"
    for path, data in ((video, b"mp4"), (poster, b"jpg"), (sheet, b"jpg")):
        path.write_bytes(data)
    return Rendered(
        preset=preset,
        width=1280,
        height=720,
        duration_seconds=3.0,
        elapsed_seconds=elapsed,
        video=video,
        poster=poster,
        thumbs=ThumbSheet(sheet, interval=1.0, first=0, count=3, columns=3),
    )


class ScriptedTranscoder:
    """A transcoder that fails with the scripted errors in order, then renders (fake_rendered),
    each call taking `seconds`: for unit tests of the worker's rules."""

    def __init__(self, *errors: BaseException, seconds: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.seconds = seconds

    def render(
        self,
        input_url: str,
        out_dir: Path,
        preset: Preset = DEFAULT_PRESET,
        on_progress: Any = None,
        stop: Any = None,
    ) -> Rendered:
        self.calls += 1
        time.sleep(self.seconds)
        if self.errors:
            raise self.errors.pop(0)
        return fake_rendered(out_dir, preset)


class FakePaymentProvider:
    """Stripe in memory: sessions it created, and events it "verifies" when signed `valid` (the
    real signature scheme is proven through Stripe's library in tests/integration/test_payments.py)."""

    SIGNED = "valid"

    def __init__(self) -> None:
        self.sessions: dict[str, CheckoutSession] = {}
        self.requests: list[CheckoutRequest] = []

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        self.requests.append(request)
        session_id = f"cs_fake_{len(self.requests)}"
        session = CheckoutSession(
            id=session_id,
            url=f"https://checkout.test/{session_id}",
            status="open",
            payment_status="unpaid",
            workspace_id=request.workspace_id,
            pack=request.pack.id,
            credits=request.pack.credits,
            amount=request.pack.price,
            currency=request.currency,
            payment_id=None,
            buyer=request.buyer,
        )
        self.sessions[session_id] = session
        return session

    def retrieve_checkout(self, session_id: str) -> CheckoutSession | None:
        return self.sessions.get(session_id)

    def verify_event(self, payload: bytes, signature: str | None) -> ProviderEvent:
        if signature != self.SIGNED:
            raise WebhookRejectedError()
        data = json.loads(payload)
        return ProviderEvent(data["id"], data["type"], utcnow(), data["data"]["object"])


def make_payment_services(services: Services, secret_id: str = "stripe-test") -> PaymentServices:
    """The payment use cases over the same fake repository (it is also the purchase records)."""
    repo = services.repo
    assert isinstance(repo, FakeRepository)
    return PaymentServices(
        settings=Settings(stripe_secret_id=secret_id),
        repo=repo,
        records=repo,
        provider=FakePaymentProvider(),
        clock=services.clock,
    )


class Clock:
    """A clock the test moves by hand (Services.clock): nothing waits on the real one."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


ALICE = Principal(user_id="alice-sub", email="alice@example.com")
BOB = Principal(user_id="bob-sub", email="bob@example.com")


def make_services(credits: int = 10, queue: FakeQueue | None = None, clock: Clock | None = None) -> Services:
    repo, now = FakeRepository(), clock() if clock else utcnow()
    for ws, balance, owner in (("ws-a", credits, ALICE), ("ws-b", 10, BOB)):
        entry = LedgerEntry(ws, balance, LedgerReason.GRANT, created_at=now)
        repo.commit(transitions.open_workspace(Workspace(ws, ws[-1].upper(), balance), entry, now))
        repo.commit(transitions.add_member(Membership(owner.user_id, ws, Role.OWNER), now))
    return Services(
        settings=Settings(), repo=repo, store=FakeStore(), queue=queue or FakeQueue(), clock=clock or utcnow
    )
