"""The table of allowed status moves: which transition may take a job from which status to which.

Every job write in chalicelib.lifecycle.transitions takes its status guard from this table, so a
move that is not here cannot be committed, by the adapter or the fake (tests/integration/
test_contract.py enumerates it against both).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.domain import JobStatus

UPLOADING, QUEUED, PROCESSING = JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.PROCESSING
COMPLETED, FAILED, CANCELLED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED


class Move(StrEnum):
    CREATE = "create"  # a new job, waiting for its upload
    UPLOADED = "uploaded"  # its multipart upload's parts joined into the object: nothing to sweep
    EXPIRE_UPLOAD = "expire_upload"  # the sweeper: a multipart upload left unfinished past its expiry
    START = "start"  # charged 1 credit, its first attempt queued
    RETRY = "retry"  # a person's (or batch's, or operator's) retry of a failed job, priced
    UNDO = "undo"  # the message could not be sent: back to failed, the charge refunded
    DISPATCH = "dispatch"  # the sweeper sent the attempt's message again
    CLAIM = "claim"  # a worker takes the attempt (or one whose worker's lease ran out)
    PROGRESS = "progress"
    HEARTBEAT = "heartbeat"  # the worker's claim renewed
    PLAN = "plan"  # a long video's segment plan recorded
    FINISH_TASK = "finish_task"  # one segment task recorded done
    CLAIM_STITCH = "claim_stitch"
    RELEASE_STITCH = "release_stitch"
    COMPLETE = "complete"
    FAIL = "fail"  # final: the input's fault (paid), or the platform's after its tries (refunded)
    RESCHEDULE = "reschedule"  # a free automatic retry after the platform failed the attempt
    INTERRUPT = "interrupt"  # the sweeper settles an attempt whose worker's lease ran out
    GIVE_UP = "give_up"  # the message's last delivery failed: failed and refunded
    CANCEL = "cancel"  # a member stopped it: cancelled, its charge refunded
    REPLACE_INPUT = "replace_input"  # a new file announced for a failed job (a retry then takes it)
    PUBLISH = "publish"  # a long HLS video: more of its segments playable, in order
    # The upload of a finished job, under the workspace's retention: looked at again later, or
    # deleted (the job keeps its status and its output).
    EXPIRE_ORIGINAL = "expire_original"
    # Not job moves: the workspace's own transitions.
    OPEN_WORKSPACE = "open_workspace"
    ADD_MEMBER = "add_member"
    CREDITS = "credits"  # an operator's grant or adjustment
    PRICING = "pricing"  # an operator's RETRY_PRICING override
    PRESET = "preset"  # the workspace's default preset
    RETENTION = "retention"  # an owner's choice of how long uploads are kept after their job
    PURCHASE = "purchase"  # a paid Checkout session grants its pack's credits
    PURCHASE_REVERSAL = "purchase_reversal"  # a refund or a dispute takes them back


@dataclass(frozen=True)
class Row:
    sources: frozenset[JobStatus]
    targets: frozenset[JobStatus]
    lease: bool = False  # from processing only when the worker's lease ran out (or is the caller's)
    stays: bool = False  # the job keeps its status (each source is its own target)


def _row(sources: set[JobStatus], *targets: JobStatus, lease: bool = False, stays: bool = False) -> Row:
    return Row(frozenset(sources), frozenset(targets), lease, stays)


# Each job move: the statuses it may leave and the ones it may arrive at. CREATE has no source.
MOVES: dict[Move, Row] = {
    Move.CREATE: _row(set(), UPLOADING),
    Move.UPLOADED: _row({UPLOADING}, UPLOADING),
    Move.EXPIRE_UPLOAD: _row({UPLOADING}, FAILED),
    Move.START: _row({UPLOADING}, QUEUED),
    Move.RETRY: _row({FAILED}, QUEUED),
    Move.UNDO: _row({QUEUED}, FAILED),
    Move.DISPATCH: _row({QUEUED}, QUEUED),
    Move.CLAIM: _row({QUEUED, PROCESSING}, PROCESSING, lease=True),
    Move.PROGRESS: _row({PROCESSING}, PROCESSING),
    Move.HEARTBEAT: _row({PROCESSING}, PROCESSING),
    Move.PLAN: _row({PROCESSING}, PROCESSING),
    Move.FINISH_TASK: _row({PROCESSING}, PROCESSING),
    Move.CLAIM_STITCH: _row({PROCESSING}, PROCESSING),
    Move.RELEASE_STITCH: _row({PROCESSING}, PROCESSING),
    Move.COMPLETE: _row({PROCESSING}, COMPLETED),
    Move.FAIL: _row({PROCESSING}, FAILED),
    Move.RESCHEDULE: _row({PROCESSING}, QUEUED),
    Move.INTERRUPT: _row({PROCESSING}, QUEUED, FAILED, lease=True),
    Move.GIVE_UP: _row({QUEUED, PROCESSING}, FAILED, lease=True),
    Move.CANCEL: _row({UPLOADING, QUEUED, PROCESSING}, CANCELLED),
    Move.REPLACE_INPUT: _row({FAILED}, FAILED),
    Move.PUBLISH: _row({PROCESSING}, PROCESSING),
    Move.EXPIRE_ORIGINAL: _row({COMPLETED, CANCELLED}, COMPLETED, CANCELLED, stays=True),
}

FINAL = frozenset({COMPLETED, CANCELLED})  # no move leaves these (FAILED is left by RETRY)


def allowed(move: Move, source: JobStatus, target: JobStatus) -> bool:
    row = MOVES[move]
    return source in row.sources and target in row.targets and (not row.stays or source == target)
