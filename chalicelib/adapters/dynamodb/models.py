"""The pynamodb models: one per table, the keys and indexes infra/resources.yaml must match."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    NumberSetAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
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
        stream_view_type = "NEW_AND_OLD_IMAGES"  # credits.low comes from this stream

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    credits = NumberAttribute()
    createdAt = UTCDateTimeAttribute()
    retryPricing = UnicodeAttribute(null=True)  # an operator's override of RETRY_PRICING
    lowCreditsThreshold = NumberAttribute(null=True)  # credits.low; None: the default (2)
    preset = UnicodeAttribute(null=True)  # the preset uploads start with; None: the default
    keepOriginalsDays = NumberAttribute(null=True)  # uploads' retention; None: the deployment's
    activeJobs = NumberAttribute(null=True)  # jobs queued or processing; None (stored before): 0


class _MembersByWorkspace(GlobalSecondaryIndex["MemberModel"]):
    class Meta:
        index_name = "by-workspace"
        projection = AllProjection()

    workspaceId = UnicodeAttribute(hash_key=True)
    userId = UnicodeAttribute(range_key=True)


class MemberModel(_Base):
    class Meta(_Base.Meta):
        kind = "members"

    userId = UnicodeAttribute(hash_key=True)
    workspaceId = UnicodeAttribute(range_key=True)
    role = UnicodeAttribute()
    email = UnicodeAttribute(default="")
    emailEvents = ListAttribute(of=UnicodeAttribute, null=True)  # None: the defaults for the role
    # +1 at every change of emailEvents; an unsubscribe link names the version it was made at.
    # None (a member who never chose since it was kept): version 0.
    emailEventsVersion = NumberAttribute(null=True)
    pushEvents = ListAttribute(of=UnicodeAttribute, null=True)  # None: both job events

    by_workspace = _MembersByWorkspace()


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
    """Sparse: only queued and processing jobs, unfinished multipart uploads, and completed or
    cancelled jobs until the workspace's retention deleted their upload, carry `sweepAt`."""

    class Meta:
        index_name = "to-sweep"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    sweepAt = UTCDateTimeAttribute(range_key=True)


class JobModel(_Base):
    class Meta(_Base.Meta):
        kind = "jobs"
        stream_view_type = "NEW_AND_OLD_IMAGES"  # job.completed / job.failed come from this stream

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
    leaseOwner = UnicodeAttribute(null=True)  # whose claim the lease is (one token per delivery)
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
    creditsPaid = NumberAttribute(null=True)  # None: a job written before it was kept
    freeRetry = UnicodeAttribute(null=True)  # None: available
    preset = UnicodeAttribute(null=True)  # None: a job written before presets (mp4-720p)
    # What the completed attempt produced (chalicelib.domain.OutputFacts).
    outWidth = NumberAttribute(null=True)
    outHeight = NumberAttribute(null=True)
    outDuration = NumberAttribute(null=True)
    outSize = NumberAttribute(null=True)
    posterKey = UnicodeAttribute(null=True)
    thumbsKey = UnicodeAttribute(null=True)
    streamKey = UnicodeAttribute(null=True)
    hlsPublished = NumberAttribute(null=True)  # a long HLS video's playable video tasks
    # A new file announced for a failed job and not yet taken by a retry.
    pendingFilename = UnicodeAttribute(null=True)
    pendingContentType = UnicodeAttribute(null=True)
    pendingSize = NumberAttribute(null=True)
    originalDeletedAt = UTCDateTimeAttribute(null=True)  # the upload deleted under the retention
    uploadId = UnicodeAttribute(null=True)  # R2's multipart upload id (None: one presigned PUT)
    partSize = NumberAttribute(null=True)  # every part but the last, for a multipart upload

    by_workspace = _JobsByWorkspace()
    by_workspace_status = _JobsByWorkspaceStatus()
    to_sweep = _JobsToSweep()


class AttemptModel(_Base):
    class Meta(_Base.Meta):
        kind = "attempts"
        stream_view_type = "NEW_AND_OLD_IMAGES"  # job.retried comes from this stream

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
    preset = UnicodeAttribute(null=True)  # None: an attempt written before presets (mp4-720p)


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
    sessionId = UnicodeAttribute(null=True)  # a purchase or its reversal: the Checkout session
    paymentId = UnicodeAttribute(null=True)  # ... and Stripe's PaymentIntent


class PaymentModel(_Base):
    """Payments, one item per key, each written by the transaction that grants or takes back the
    credits: `event#<id>` (a provider's event, applied once), `session#<id>` (the purchase, with
    what has been taken back), `payment#<id>` (which session a payment paid for)."""

    class Meta(_Base.Meta):
        kind = "payments"

    id = UnicodeAttribute(hash_key=True)
    createdAt = UTCDateTimeAttribute()
    eventType = UnicodeAttribute(null=True)  # event#
    sessionId = UnicodeAttribute(null=True)  # payment#: the purchase it paid for
    workspaceId = UnicodeAttribute(null=True)  # session# (the rest too)
    pack = UnicodeAttribute(null=True)
    credits = NumberAttribute(null=True)
    amount = NumberAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    paymentId = UnicodeAttribute(null=True)
    buyer = UnicodeAttribute(null=True)
    eventId = UnicodeAttribute(null=True)
    reversedCredits = NumberAttribute(null=True)


class WebhookModel(_Base):
    """A workspace's webhook endpoint. The secrets sign deliveries; the API shows one only once."""

    class Meta(_Base.Meta):
        kind = "webhooks"

    workspaceId = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    url = UnicodeAttribute()
    eventTypes = ListAttribute(of=UnicodeAttribute)
    description = UnicodeAttribute(default="")
    secret = UnicodeAttribute()
    previousSecret = UnicodeAttribute(null=True)
    previousSecretUntil = UTCDateTimeAttribute(null=True)
    enabled = BooleanAttribute(default=True)
    disabledReason = UnicodeAttribute(null=True)
    failedStreak = NumberAttribute(default=0)  # deliveries in a row that ended failed
    createdAt = UTCDateTimeAttribute()
    createdBy = UnicodeAttribute(default="")


class DeliveryModel(_Base):
    """One event for one endpoint: its attempts so far and what comes next."""

    class Meta(_Base.Meta):
        kind = "deliveries"

    endpointId = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)  # {event time ms:013d}-{event id}: newest last, one per event
    workspaceId = UnicodeAttribute()
    eventId = UnicodeAttribute()
    eventType = UnicodeAttribute()
    payload = UnicodeAttribute()  # the exact JSON body every attempt sends
    status = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    firstTryAt = UTCDateTimeAttribute()
    nextTryAt = UTCDateTimeAttribute(null=True)
    lastTryAt = UTCDateTimeAttribute(null=True)
    lastResponseCode = NumberAttribute(null=True)
    lastError = UnicodeAttribute(null=True)
    expiresAt = TTLAttribute(null=True)


class SentEmailModel(_Base):
    """One email per (event, recipient): a redelivered event does not mail anyone twice."""

    class Meta(_Base.Meta):
        kind = "sent-emails"

    eventId = UnicodeAttribute(hash_key=True)
    recipient = UnicodeAttribute(range_key=True)
    expiresAt = TTLAttribute(null=True)


class LimitModel(_Base):
    """Short-lived counters and leases, each one item that expires: a webhook try slot of a
    workspace (`tries#{workspace}#{n}`: who holds it, until when) and a user's request count in
    one rate-limit window (`rate#{user}#{route group}#{window start}`)."""

    class Meta(_Base.Meta):
        kind = "limits"

    id = UnicodeAttribute(hash_key=True)
    holder = UnicodeAttribute(null=True)
    until = NumberAttribute(null=True)  # epoch seconds: a slot is free again after this
    hits = NumberAttribute(null=True)  # requests counted in the window
    expiresAt = TTLAttribute(null=True)


class PushSubscriptionModel(_Base):
    """One browser of a person subscribed to Web Push (notifications/push.py)."""

    class Meta(_Base.Meta):
        kind = "push-subscriptions"

    userId = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)  # from the endpoint: the same browser replaces itself
    endpoint = UnicodeAttribute()
    p256dh = UnicodeAttribute()
    auth = UnicodeAttribute()
    createdAt = UTCDateTimeAttribute()
    userAgent = UnicodeAttribute(default="")


IDEMPOTENCY_KIND = "idempotency"


class AnswerModel(_Base):
    """An Idempotency-Key's answer, written in the SAME transaction as the charge it answers for.

    The schema is the one Powertools' persistence layer used (key `id`, TTL on `expiration`), so
    the deployed table is unchanged. A refund after a failed send marks the record in the refund's
    own transaction: `released` (the whole request was undone: the key is free again) or the job id
    added to `refunded` (one job of a batch).
    """

    class Meta(_Base.Meta):
        kind = IDEMPOTENCY_KIND

    id = UnicodeAttribute(hash_key=True)
    target = UnicodeAttribute()
    response = UnicodeAttribute()  # the answer's JSON
    expiration = NumberAttribute()  # epoch seconds: the table's TTL attribute
    refunded = UnicodeSetAttribute(null=True)
    released = BooleanAttribute(null=True)


MODELS: tuple[type[_Base], ...] = (
    WorkspaceModel,
    MemberModel,
    JobModel,
    AttemptModel,
    LedgerModel,
    WebhookModel,
    DeliveryModel,
    SentEmailModel,
    PushSubscriptionModel,
    AnswerModel,
    LimitModel,
    PaymentModel,
)
STREAM_KINDS = ("jobs", "attempts", "workspaces")  # the tables whose changes become events
