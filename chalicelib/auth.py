"""Bearer-token verification: Cognito JWTs checked with PyJWT against the pool's JWKS.

The JWKS URL, issuer and client id come from configuration, never from the token. Keys are
cached by PyJWKClient for `jwks_cache_seconds`. Both ID tokens (aud = client id) and access
tokens (client_id = client id) of the configured app client are accepted.

PyJWT (and the cryptography it loads) is imported by the first token to verify, not at import
time: a cold start does not pay 40 ms for it, and a request without a token never does.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from chalicelib.domain import Principal
from chalicelib.errors import ServiceUnavailableError, UnauthorizedError

if TYPE_CHECKING:
    from jwt import PyJWKClient

    from chalicelib.config import Settings

_ALGORITHMS = ["RS256"]


@cache
def _jwks_client(url: str, lifespan: int) -> PyJWKClient:
    from jwt import PyJWKClient

    return PyJWKClient(url, cache_keys=True, lifespan=lifespan, timeout=5)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise UnauthorizedError("Authentication required")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("The Authorization header must be 'Bearer <token>'")
    return token.strip()


def verify_token(token: str, settings: Settings) -> Principal:
    """The caller a valid token names; UnauthorizedError for anything else."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise UnauthorizedError("The token is malformed") from exc
    if header.get("alg") not in _ALGORITHMS or not header.get("kid"):
        raise UnauthorizedError("The token is not valid")
    key = _signing_key(token, settings)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=_ALGORITHMS,
            issuer=settings.issuer,
            options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as exc:
        raise UnauthorizedError("The token has expired. Please sign in again.") from exc
    except jwt.PyJWTError as exc:
        raise UnauthorizedError("The token is not valid") from exc
    _check_client(claims, settings.cognito_client_id)
    email = str(claims.get("email") or claims.get("username") or claims.get("cognito:username") or "")
    return Principal(user_id=str(claims["sub"]), email=email)


def _signing_key(token: str, settings: Settings) -> Any:
    import jwt

    client = _jwks_client(settings.jwks_url, settings.jwks_cache_seconds)
    try:
        return client.get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientConnectionError as exc:
        raise ServiceUnavailableError("Could not check the token. Try again shortly.") from exc
    except jwt.PyJWTError as exc:
        raise UnauthorizedError("The token is not valid") from exc


def _check_client(claims: dict[str, Any], client_id: str) -> None:
    use = claims.get("token_use")
    if use == "id":
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        ok = client_id in audiences
    elif use == "access":
        ok = claims.get("client_id") == client_id
    else:
        ok = False
    if not ok:
        raise UnauthorizedError("The token is not valid")
