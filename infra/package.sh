#!/usr/bin/env bash
# Package the app for one stage, offline and without AWS credentials:
#   the FFmpeg layer (make layer), `chalice package` with infra/chalice-merge.yaml, then
#   infra/finalize_template.py; prints the unzipped size of the worker's code + layer.
#
# Usage: infra/package.sh STAGE OUT_DIR     (make package STAGE=prod runs it)
#   PYTHON [.venv/bin/python]  CHALICE [.venv/bin/chalice]
# Writes OUT_DIR/sam.yaml and OUT_DIR/deployment.zip. A stage that .chalice/config.json does not
# define with its own IAM roles is refused (Chalice would package it with 60 s / 128 MB functions
# and a DefaultRole allowed on "*").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
STAGE="${1:?usage: infra/package.sh STAGE OUT_DIR}"
OUT="${2:?usage: infra/package.sh STAGE OUT_DIR}"
PYTHON="${PYTHON:-.venv/bin/python}"
CHALICE="${CHALICE:-.venv/bin/chalice}"
LAYER_DIR="layers/ffmpeg/build/layer"
# The AWS services the deployed code calls (DynamoDB through pynamodb, R2 through the S3 API,
# SQS, Secrets Manager through Powertools Parameters, SES v2 for the notifier's emails);
# tests/integration/test_iam_trace.py keeps the list true. botocore's models of the ~440 others
# are 18 MB of the package: they are left out.
BOTOCORE_SERVICES="dynamodb s3 sqs secretsmanager sesv2"
# Target for the worker's code + layer, unzipped (Lambda's hard limit is 250 MB).
TARGET_BYTES=$((200 * 1000 * 1000))
LAMBDA_UNZIPPED_LIMIT=$((250 * 1024 * 1024))

"$PYTHON" infra/finalize_template.py --check-stage "$STAGE"

# Packaging reads no account: a region is all botocore needs, and no credential is used.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
"$CHALICE" package --stage "$STAGE" --merge-template infra/chalice-merge.yaml "$OUT"
"$PYTHON" infra/finalize_template.py "$OUT/sam.yaml"

"$PYTHON" - "$OUT/deployment.zip" $BOTOCORE_SERVICES <<'PY'
import os, sys, zipfile

path, keep = sys.argv[1], set(sys.argv[2:])
tmp = path + ".tmp"
dropped = 0
with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        parts = info.filename.split("/")
        if parts[:2] == ["botocore", "data"] and len(parts) > 3 and parts[2] not in keep:
            dropped += info.file_size
            continue
        dst.writestr(info, src.read(info))
os.replace(tmp, path)
print(f"left out botocore models of unused services: {dropped / 1e6:.1f} MB")
PY

"$PYTHON" - "$OUT/deployment.zip" "$LAYER_DIR" "$TARGET_BYTES" "$LAMBDA_UNZIPPED_LIMIT" <<'PY'
import sys, zipfile
from pathlib import Path

code = sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist())
layer = sum(f.stat().st_size for f in Path(sys.argv[2]).rglob("*") if f.is_file())
target, limit = int(sys.argv[3]), int(sys.argv[4])
total = code + layer
print(
    f"unzipped: function {code / 1e6:.1f} MB + FFmpeg layer {layer / 1e6:.1f} MB = {total / 1e6:.1f} MB "
    f"(target {target / 1e6:.0f} MB, Lambda's limit {limit / 1e6:.1f} MB)"
)
if total >= limit:
    sys.exit("over Lambda's unzipped limit for a function and its layers")
PY
