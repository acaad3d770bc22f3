"""Cognito user pool users: create them, set their password, sign them in.

The operator CLI and the local stack use this; the API never signs anyone in (the browser
talks to Cognito itself). botocore errors become chalicelib.errors domain errors here.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, TypedDict

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings, get_settings
from chalicelib.errors import (
    DomainError,
    NotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
    ValidationError,
)


class Tokens(TypedDict):
    IdToken: str
    AccessToken: str
    ExpiresIn: int


@cache
def _client(region: str, endpoint_url: str | None) -> Any:
    # A session per client: boto3's default session is not thread-safe.
    return boto3.session.Session().client("cognito-idp", region_name=region, endpoint_url=endpoint_url)


def default_client() -> Any:
    """The cognito-idp client for the configured region (boto3's endpoint variables apply)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP") or os.environ.get("AWS_ENDPOINT_URL")
    return _client(get_settings().aws_region, endpoint or None)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: Exception) -> DomainError:
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or None
        if code in ("NotAuthorizedException", "UserNotFoundException", "PasswordResetRequiredException"):
            return UnauthorizedError("Incorrect email or password")
        if code in ("InvalidPasswordException", "InvalidParameterException"):
            return ValidationError(message)
        if code == "ResourceNotFoundException":
            return NotFoundError("The Cognito user pool or app client does not exist")
    return ServiceUnavailableError("Cognito is unavailable. Try again shortly.")


class CognitoUsers:
    """The users of one user pool. Pool, app client and boto3 client default to the settings."""

    def __init__(
        self,
        client: Any | None = None,
        user_pool_id: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self._client = client
        self._user_pool_id = user_pool_id
        self._client_id = client_id

    @classmethod
    def from_settings(cls, settings: Settings) -> CognitoUsers:
        return cls(user_pool_id=settings.cognito_user_pool_id, client_id=settings.cognito_client_id)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = default_client()
        return self._client

    @property
    def user_pool_id(self) -> str:
        return self._user_pool_id or get_settings().cognito_user_pool_id

    @property
    def client_id(self) -> str:
        return self._client_id or get_settings().cognito_client_id

    def ensure_user(self, email: str, password: str | None = None) -> str:
        """Create the user (email verified, no invitation) or keep the existing one; return its `sub`.

        When a password is given it becomes the user's permanent password, new user or not.
        """
        try:
            try:
                created = self.client.admin_create_user(
                    UserPoolId=self.user_pool_id,
                    Username=email,
                    UserAttributes=[
                        {"Name": "email", "Value": email},
                        {"Name": "email_verified", "Value": "true"},
                    ],
                    MessageAction="SUPPRESS",
                )
                attributes = created["User"].get("Attributes", [])
            except ClientError as exc:
                if _error_code(exc) != "UsernameExistsException":
                    raise
                attributes = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=email)[
                    "UserAttributes"
                ]
            if password is not None:
                self.client.admin_set_user_password(
                    UserPoolId=self.user_pool_id, Username=email, Password=password, Permanent=True
                )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc
        sub = _attribute(attributes, "sub")
        if sub is None:  # Cognito always sets it; a user without one is a broken pool
            raise ServiceUnavailableError("Cognito returned a user without a sub")
        return sub

    def user_id_of(self, email: str) -> str | None:
        """The user's `sub`, or None when there is no such user."""
        try:
            user = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=email)
        except ClientError as exc:
            if _error_code(exc) == "UserNotFoundException":
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        return _attribute(user.get("UserAttributes", []), "sub")

    def sign_in(self, email: str, password: str) -> Tokens:
        """USER_PASSWORD_AUTH, as the web client does: the id and access tokens and their lifetime."""
        try:
            response = self.client.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": email, "PASSWORD": password},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc
        result = response.get("AuthenticationResult")
        if not result:  # a challenge (NEW_PASSWORD_REQUIRED, MFA): not a state this service creates
            raise UnauthorizedError(f"Sign-in needs a challenge: {response.get('ChallengeName', 'unknown')}")
        return Tokens(
            IdToken=result["IdToken"], AccessToken=result["AccessToken"], ExpiresIn=int(result["ExpiresIn"])
        )


def _attribute(attributes: list[dict[str, str]], name: str) -> str | None:
    for attribute in attributes:
        if attribute.get("Name") == name:
            return attribute.get("Value")
    return None
