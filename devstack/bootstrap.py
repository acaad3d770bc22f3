"""Create, idempotently, what the app expects to exist, and write the stack's environment.

On the moto server: the R2 bucket (with CORS for browser uploads), the jobs queue and its DLQ,
the Cognito user pool and web client, the notifications and webhook queues, the Stripe secret
(the stand-in's keys, in Secrets Manager as deployed). In DynamoDB Local: the tables. Then the
demo workspace and its owner. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError

from devstack import state_dir as default_state_dir

log = logging.getLogger(__name__)

DEMO_EMAIL = "alice@example.com"
DEMO_WORKSPACE_ID = "demo"
DEMO_WORKSPACE_NAME = "Demo workspace"
DEMO_CREDITS = 10

DUMMY_KEY = "testing"  # moto accepts any key; these never leave the machine
USER_POOL_NAME = "vidproc-users"
WEB_CLIENT_NAME = "vidproc-web"
# Lambda needs the queue's visibility timeout >= the worker's timeout (900 s), with a margin.
QUEUE_VISIBILITY_TIMEOUT = 960
MAX_RECEIVE_COUNT = 5
STRIPE_SECRET_NAME = "vidproc/local/stripe"  # what STRIPE_SECRET_ID names on the moto server


@dataclass(frozen=True)
class BootstrapResult:
    env: dict[str, str]
    demo_email: str | None
    demo_password: str | None
    stripe_keys: dict[str, str]  # {"apiKey", "webhookSecret"}: the stand-in checks and signs with them


# --- the stack's environment ----------------------------------------------------------------
def apply_env(env: Mapping[str, str]) -> None:
    """Make this process use the stack: set the variables, forget cached settings and adapters."""
    from chalicelib.bootstrap import reset

    os.environ.update(env)
    # The dummy keys must win: a profile from the developer's shell would fail if it is missing.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    reset()


def stack_env_path() -> Path:
    return default_state_dir() / "stack.env"


def write_stack_env(env: Mapping[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in sorted(env.items())]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# written by `python -m devstack`: the running local stack\n" + "\n".join(lines) + "\n")
    tmp.replace(path)


def read_stack_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key.strip()] = value.strip()
    return env


def load_stack_env(path: str | Path | None = None) -> dict[str, str]:
    """Put the running local stack's settings into os.environ (variables already set win).

    Returns what the file holds ({} when there is none: no stack has run here).
    """
    from chalicelib.config import reset_settings

    env_path = Path(path) if path is not None else stack_env_path()
    if not env_path.exists():
        return {}
    env = read_stack_env(env_path)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    reset_settings()
    return env


def base_env(moto_url: str, ddb_url: str, web_origin: str, region: str) -> dict[str, str]:
    """Everything but what only exists once created (queue URLs, pool and client ids)."""
    return {
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": ddb_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_COGNITO_IDP": moto_url,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_SESV2": moto_url,
        "AWS_ENDPOINT_URL_SES": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": ddb_url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
        "R2_ENDPOINT_URL": moto_url,
        "R2_ACCESS_KEY_ID": DUMMY_KEY,
        "R2_SECRET_ACCESS_KEY": DUMMY_KEY,
        "CORS_ALLOW_ORIGIN": web_origin,
        "DASHBOARD_URL": web_origin,
        # Local stack only: webhook endpoints on http://127.0.0.1 (the tests' receivers).
        "WEBHOOK_ALLOW_LOCAL": "true",
        "POWERTOOLS_SERVICE_NAME": "vidproc",
        "POWERTOOLS_METRICS_NAMESPACE": "vidproc",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


# --- moto: bucket, queues, user pool --------------------------------------------------------
def _client(service: str, endpoint: str, region: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
    )


def _origin_variants(origin: str) -> list[str]:
    """The web origin as 127.0.0.1 and as localhost: a person may open either."""
    parts = urlsplit(origin)
    variants = [origin]
    for a, b in (("127.0.0.1", "localhost"), ("localhost", "127.0.0.1")):
        if parts.hostname == a:
            variants.append(origin.replace(a, b, 1))
    return variants


def ensure_bucket(s3: Any, bucket: str, region: str, web_origin: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    # The browser PUTs the file straight to the presigned URL: a cross-origin request.
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": _origin_variants(web_origin),
                    "AllowedMethods": ["PUT", "GET", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )


def _ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError:
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def ensure_queues(sqs: Any, name: str) -> tuple[str, str]:
    """The jobs queue and its dead-letter queue: (queue URL, DLQ URL)."""
    dlq_url = _ensure_queue(sqs, f"{name}-dlq", {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = _ensure_queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT),
            "MessageRetentionPeriod": str(4 * 24 * 3600),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )
    return queue_url, dlq_url


def _find_user_pool(cognito: Any, name: str) -> str | None:
    for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == name:
                return str(pool["Id"])
    return None


def _find_client(cognito: Any, pool_id: str, name: str) -> str | None:
    for page in cognito.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool_id, MaxResults=60):
        for client in page["UserPoolClients"]:
            if client["ClientName"] == name:
                return str(client["ClientId"])
    return None


def ensure_user_pool(cognito: Any) -> tuple[str, str]:
    """The user pool and its web app client (no secret, USER_PASSWORD_AUTH): (pool id, client id)."""
    pool_id = _find_user_pool(cognito, USER_POOL_NAME)
    if pool_id is None:
        pool_id = cognito.create_user_pool(
            PoolName=USER_POOL_NAME,
            AutoVerifiedAttributes=["email"],
            Policies={
                "PasswordPolicy": {
                    "MinimumLength": 8,
                    "RequireUppercase": True,
                    "RequireLowercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": False,
                }
            },
        )["UserPool"]["Id"]
    client_id = _find_client(cognito, pool_id, WEB_CLIENT_NAME)
    if client_id is None:
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=WEB_CLIENT_NAME,
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
    return str(pool_id), str(client_id)


def _queue_with_dlq(sqs: Any, name: str) -> str:
    dlq_url = _ensure_queue(sqs, f"{name}-dlq", {"MessageRetentionPeriod": str(14 * 24 * 3600)})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return _ensure_queue(
        sqs,
        name,
        {
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "10"}),
        },
    )


def ensure_notifications(sqs: Any, ses: Any, events: str, webhooks: str, sender: str) -> tuple[str, str]:
    """The notifications queue and the webhook queue (each with its DLQ), and the SES sender
    identity (moto: verified at once): (notifications URL, webhook URL)."""
    urls = _queue_with_dlq(sqs, events), _queue_with_dlq(sqs, webhooks)
    ses.verify_email_identity(EmailAddress=sender)
    return urls


def signing_key(state_dir: Path) -> str:
    """The key that signs unsubscribe links: made once, kept beside the demo password."""
    path = state_dir / "notify-signing-key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def stripe_keys(state_dir: Path) -> dict[str, str]:
    """The local Stripe stand-in's API key and webhook signing secret: made once, kept beside the
    demo password (test-mode shapes; they mean nothing outside this machine)."""
    path = state_dir / "stripe-test-keys.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    keys = {
        "apiKey": f"sk_test_local_{secrets.token_hex(16)}",
        "webhookSecret": f"whsec_local_{secrets.token_hex(16)}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keys) + "\n")
    path.chmod(0o600)
    return keys


def ensure_stripe_secret(secretsmanager: Any, name: str, keys: Mapping[str, str]) -> str:
    """The secret STRIPE_SECRET_ID names, holding the keys (the app reads them from here at run
    time, as deployed: never from the environment)."""
    return ensure_secret(secretsmanager, name, keys)


def ensure_secret(secretsmanager: Any, name: str, keys: Mapping[str, str]) -> str:
    """A JSON secret in (moto's) Secrets Manager, created or updated: its name."""
    value = json.dumps(dict(keys))
    try:
        secretsmanager.put_secret_value(SecretId=name, SecretString=value)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        secretsmanager.create_secret(Name=name, SecretString=value)
    return name


VAPID_SECRET_NAME = "vidproc-local/vapid"


def vapid_keys(state_dir: Path) -> dict[str, str]:
    """The Web Push (VAPID) key pair: made once, kept beside the demo password, so browsers
    subscribed with its public key stay subscribed across restarts."""
    path = state_dir / "vapid-key.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    pair = {
        "privateKey": _b64url(key.private_numbers().private_value.to_bytes(32, "big")),
        "publicKey": _b64url(point),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pair) + "\n")
    path.chmod(0o600)
    return pair


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def ensure_vapid_secret(secrets_manager: Any, pair: dict[str, str]) -> str:
    """The key pair in (moto's) Secrets Manager, where the app reads it as deployed: its name."""
    return ensure_secret(secrets_manager, VAPID_SECRET_NAME, pair)


# --- the demo workspace ----------------------------------------------------------------------
def demo_password(state_dir: Path) -> str:
    """alice's password: made once, kept under .local/ so it stays the same across runs."""
    path = state_dir / "demo-password"
    if path.exists():
        return path.read_text().strip()
    password = f"Demo-{secrets.token_hex(6)}-Aa1"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def bootstrap(
    moto_url: str,
    ddb_url: str,
    web_origin: str,
    *,
    state_dir: Path | None = None,
    demo: bool = True,
    write_env: bool = True,
    stripe_url: str = "",
) -> BootstrapResult:
    """Create everything (idempotently), apply the stack's env to this process and return it.

    `stripe_url`: where the Stripe stand-in will listen (STRIPE_API_BASE); its keys go into the
    Stripe secret and come back in the result.

    `state_dir` (default: devstack.state_dir()) keeps the demo password and, when `write_env`,
    stack.env: the env as KEY=VALUE lines, which `load_stack_env` reads back.
    """
    state = state_dir or default_state_dir()
    from chalicelib.config import Settings

    names = Settings()  # names of the bucket, queue and tables: overridable like any setting
    region = names.aws_region
    env = base_env(moto_url, ddb_url, web_origin, region)
    env["R2_BUCKET"] = names.r2_bucket
    env["TABLE_PREFIX"] = names.table_prefix
    env["JOBS_QUEUE_NAME"] = names.jobs_queue_name

    ensure_bucket(_client("s3", moto_url, region), names.r2_bucket, region, web_origin)
    queue_url, dlq_url = ensure_queues(_client("sqs", moto_url, region), names.jobs_queue_name)
    pool_id, client_id = ensure_user_pool(_client("cognito-idp", moto_url, region))
    notifications_url, webhook_url = ensure_notifications(
        _client("sqs", moto_url, region),
        _client("ses", moto_url, region),
        names.notifications_queue_name,
        names.webhook_queue_name,
        names.notify_email_from,
    )
    keys = stripe_keys(state)
    stripe_secret = ensure_stripe_secret(
        _client("secretsmanager", moto_url, region), STRIPE_SECRET_NAME, keys
    )
    env.update(
        {
            "STRIPE_SECRET_ID": stripe_secret,
            "STRIPE_API_BASE": stripe_url,
            "JOBS_QUEUE_URL": queue_url,
            "JOBS_DLQ_URL": dlq_url,
            "NOTIFICATIONS_QUEUE_URL": notifications_url,
            "NOTIFICATIONS_QUEUE_NAME": names.notifications_queue_name,
            "WEBHOOK_QUEUE_URL": webhook_url,
            "WEBHOOK_QUEUE_NAME": names.webhook_queue_name,
            "NOTIFY_SIGNING_KEY": signing_key(state),
            # A secret's name, not the keys: the app reads them from Secrets Manager, as deployed.
            "VAPID_SECRET_ID": ensure_vapid_secret(
                _client("secretsmanager", moto_url, region), vapid_keys(state)
            ),
            "COGNITO_USER_POOL_ID": pool_id,
            "COGNITO_CLIENT_ID": client_id,
            # moto's tokens say this `iss`, as Cognito's do; their keys are served by moto itself.
            "COGNITO_ISSUER": f"https://cognito-idp.{region}.amazonaws.com/{pool_id}",
            "COGNITO_JWKS_URL": f"{moto_url}/{pool_id}/.well-known/jwks.json",
        }
    )
    apply_env(env)

    from chalicelib.adapters.dynamodb import create_tables

    create_tables()

    email = password = None
    if demo:
        from chalicelib.bootstrap import add_user

        email, password = DEMO_EMAIL, demo_password(state)
        add_user(
            email,
            DEMO_WORKSPACE_ID,
            role="owner",
            password=password,
            credits=DEMO_CREDITS,
            workspace_name=DEMO_WORKSPACE_NAME,
        )
    if write_env:
        write_stack_env(env, state / "stack.env")
    log.info("bootstrapped: queue %s, user pool %s", queue_url, pool_id)
    return BootstrapResult(env=env, demo_email=email, demo_password=password, stripe_keys=keys)
