"""The deploy path's artefacts: the FFmpeg layer's own binaries transcode, and the packaged function
imports and builds its clients with nothing but what the package holds.

`make test` builds both first (`make cfn-lint` needs the package); here `make layer` / `make package`
are no-ops when their stamps are fresh, and build them otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.adapters.ffmpeg import FFmpegTranscoder
from tests.support.media import make_clip

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAYER_BIN = ROOT / "layers" / "ffmpeg" / "build" / "layer" / "bin"
PACKAGE = ROOT / "build" / "package" / "prod"


def _make(target: str) -> None:
    done = subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_layers_own_ffmpeg_and_ffprobe_transcode_a_one_second_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make("layer")
    ffmpeg, ffprobe = LAYER_BIN / "ffmpeg", LAYER_BIN / "ffprobe"
    monkeypatch.setenv("FFMPEG_PATH", str(ffmpeg))  # the clip itself is made by the layer's ffmpeg
    clip = make_clip(tmp_path / "in.mp4", seconds=1, width=1280, height=720, fps=25)
    out = tmp_path / "out.mp4"

    result = FFmpegTranscoder(str(ffmpeg), str(ffprobe), timeout_seconds=120).transcode(str(clip), out)

    assert (result.width, result.height) == (1280, 720)
    assert 0.9 <= result.duration_seconds <= 1.2
    probe = subprocess.run(
        [str(ffprobe), "-v", "error", "-print_format", "json", "-show_streams", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    codecs = sorted(s["codec_name"] for s in json.loads(probe.stdout)["streams"])
    assert codecs == ["aac", "h264"]


def test_the_packaged_function_imports_and_builds_its_clients_from_the_package_alone(
    tmp_path: Path,
) -> None:
    _make("package")
    with zipfile.ZipFile(PACKAGE / "deployment.zip") as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "task")
    assert not [n for n in names if n.startswith(("cli/", "devstack/", "tests/", "benchmarks/"))]
    # -S: no site-packages, so nothing outside the package can be imported (as on Lambda, less
    # the runtime's own boto3, which the package does not rely on).
    code = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
os.environ.update(AWS_DEFAULT_REGION="eu-west-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                  JOBS_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/000000000000/q")
import app
from chalicelib import bootstrap
from chalicelib.handlers import worker, sweeper
svc = bootstrap.services()
made = [type(svc.repo).__name__, type(svc.store).__name__, type(svc.queue).__name__,
        type(svc.transcoder).__name__]
pay = bootstrap.payment_services()
import stripe  # Stripe's library and the HTTP client it uses come with the package
client = stripe.StripeClient("sk_test_package", http_client=stripe.RequestsClient(timeout=1))
made += [type(pay.records).__name__, type(pay.provider).__name__, type(client).__name__]
assert stripe.__file__.startswith(sys.argv[1])
import boto3
print(json.dumps({"made": made, "boto3": boto3.__file__.startswith(sys.argv[1])}))
"""
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path / "task")],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "made": [
            "DynamoRepository",
            "R2Store",
            "SqsJobQueue",
            "FFmpegTranscoder",
            "DynamoPurchaseRecords",
            "StripeProvider",
            "StripeClient",
        ],
        "boto3": True,
    }
