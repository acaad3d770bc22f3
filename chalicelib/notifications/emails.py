"""The emails' words: a subject, a plain-text part and an HTML part per event.

Links go to the dashboard (the job's card) and to the unsubscribe route; never to a presigned
URL, which would hand the video to whoever the email is forwarded to.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from chalicelib.notifications.domain import EventType, Mail


def job_link(dashboard_url: str, workspace_id: str, job_id: str) -> str:
    return f"{dashboard_url.rstrip('/')}/?workspace={quote(workspace_id)}#job-{quote(job_id)}"


def _lines(event: dict[str, Any], link: str) -> tuple[str, list[str]]:
    kind = EventType(event["type"])
    data = event["data"]
    job = data.get("job") or {}
    name = job.get("originalFilename", "your video")
    if kind == EventType.JOB_COMPLETED:
        return f"Your video is ready: {name}", [f"{name} was processed and is ready to download.", link]
    if kind == EventType.JOB_FAILED:
        error = data.get("error") or {}
        lines = [f"{name} could not be processed.", f"Error: {error.get('message') or 'Processing failed'}"]
        if error.get("suggestion"):
            lines.append(f"What you can do: {error['suggestion']}")
        return f"Processing failed: {name}", [*lines, link]
    if kind == EventType.JOB_CANCELLED:
        refunded = (data.get("cancel") or {}).get("creditsRefunded", 0)
        back = f" {refunded} credit came back." if refunded else ""
        return f"Cancelled: {name}", [f"{name} was cancelled.{back}", link]
    if kind == EventType.JOB_RETRIED:
        retry = data.get("retry") or {}
        credits = retry.get("creditsCharged", 0)
        return f"Retry queued: {name}", [f"{name} was queued again ({credits} credit).", link]
    if kind == EventType.CREDITS_LOW:
        return (
            f"Credits running low: {data['credits']} left",
            [f"Your workspace has {data['credits']} credits left (threshold {data['threshold']}).", link],
        )
    reason = data.get("reason", "")
    url = data.get("url", "")
    return "A webhook endpoint was disabled", [f"The endpoint {url} was disabled: {reason}", link]


def compose(event: dict[str, Any], to: str, dashboard_link: str, unsubscribe_link: str) -> Mail:
    subject, lines = _lines(event, dashboard_link)
    footer = "You get this email because of your notification settings."
    text = "\n\n".join([*lines, footer, f"Unsubscribe from these emails: {unsubscribe_link}"]) + "\n"
    body = "".join(
        f'<p><a href="{escape(line)}">Open the dashboard</a></p>'
        if line == dashboard_link
        else f"<p>{escape(line)}</p>"
        for line in lines
    )
    html = (
        "<!doctype html><html><body>"
        f'{body}<p style="color:#666">{escape(footer)} '
        f'<a href="{escape(unsubscribe_link)}">Unsubscribe</a></p></body></html>'
    )
    return Mail(to=to, subject=subject, text=text, html=html)
