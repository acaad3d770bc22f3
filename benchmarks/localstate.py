"""8. Keeping the local stack's state: what each way of making moto's services survive a restart
costs (the figures behind the choice in docs/local-stack.md).

Each measurement runs moto in a child process of its own (moto's backends are global to a
process, and this one runs the benchmarks' stack):

- `blobs` (what `make dev` uses, devstack.moto_state): the answer time of an S3 PUT and of an SQS
  SendMessage with the state saved before the answer, beside the same request on moto in memory;
  the restore at start; the state on disk; and an upload acknowledged just before a SIGKILL,
  found after it.
- `pickle-all`: the whole state, bytes included, pickled at once, as a save per change would be
  without blob files.
- `recorder`: moto's request recorder and its replay into a fresh server (time, and whether the
  ids a client holds survive).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.core import BenchResult, Context, Table

NAME = "localstate"
TITLE = "Local stack state across restarts"


def run(ctx: Context, res: BenchResult) -> None:
    objects, size = (5, 2_000_000) if ctx.quick else (20, 20_000_000)
    messages, users = (200, 20) if ctx.quick else (1000, 100)
    with tempfile.TemporaryDirectory(prefix="localstate-") as folder:
        base = Path(folder)
        args = [str(objects), str(size), str(messages), str(users)]
        memory = _child("latency", base / "none", *args)
        kept = _child("latency", base / "blobs", *args, "--state")
        restore = _child("restore", base / "blobs")
        crash = _child("crash", base / "crash")
        after_crash = _child("found", base / "crash")
        naive = _child("pickle-all", base / "naive", *args)
        recorder = _child("recorder", base / "recorder", str(min(objects, 5)), str(min(size, 1_000_000)))
    table = Table(
        f"{TITLE}: {objects} objects of {size / 1e6:.0f} MB, {messages} messages, {users} users",
        ["what", "in memory", "state kept (blobs)", "note"],
    )
    res.tables.append(table)
    table.add("S3 PUT of 1 MB, median ms", memory["put_ms"], kept["put_ms"], "saved before the answer")
    table.add("SQS SendMessage, median ms", memory["send_ms"], kept["send_ms"], "saved before the answer")
    table.add(
        "restore at start, ms", "-", restore["restore_ms"], f"services: {', '.join(restore['services'])}"
    )
    table.add("state on disk, MB", "-", kept["disk_mb"], f"objects {objects * size / 1e6:.0f} MB")
    table.add(
        "one save of everything with the bytes, ms", "-", naive["save_ms"], f"{naive['mb']:.0f} MB pickled"
    )
    table.add(
        "moto recorder: replay, s",
        "-",
        recorder["replay_s"],
        f"{recorder['requests']} requests, {recorder['mb']:.1f} MB log; "
        f"pool id kept: {recorder['same_pool']}",
    )
    res.check("an upload answered before a SIGKILL is there after it", after_crash["found"], str(after_crash))
    res.check("the state's services all restore", not restore["failed"], str(restore["failed"]))
    res.data.update(
        {
            "memory": memory,
            "kept": kept,
            "restore": restore,
            "naive": naive,
            "recorder": recorder,
            "crash": crash,
        }
    )


def _child(phase: str, folder: Path, *args: str) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "benchmarks.localstate", phase, str(folder), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if phase == "crash":
        return {"killed": done.returncode == -signal.SIGKILL}
    if not lines:
        raise RuntimeError(f"{phase} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


# --- the child processes ------------------------------------------------------------------------
def _server(folder: Path, state: bool) -> Any:
    from devstack.services import MotoServer, free_port

    return MotoServer(free_port(), state_dir=folder if state else None).start()


def _clients(url: str) -> dict[str, Any]:
    import boto3

    kw = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "t",
        "aws_secret_access_key": "t",
    }
    return {name: boto3.client(name, **kw) for name in ("s3", "sqs", "cognito-idp", "ses")}


def _populate(c: dict[str, Any], objects: int, size: int, messages: int, users: int) -> str:
    c["s3"].create_bucket(Bucket="bench-media")
    for i in range(objects):
        c["s3"].put_object(Bucket="bench-media", Key=f"uploads/{i}", Body=os.urandom(size))
    queue = str(c["sqs"].create_queue(QueueName="bench-jobs")["QueueUrl"])
    for i in range(messages):
        c["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps({"jobId": str(i)}))
    pool = c["cognito-idp"].create_user_pool(PoolName="bench")["UserPool"]["Id"]
    for i in range(users):
        c["cognito-idp"].admin_create_user(
            UserPoolId=pool, Username=f"u{i}@example.com", MessageAction="SUPPRESS"
        )
    return queue


def _median_ms(action: Any, n: int = 20) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 1)


def _latency(folder: Path, objects: int, size: int, messages: int, users: int, state: bool) -> dict[str, Any]:
    from devstack.moto_state import size_on_disk

    server = _server(folder, state)
    c = _clients(server.url)
    queue = _populate(c, objects, size, messages, users)
    body = os.urandom(1_000_000)
    put = _median_ms(lambda: c["s3"].put_object(Bucket="bench-media", Key="put", Body=body))
    send = _median_ms(lambda: c["sqs"].send_message(QueueUrl=queue, MessageBody="x"))
    server.stop()
    return {"put_ms": put, "send_ms": send, "disk_mb": round(size_on_disk(folder) / 1e6, 1)}


def _restore(folder: Path) -> dict[str, Any]:
    server = _server(folder, True)
    restored = server.restored
    server.stop()
    return {
        "restore_ms": round(restored.seconds * 1000, 1),
        "services": restored.services,
        "failed": restored.failed,
    }


def _crash(folder: Path) -> None:
    import requests

    server = _server(folder, True)
    c = _clients(server.url)
    c["s3"].create_bucket(Bucket="bench-media")
    url = c["s3"].generate_presigned_url("put_object", Params={"Bucket": "bench-media", "Key": "acked"})
    assert requests.put(url, data=b"video bytes", timeout=30).status_code == 200
    os.kill(os.getpid(), signal.SIGKILL)  # right after the answer: no save of ours runs after it


def _found(folder: Path) -> dict[str, Any]:
    server = _server(folder, True)
    body = _clients(server.url)["s3"].get_object(Bucket="bench-media", Key="acked")["Body"].read()
    server.stop()
    return {"found": body == b"video bytes"}


def _pickle_all(folder: Path, objects: int, size: int, messages: int, users: int) -> dict[str, Any]:
    import io

    from devstack.moto_state import SERVICES, BlobStore, _backends, _Pickler

    class WithTheBytes(_Pickler):
        """moto_state's pickler, except that an object's bytes go into the pickle (moto's own
        FakeKey.__getstate__)."""

        def reducer_override(self, obj: Any) -> Any:
            return NotImplemented if isinstance(obj, self.key_type) else super().reducer_override(obj)

    server = _server(folder, False)
    _populate(_clients(server.url), objects, size, messages, users)
    started = time.perf_counter()
    out = io.BytesIO()
    for service in SERVICES:
        WithTheBytes(out, BlobStore(folder)).dump([b.__dict__ for _, _, b in _backends(service)])
    (folder / "all.pickle").write_bytes(out.getvalue())
    seconds = time.perf_counter() - started
    server.stop()
    return {"save_ms": round(seconds * 1000), "mb": out.tell() / 1e6}


def _recorder(folder: Path, objects: int, size: int) -> dict[str, Any]:
    import requests

    log = folder / "recording.jsonl"
    os.environ.update({"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(log)})
    first = _server(folder, False)
    c = _clients(first.url)
    requests.post(f"{first.url}/moto-api/recorder/reset-recording", timeout=30)
    queue = _populate(c, objects, size, 100, 1)
    for _ in range(100):  # the idle polls a worker makes all day
        c["sqs"].receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    pool = c["cognito-idp"].list_user_pools(MaxResults=5)["UserPools"][0]["Id"]
    requests.post(f"{first.url}/moto-api/recorder/stop-recording", timeout=30)
    first.stop()
    from moto.core.base_backend import BackendDict

    BackendDict.reset()  # a fresh moto, as after a restart
    second = _server(folder, False)
    started = time.perf_counter()
    requests.post(f"{second.url}/moto-api/recorder/replay-recording", timeout=1800)
    replay = time.perf_counter() - started
    pools = [p["Id"] for p in _clients(second.url)["cognito-idp"].list_user_pools(MaxResults=5)["UserPools"]]
    second.stop()
    lines = log.read_text().count("\n")
    return {
        "replay_s": round(replay, 1),
        "requests": lines,
        "mb": log.stat().st_size / 1e6,
        "same_pool": pool in pools,
    }


def main(argv: list[str]) -> None:
    phase, folder, *rest = argv
    path = Path(folder)
    objects, size, messages, users = ([int(a) for a in rest if a.isdigit()] + [0, 0, 0, 0])[:4]
    if phase == "latency":
        print(json.dumps(_latency(path, objects, size, messages, users, state="--state" in rest)))
    elif phase == "restore":
        print(json.dumps(_restore(path)))
    elif phase == "crash":
        _crash(path)
    elif phase == "found":
        print(json.dumps(_found(path)))
    elif phase == "pickle-all":
        print(json.dumps(_pickle_all(path, objects, size, messages, users)))
    elif phase == "recorder":
        print(json.dumps(_recorder(path, objects, size)))


if __name__ == "__main__":
    main(sys.argv[1:])
