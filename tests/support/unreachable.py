"""Run in a subprocess whose AWS endpoints point at a closed loopback port: call every public
method of the Repository port, the ObjectStore, the JobQueue, the purchase records and the
payment provider (its secret unreadable, or Stripe unreachable), and print what each raised.

`python -m tests.support.unreachable` prints one JSON object {method: exception class name}.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain import (
    Attempt,
    FailureKind,
    Job,
    JobStatus,
    LedgerEntry,
    LedgerReason,
    Membership,
    PaymentEvent,
    Preset,
    Purchase,
    QueueMessage,
    Role,
    Trigger,
    Workspace,
    utcnow,
)
from chalicelib.lifecycle import KeyedAnswer, Lease, Move, PricingBasis, RecordedError, Release, transitions
from chalicelib.lifecycle.model import Transition
from chalicelib.processing.ports import Repository


def repository_calls() -> dict[str, tuple[Any, ...]]:
    now, ws, job_id = utcnow(), "ws-x", str(uuid.uuid4())
    answer = KeyedAnswer("r", "t", {}, now + timedelta(minutes=1))
    return {
        "commit": (one_of_each()[Move.RETRY],),
        "get_workspace": (ws,),
        "get_workspaces": ([ws],),
        "memberships_of": ("u",),
        "get_membership": ("u", ws),
        "ledger": (ws, 10, None),
        "ledger_sum": (ws,),
        "get_job": (job_id,),
        "get_jobs": ([job_id],),
        "list_jobs": (ws, None, 10, None),
        "attempts_of": (job_id,),
        "get_attempt": (job_id, 1),
        "jobs_to_sweep": (JobStatus.QUEUED, now, 10),
        "get_answer": (answer.record_id, now),
    }


def one_of_each() -> dict[Move, Transition]:
    """A transition of every kind the lifecycle has (what `commit` is called with)."""
    now, ws, job_id = utcnow(), "ws-x", str(uuid.uuid4())
    job = Job(job_id, ws, JobStatus.FAILED, "a.mp4", "video/mp4", 1, "k", now, now, attempt=1, credits_paid=1)
    charged = Attempt(job_id, 1, Trigger.INITIAL, 1, now, "u")
    entry = LedgerEntry(ws, 5, LedgerReason.GRANT, created_at=now)
    answer = KeyedAnswer("r", "t", {}, now + timedelta(minutes=1))
    ref = QueueMessage(job_id, ws, 1)
    error = RecordedError("e", "E")
    basis = PricingBasis.assumed(Settings().retry_pricing)
    retried = transitions.retry([job], basis, Trigger.MANUAL, "u", "u", now, answer)
    queued = Job(job_id, ws, JobStatus.QUEUED, "a.mp4", "video/mp4", 1, "k", now, now, attempt=2)
    bought = Purchase("cs_1", ws, "small", 10, 500, "usd", "pi_1", "u", "evt_1", now)
    uploading = Job(job_id, ws, JobStatus.UPLOADING, "a.mp4", "video/mp4", 1, "k", now, now, sweep_at=now)
    return {
        Move.OPEN_WORKSPACE: transitions.open_workspace(Workspace(ws, ws, 5), entry, now),
        Move.ADD_MEMBER: transitions.add_member(Membership("u", ws, Role.OWNER), now),
        Move.CREDITS: transitions.change_credits(entry),
        Move.PRICING: transitions.set_pricing(ws, None, now),
        Move.CREATE: transitions.create_job(job),
        Move.UPLOADED: transitions.uploaded(uploading, now),
        Move.EXPIRE_UPLOAD: transitions.expire_upload(uploading, error, now),
        Move.START: transitions.start(job, "u", now, answer),
        Move.RETRY: retried,
        Move.UNDO: transitions.undo(
            queued, charged, LedgerReason.RETRY_REFUND, error, "u", now, Release("r", whole=True)
        ),
        Move.DISPATCH: transitions.dispatched(job, now, timedelta(0)),
        Move.CLAIM: transitions.claim(ref, now, now, "owner"),
        Move.PROGRESS: transitions.progress(ref, 0.5, now),
        Move.HEARTBEAT: transitions.heartbeat(ref, now, now),
        Move.PLAN: transitions.plan(ref, "{}", "1 segments", 2, 1, now, now),
        Move.FINISH_TASK: transitions.finish_task(ref, 0, now, now),
        Move.CLAIM_STITCH: transitions.claim_stitch(ref, now, now),
        Move.RELEASE_STITCH: transitions.release_stitch(ref, now),
        Move.COMPLETE: transitions.complete(ref, "out", now),
        Move.FAIL: transitions.fail(job, error, FailureKind.TRANSIENT, now, charged),
        Move.RESCHEDULE: transitions.reschedule(job, error, now, now),
        Move.INTERRUPT: transitions.reschedule(job, error, now, now, Lease(now), Move.INTERRUPT),
        Move.GIVE_UP: transitions.fail(
            job, error, FailureKind.TRANSIENT, now, charged, Lease(now, "o"), Move.GIVE_UP
        ),
        Move.CANCEL: transitions.cancel(queued, charged, "u", "u", now),
        Move.REPLACE_INPUT: transitions.replace_input(job, "b.mp4", "video/mp4", 5, "u", now),
        Move.PUBLISH: transitions.publish(ref, 0, 1, "k/live", now),
        Move.PRESET: transitions.set_preset(ws, Preset.HLS, "u", now),
        Move.RETENTION: transitions.set_retention(ws, 7, "u", now),
        Move.EXPIRE_ORIGINAL: transitions.original_deleted(job, now),
        Move.PURCHASE: transitions.purchase(
            bought, PaymentEvent("evt_1", "checkout.session.completed", now), now
        ),
        Move.PURCHASE_REVERSAL: transitions.purchase_reversal(
            bought, PaymentEvent("evt_2", "charge.refunded", now), 10, now
        ),
    }


def port_methods() -> set[str]:
    return {name for name in dir(Repository) if not name.startswith("_")}


def payment_calls() -> dict[str, tuple[Any, ...]]:
    """Every method of the payments' ports (PurchaseRecords, PaymentProvider)."""
    from chalicelib.config import CreditPack
    from chalicelib.payments.ports import CheckoutRequest

    pack = CreditPack(id="small", credits=10, price=500)
    request = CheckoutRequest("ws-x", pack, "usd", "u", "", "http://127.0.0.1/ok", "http://127.0.0.1/no")
    return {
        "records.get_purchase": ("cs_1",),
        "records.purchase_paid_by": ("pi_1",),
        "records.event_applied": ("evt_1",),
        "provider.create_checkout": (request,),
        "provider.retrieve_checkout": ("cs_1",),
        "provider.verify_event": (b"{}", "t=1,v1=00"),
    }


def payment_outcomes(settings: Settings) -> dict[str, str]:
    from chalicelib.payments.adapters.dynamodb import DynamoPurchaseRecords
    from chalicelib.payments.adapters.stripe import StripeProvider

    records = DynamoPurchaseRecords()
    secretless = StripeProvider("vidproc/unreachable/stripe", settings.stripe_api_base)
    offline = StripeProvider("vidproc/unreachable/stripe", settings.stripe_api_base)
    offline._keys = lambda: {"apiKey": "sk_test_x", "webhookSecret": "whsec_x"}  # type: ignore[method-assign]
    seen = {}
    for name, args in payment_calls().items():
        port, method = name.split(".")
        if port == "records":
            seen[name] = outcome(getattr(records, method), *args)
        else:
            seen[f"{name}.secret"] = outcome(getattr(secretless, method), *args)  # the secret unreadable
            seen[f"{name}.stripe"] = outcome(getattr(offline, method), *args)  # Stripe unreachable
    return seen


def outcome(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except Exception as exc:
        return type(exc).__name__
    return "returned"


def main() -> None:
    from chalicelib.adapters.dynamodb import DynamoRepository
    from chalicelib.adapters.dynamodb.limits import DynamoRateLimiter
    from chalicelib.adapters.r2 import R2Store
    from chalicelib.adapters.sqs import SqsJobQueue
    from chalicelib.notifications.adapters.dynamodb import DynamoNotifications

    settings = Settings()
    repo = DynamoRepository(settings)
    seen = {f"repo.{name}": outcome(getattr(repo, name), *args) for name, args in repository_calls().items()}
    seen |= {f"commit.{move}": outcome(repo.commit, t) for move, t in one_of_each().items()}
    store = R2Store.from_settings(settings)
    source = Path(__file__)
    seen["store.head"] = outcome(store.head, "k")
    seen["store.upload_file"] = outcome(store.upload_file, source, "k", "video/mp4")
    seen["store.delete_prefix"] = outcome(store.delete_prefix, "work/")
    seen["store.read"] = outcome(store.read, "k")
    seen["store.write"] = outcome(store.write, "k", b"{}", "application/json")
    seen["store.copy"] = outcome(store.copy, "k", "k2")
    seen["store.presign_upload"] = outcome(store.presign_upload, "k", "video/mp4", 1, 60)
    seen["store.presign_download"] = outcome(store.presign_download, "k", 60)
    seen["store.presign_part"] = outcome(store.presign_part, "k", "u", 1, 5 * 1024**2, 60)
    seen["store.start_multipart"] = outcome(store.start_multipart, "k", "video/mp4")
    seen["store.list_parts"] = outcome(store.list_parts, "k", "u")
    seen["store.complete_multipart"] = outcome(store.complete_multipart, "k", "u", [])
    seen["store.abort_multipart"] = outcome(store.abort_multipart, "k", "u")
    seen["queue.from_settings"] = outcome(
        SqsJobQueue.from_settings, settings.model_copy(update={"jobs_queue_url": ""})
    )
    queue = SqsJobQueue.from_settings(settings)
    seen["queue.send"] = outcome(queue.send, QueueMessage("j", "w", 1))
    seen |= payment_outcomes(settings)
    seen["limits.hit"] = outcome(DynamoRateLimiter(settings).hit, "k", 1, 60, utcnow())
    notes = DynamoNotifications(settings)
    seen["slots.claim"] = outcome(notes.claim_try_slot, "w", "h", utcnow(), utcnow(), 2)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
