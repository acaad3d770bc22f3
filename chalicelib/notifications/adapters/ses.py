"""The Mailer port on Amazon SES (SESv2 SendEmail): a plain-text and an HTML part."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings
from chalicelib.errors import ServiceUnavailableError
from chalicelib.notifications.domain import Mail


class SesMailer:
    def __init__(self, client: Any, sender: str) -> None:
        self._client = client
        self._sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> SesMailer:
        client = boto3.session.Session().client(
            "sesv2",
            region_name=settings.aws_region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10
            ),
        )
        return cls(client, settings.notify_email_from)

    def send(self, mail: Mail) -> None:
        content = {
            "Simple": {
                "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": mail.text, "Charset": "UTF-8"},
                    "Html": {"Data": mail.html, "Charset": "UTF-8"},
                },
            }
        }
        try:
            self._client.send_email(
                FromEmailAddress=self._sender, Destination={"ToAddresses": [mail.to]}, Content=content
            )
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailableError("Could not send the email") from exc
