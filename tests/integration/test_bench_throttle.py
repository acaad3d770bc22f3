"""The benchmark's throttling endpoint (benchmarks/throttle.py) in front of the moto server: what
boto3 and ffmpeg get through it is what moto holds (a whole object, a range, a write that
replaces its copy). Its pace is measured by `make bench`, never asserted here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.throttle import Proxy
from chalicelib.adapters.r2 import R2Store, make_r2_client
from chalicelib.config import Settings
from tests.support.stack import AwsStack

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoint(aws_stack: AwsStack, tmp_path: Path) -> Iterator[str]:
    proxy = Proxy(aws_stack.moto_url, rate=200e6, first_byte=0.0, folder=tmp_path)
    serving = threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True)
    serving.start()
    host, port = proxy.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_ranges_and_writes_pass_through_as_moto_has_them(
    aws_stack: AwsStack, endpoint: str, tmp_path: Path
) -> None:
    settings = Settings()
    store = R2Store(
        make_r2_client(settings.model_copy(update={"r2_endpoint_url": endpoint})), settings.r2_bucket
    )
    first, second = bytes(range(256)) * 1000, b"replaced" * 1000
    (tmp_path / "a").write_bytes(first)
    store.upload_file(tmp_path / "a", "tests/throttle/object", "application/octet-stream")

    assert b"".join(store.read_range("tests/throttle/object", 500, 1000)) == first[500:1500]
    assert store.head("tests/throttle/object") is not None
    (tmp_path / "b").write_bytes(second)
    store.upload_file(tmp_path / "b", "tests/throttle/object", "application/octet-stream")  # drops the copy
    assert b"".join(store.read_range("tests/throttle/object", 0, len(second))) == second
    store.download_file("tests/throttle/object", tmp_path / "c", len(second))
    assert (tmp_path / "c").read_bytes() == second
