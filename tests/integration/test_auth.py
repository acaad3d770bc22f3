"""Every route but /health needs a valid Cognito JWT; anything else is 401 with our error body."""

from __future__ import annotations

import gzip
import json
import os
import time
from typing import Any

import jwt
import moto
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.api import new_tenant
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


def moto_signing_key() -> Any:
    """moto signs every pool's tokens with this one key: used here to mint tokens it would issue."""
    path = os.path.join(os.path.dirname(moto.__file__), "cognitoidp", "resources", "jwks-private.json.gz")
    return RSAAlgorithm.from_jwk(json.dumps(json.loads(gzip.open(path).read())))


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def mint(claims: dict[str, Any], key: Any, kid: str) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def real_token(aws_stack: AwsStack, api_server: str) -> str:
    tenant = new_tenant(aws_stack, api_server)
    return str(tenant.api.token)


def status_of(api_server: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = requests.get(api_server + "/me", headers=headers, timeout=10)
    return r.status_code, r.json()


def test_a_real_token_is_accepted(api_server: str, real_token: str) -> None:
    assert status_of(api_server, f"Bearer {real_token}")[0] == 200


def test_an_access_token_of_the_web_client_is_accepted(aws_stack: AwsStack, api_server: str) -> None:
    tenant = new_tenant(aws_stack, api_server)
    access = aws_stack.sign_in(tenant.email)["AccessToken"]
    assert status_of(api_server, f"Bearer {access}")[0] == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c"],
    ids=["missing", "empty", "no-token", "blank-token", "basic-scheme", "garbage", "malformed"],
)
def test_missing_or_malformed_tokens_get_401(api_server: str, authorization: str | None) -> None:
    status, body = status_of(api_server, authorization)
    assert status == 401
    assert body["code"] == "UNAUTHORIZED" and body["message"]


def test_an_expired_token_gets_401_saying_so(api_server: str, real_token: str) -> None:
    claims = claims_of(real_token) | {"exp": int(time.time()) - 60, "iat": int(time.time()) - 3700}
    status, body = status_of(api_server, f"Bearer {mint(claims, moto_signing_key(), 'dummy')}")
    assert (status, body["code"]) == (401, "UNAUTHORIZED")
    assert "expired" in body["message"]


def test_a_forged_signature_gets_401(api_server: str, real_token: str) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(real_token)["kid"]
    status, body = status_of(api_server, f"Bearer {mint(claims_of(real_token), forger, kid)}")
    assert (status, body["code"]) == (401, "UNAUTHORIZED")


def test_a_tampered_payload_gets_401(api_server: str, real_token: str) -> None:
    header, _, signature = real_token.split(".")
    other = jwt.utils.base64url_encode(
        json.dumps(claims_of(real_token) | {"sub": "someone-else"}).encode()
    ).decode()
    assert status_of(api_server, f"Bearer {header}.{other}.{signature}")[0] == 401


@pytest.mark.parametrize(
    "change",
    [{"aud": "another-client"}, {"iss": "https://evil.example.com/pool"}, {"token_use": "refresh"}],
    ids=["wrong-audience", "wrong-issuer", "wrong-token-use"],
)
def test_a_validly_signed_token_for_another_client_or_issuer_gets_401(
    api_server: str, real_token: str, change: dict[str, str]
) -> None:
    claims = claims_of(real_token) | change
    assert status_of(api_server, f"Bearer {mint(claims, moto_signing_key(), 'dummy')}")[0] == 401


def test_health_and_openapi_need_no_token(api_server: str) -> None:
    assert requests.get(api_server + "/health", timeout=10).status_code == 200
    assert requests.get(api_server + "/openapi.json", timeout=10).status_code == 200
