"""DynamoDB stream records (as Lambda delivers them) to TableChanges of the service layer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.dynamodb.mapping import attempt_from, job_from
from chalicelib.adapters.dynamodb.models import AttemptModel, JobModel
from chalicelib.domain import Attempt, Job
from chalicelib.notifications.events import Balance, TableChange


def table_of(record: dict[str, Any]) -> str:
    """'jobs', 'attempts' or 'workspaces' from the stream ARN (…:table/{prefix}-{kind}/stream/…)."""
    arn = str(record.get("eventSourceARN", ""))
    table = arn.split(":table/", 1)[-1].split("/", 1)[0]
    return table.rsplit("-", 1)[-1]


def _image(kind: str, image: dict[str, Any] | None) -> Job | Attempt | Balance | None:
    if not image:
        return None
    if kind == "jobs":
        return job_from(JobModel.from_raw_data(image))
    if kind == "attempts":
        return attempt_from(AttemptModel.from_raw_data(image))
    threshold = image.get("lowCreditsThreshold", {}).get("N")
    return Balance(
        workspace_id=image["id"]["S"],
        credits=int(image["credits"]["N"]),
        low_threshold=int(threshold) if threshold is not None else None,
    )


def change_of(record: dict[str, Any]) -> TableChange | None:
    """The change a record describes; None for tables that make no events."""
    kind = table_of(record)
    if kind not in ("jobs", "attempts", "workspaces"):
        return None
    body = record["dynamodb"]
    stamp = body.get("ApproximateCreationDateTime")
    at = datetime.fromtimestamp(float(stamp), UTC) if stamp is not None else datetime.now(UTC)
    return TableChange(
        change_id=str(record["eventID"]),
        at=at,
        old=_image(kind, body.get("OldImage")),
        new=_image(kind, body.get("NewImage")),
    )
