"""Three ways to let ffmpeg start before the upload is all on disk, measured against each other.

The same parallel ranged reads (chalicelib.processing.streaming_input.Filling, 8 GETs of 8 MiB
through the throttling endpoint) feed ffmpeg, with the worker's own command line, by:

- `range server`: ffmpeg reads http://127.0.0.1:PORT/..., answered from the file as it fills
  (what the worker does: TRANSCODE_INPUT=stream). Any layout: a moov at the end is read first.
- `pipe`: a thread writes the bytes in order to ffmpeg's stdin. ffmpeg cannot seek a pipe, so
  only a file whose moov comes first (faststart) can be read this way.
- `growing file`: a thread appends the bytes in order to a file ffmpeg reads with the file
  protocol's `-follow 1` (a read at the end waits for more). ffmpeg cannot tell the end of a
  growing file from a pause: it stops after `-rw_timeout` without a new byte (0.5 s here).
  Holes cannot be skipped, so again only moov-first files.

The baseline is bare ffmpeg on the local file, interleaved round by round.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib.adapters.ffmpeg import render as rendering
from chalicelib.adapters.ffmpeg.process import FFmpegTranscoder
from chalicelib.config import Settings
from chalicelib.domain import DEFAULT_PRESET
from chalicelib.processing import streaming_input
from chalicelib.processing.streaming_input import Filling

GROWING_TIMEOUT_US = 500_000


def command(settings: Settings, probe_source: str, input_url: str, out: Path) -> list[str]:
    """The worker's own command line for the default preset (its ladder, the poster and the
    thumbnails from one decode: FFmpegTranscoder.render), writing into the directory `out`."""
    transcoder = FFmpegTranscoder.from_settings(settings)
    probe = transcoder.probe(probe_source, timeout=60)
    spec = transcoder.render_spec(probe, DEFAULT_PRESET)
    for directory in [out, *rendering.output_dirs(out, spec, probe.audio_stream is not None)]:
        directory.mkdir(parents=True, exist_ok=True)
    return rendering.render_args(settings.ffmpeg_path, input_url, out, spec)


def _run(args: list[str], **kwargs: Any) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, timeout=3600, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {done.stderr.decode(errors='replace')[-1500:]}")
    return time.perf_counter() - started


def bare(settings: Settings, clip: Path, out: Path) -> float:
    return _run(command(settings, str(clip), str(clip), out))


def range_server(settings: Settings, clip: Path, fetch: Any, size: int, work: Path, out: Path) -> float:
    args_for = command(settings, str(clip), "http://127.0.0.1:1/x", out)
    started = time.perf_counter()
    with streaming_input.opened(fetch, size, work / "stream.bin") as stream:
        stream.read_ahead()
        args = [stream.url if a == "http://127.0.0.1:1/x" else a for a in args_for]
        _run(args)
    return time.perf_counter() - started


def _sequential(filling: Filling, write: Callable[[bytes], None], done: Callable[[], None]) -> None:
    at = 0
    try:
        with filling.path.open("rb") as source:
            while at < filling.size:
                n = filling.available(at)
                source.seek(at)
                write(source.read(n))
                at += n
        done()
    except BrokenPipeError:
        pass  # ffmpeg stopped reading (it failed): its exit status says why


def pipe(settings: Settings, clip: Path, fetch: Any, size: int, work: Path, out: Path) -> float:
    args = command(settings, str(clip), "pipe:0", out)
    args[args.index("file")] = "pipe"  # the protocol whitelist
    started = time.perf_counter()
    filling = Filling(work / "pipe.bin", size, fetch)
    try:
        filling.read_ahead()
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert proc.stdin is not None

        def close() -> None:
            assert proc.stdin is not None
            proc.stdin.close()

        feeder = threading.Thread(target=_sequential, args=(filling, proc.stdin.write, close), daemon=True)
        feeder.start()
        # Not communicate(): it closes stdin at once, and ffmpeg would see the input end after the
        # first bytes. stdout goes nowhere, so reading stderr to its end cannot block the feed.
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        proc.wait(timeout=3600)
        feeder.join(timeout=10)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg (pipe) failed: {stderr.decode(errors='replace')[-1500:]}")
    finally:
        filling.close()
    return time.perf_counter() - started


def growing_file(settings: Settings, clip: Path, fetch: Any, size: int, work: Path, out: Path) -> float:
    growing = work / "growing.mp4"
    growing.write_bytes(b"")
    args = command(settings, str(clip), f"file:{growing}", out)
    at = args.index("-i")
    args[at:at] = ["-follow", "1", "-rw_timeout", str(GROWING_TIMEOUT_US)]
    started = time.perf_counter()
    filling = Filling(work / "fill.bin", size, fetch)
    try:
        filling.read_ahead()
        with growing.open("ab") as sink:

            def write(data: bytes) -> None:
                sink.write(data)
                sink.flush()

            feeder = threading.Thread(target=_sequential, args=(filling, write, lambda: None), daemon=True)
            feeder.start()
            _run(args)
            feeder.join(timeout=10)
    finally:
        filling.close()
    return time.perf_counter() - started


MECHANISMS = {"range server": range_server, "pipe": pipe, "growing file": growing_file}
