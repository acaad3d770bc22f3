"""R2 keys read at run time from a Secrets Manager secret (Powertools Parameters), on the moto server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from pydantic import SecretStr

from chalicelib.adapters.r2 import R2Store, make_r2_client, r2_keys
from chalicelib.config import Settings
from chalicelib.errors import StorageError
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


@pytest.fixture
def secrets(aws_stack: AwsStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_stack.moto_url)
    parameters_base.DEFAULT_PROVIDERS.clear()  # its client must see the endpoint above
    yield aws_stack.client("secretsmanager")
    parameters_base.DEFAULT_PROVIDERS.clear()


def settings_for(secret_id: str) -> Settings:
    # The secret wins over keys in the environment.
    return Settings(
        r2_secret_id=secret_id, r2_access_key_id="from-env", r2_secret_access_key=SecretStr("env-secret")
    )


def test_the_secret_wins_over_environment_keys_and_the_client_uses_it(
    secrets: object, aws_stack: AwsStack
) -> None:
    name = f"vidproc/test/r2-{uuid.uuid4().hex[:8]}"
    value = {"accessKeyId": "AKIDFROMSECRET", "secretAccessKey": "s3cr3t-from-secret"}
    secrets.create_secret(Name=name, SecretString=json.dumps(value))  # type: ignore[attr-defined]
    settings = settings_for(name)
    assert r2_keys(settings) == ("AKIDFROMSECRET", "s3cr3t-from-secret")
    client = make_r2_client(settings)
    assert client._request_signer._credentials.access_key == "AKIDFROMSECRET"
    store = R2Store(client, aws_stack.env["R2_BUCKET"])
    assert store.head(f"uploads/none/{uuid.uuid4()}/source") is None  # the client works


def test_a_missing_or_malformed_secret_is_a_storage_error(secrets: object) -> None:
    with pytest.raises(StorageError, match="could not be read"):
        r2_keys(settings_for(f"vidproc/test/missing-{uuid.uuid4().hex[:8]}"))
    name = f"vidproc/test/bad-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=name, SecretString=json.dumps({"accessKeyId": "only-half"}))  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match="accessKeyId and secretAccessKey"):
        r2_keys(settings_for(name))


def test_without_a_secret_the_environment_keys_are_used() -> None:
    settings = Settings(r2_secret_id="", r2_access_key_id="AKIDENV", r2_secret_access_key=SecretStr("env"))
    assert r2_keys(settings) == ("AKIDENV", "env")
    assert r2_keys(Settings(r2_secret_id="", r2_access_key_id="")) is None
