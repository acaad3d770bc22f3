"""The pynamodb models: one per table, the keys and indexes infra/resources.yaml must match."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model


class _Base(Model):
    class Meta:
        abstract = True
        table_name = "unbound"
        region = "us-east-1"
        billing_mode = "PAY_PER_REQUEST"
        max_pool_connections = 50


class WorkspaceModel(_Base):
    class Meta(_Base.Meta):
        kind = "workspaces"

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    credits = NumberAttribute()
    createdAt = UTCDateTimeAttribute()
    retryPricing = UnicodeAttribute(null=True)  # an operator's override of RETRY_PRICING


class MemberModel(_Base):
    class Meta(_Base.Meta):
        kind = "members"

    userId = UnicodeAttribute(hash_key=True)
    workspaceId = UnicodeAttribute(range_key=True)
    role = UnicodeAttribute()
    email = UnicodeAttribute(default="")


class _JobsByWorkspace(GlobalSecondaryIndex["JobModel"]):
    class Meta:
        index_name = "by-workspace"
        projection = AllProjection()

    workspaceId = UnicodeAttribute(hash_key=True)
    createdKey = UnicodeAttribute(range_key=True)


class _JobsByWorkspaceStatus(GlobalSecondaryIndex["JobModel"]):
    class Meta:
        index_name = "by-workspace-status"
        projection = AllProjection()

    wsStatus = UnicodeAttribute(hash_key=True)
    createdKey = UnicodeAttribute(range_key=True)


class _JobsToSweep(GlobalSecondaryIndex["JobModel"]):
    """Sparse: only queued and processing jobs carry `sweepAt`."""

    class Meta:
        index_name = "to-sweep"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    sweepAt = UTCDateTimeAttribute(range_key=True)


class JobModel(_Base):
    class Meta(_Base.Meta):
        kind = "jobs"

    id = UnicodeAttribute(hash_key=True)
    workspaceId = UnicodeAttribute()
    status = UnicodeAttribute()
    wsStatus = UnicodeAttribute()
    createdKey = UnicodeAttribute()
    originalFilename = UnicodeAttribute()
    contentType = UnicodeAttribute()
    size = NumberAttribute()
    inputFileKey = UnicodeAttribute()
    outputFileKey = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    errorCode = UnicodeAttribute(null=True)
    createdAt = UTCDateTimeAttribute()
    updatedAt = UTCDateTimeAttribute()
    completedAt = UTCDateTimeAttribute(null=True)
    createdBy = UnicodeAttribute(default="")
    attempt = NumberAttribute(default=0)
    retryCount = NumberAttribute(default=0)
    progress = NumberAttribute(null=True)
    dispatchedAt = UTCDateTimeAttribute(null=True)
    resends = NumberAttribute(default=0)
    leaseUntil = UTCDateTimeAttribute(null=True)
    sweepAt = UTCDateTimeAttribute(null=True)
    # The segmented path, for the current attempt: the plan (JSON), how many tasks it has
    # (segments + audio), the tasks done (AUDIO_TASK for the audio), who stitches until when.
    segPlan = UnicodeAttribute(null=True)
    segTasks = NumberAttribute(null=True)
    segTotal = NumberAttribute(null=True)
    segDone = NumberSetAttribute(null=True)
    stitchUntil = UTCDateTimeAttribute(null=True)
    autoAttempts = NumberAttribute(default=0)
    nextAttemptAt = UTCDateTimeAttribute(null=True)
    chargedAttempt = NumberAttribute(default=0)

    by_workspace = _JobsByWorkspace()
    by_workspace_status = _JobsByWorkspaceStatus()
    to_sweep = _JobsToSweep()


class AttemptModel(_Base):
    class Meta(_Base.Meta):
        kind = "attempts"

    jobId = UnicodeAttribute(hash_key=True)
    n = NumberAttribute(range_key=True)
    trigger = UnicodeAttribute()
    creditsCharged = NumberAttribute()
    requestedBy = UnicodeAttribute(default="")
    queuedAt = UTCDateTimeAttribute()
    outcome = UnicodeAttribute()
    startedAt = UTCDateTimeAttribute(null=True)
    finishedAt = UTCDateTimeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    errorCode = UnicodeAttribute(null=True)
    stderrTail = UnicodeAttribute(null=True)
    plan = UnicodeAttribute(null=True)  # the segment plan in words, when the video was segmented
    refunded = BooleanAttribute(null=True)


class LedgerModel(_Base):
    class Meta(_Base.Meta):
        kind = "ledger"

    workspaceId = UnicodeAttribute(hash_key=True)
    entryKey = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    delta = NumberAttribute()
    reason = UnicodeAttribute()
    jobId = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(default="")
    createdAt = UTCDateTimeAttribute()


MODELS: tuple[type[_Base], ...] = (WorkspaceModel, MemberModel, JobModel, AttemptModel, LedgerModel)
IDEMPOTENCY_KIND = "idempotency"
