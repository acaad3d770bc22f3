"""Test media made at test time with ffmpeg's lavfi sources: nothing binary lives in the repo.

Clips are tiny and encoded with x264 ultrafast so a whole suite of them costs seconds.
The ffmpeg binary is FFMPEG_PATH when set (so the Lambda layer's binaries can run the suite),
else `ffmpeg` on PATH.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
from pathlib import Path
from typing import Any


def ffmpeg_binary() -> str:
    return os.environ.get("FFMPEG_PATH") or "ffmpeg"


def ffprobe_binary() -> str:
    return os.environ.get("FFPROBE_PATH") or "ffprobe"


def make_clip(
    path: Path,
    seconds: float = 2.0,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    audio: bool = True,
    *,
    faststart: bool = False,
) -> Path:
    """An H.264 (+ AAC sine tone) MP4 of a moving test pattern. Moov at the end by default,
    like most camera files, so readers must seek."""
    video = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"
    args = [ffmpeg_binary(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", video]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-b:a", "64k"] if audio else ["-an"]
    if faststart:
        args += ["-movflags", "+faststart"]
    args += ["-shortest", str(path)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    return path


def make_portrait_clip(
    path: Path,
    seconds: float = 1.0,
    width: int = 1080,
    height: int = 1920,
    fps: int = 10,
    audio: bool = True,
    *,
    rotated: bool = False,
) -> Path:
    """A portrait clip. rotated=False: frames stored upright at width x height.

    rotated=True: what phones write: landscape frames (height x width) with a 90-degree
    display matrix in the track header, so players show width x height.
    """
    if not rotated:
        return make_clip(path, seconds, width, height, fps, audio)
    make_clip(path, seconds, height, width, fps, audio=False)
    _set_display_rotation_90(path)
    return path


def _set_display_rotation_90(path: Path) -> None:
    # ffmpeg 5.1 has no option to write a display matrix when encoding, so patch the tkhd
    # box's matrix in place (one video track: audio=False above).
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    if box < 0:
        raise ValueError(f"{path}: no tkhd box")
    version = data[box + 4]
    # version+flags, times/ids/duration (v0: 20 bytes, v1: 32), reserved 8, layer/group/volume/reserved 8
    offset = box + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    matrix = (0, 0x10000, 0, -0x10000 & 0xFFFFFFFF, 0, 0, 0, 0, 0x40000000)
    data[offset : offset + 36] = struct.pack(">9I", *matrix)
    path.write_bytes(data)


def make_raw_clip(path: Path, megabytes: int, width: int = 1280, height: int = 720, fps: int = 30) -> Path:
    """A short clip of uncompressed video (and PCM sound) in Matroska, about `megabytes` MB: a real
    video of upload size that costs nothing to make and little to transcode (a 300 MB one is
    about 7 s of 720p: under a second to write, a few to transcode)."""
    frame = width * height * 3 // 2  # yuv420p
    seconds = max(1.0, megabytes * 1_000_000 / (frame * fps))
    args = [ffmpeg_binary(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds:.3f}"]
    args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds:.3f}"]
    args += ["-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest", str(path)]
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    return path


def make_corrupt_file(path: Path, size: int = 64 * 1024, seed: int = 7) -> Path:
    """Random bytes behind the start of a real MP4 header: looks like a video, is not one."""
    rng = random.Random(seed)
    header = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
    path.write_bytes(header + rng.randbytes(size))
    return path


def make_text_file(path: Path) -> Path:
    """Plain text, whatever the file's name says."""
    path.write_text("This is a shopping list, not a video.\n- milk\n- eggs\n" * 20)
    return path


def make_truncated_clip(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first part of a real clip whose index is at the end: the moov atom is gone."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def probe_streams(path: Path) -> list[dict[str, Any]]:
    """ffprobe's view of a file's streams (codec_name, width, height, profile, side_data_list...)."""
    out = subprocess.run(
        [ffprobe_binary(), "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    return streams


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order, e.g. ['ftyp', 'moov', 'free', 'mdat']."""
    boxes = []
    with path.open("rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            header_size = 8
            if size == 1:  # 64-bit size follows
                size = struct.unpack(">Q", f.read(8))[0]
                header_size = 16
            boxes.append(kind.decode("latin-1"))
            if size == 0:  # box runs to the end of the file
                break
            f.seek(size - header_size, 1)
    return boxes


def make_long_form_clip(
    path: Path,
    seconds: float,
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    audio: bool = True,
    keyframe_every: float = 1.0,
    x264_params: str = "",
    variable_rate: bool = False,
    audio_codec: str = "aac",
    audio_channels: int = 1,
    sample_rate: int = 44100,
    timeout: float = 300,
) -> Path:
    """A source for the segmented path: keyframes every `keyframe_every` seconds, optional
    libx264 parameters (B-frames, open GOPs), optionally a variable frame rate (frames dropped
    irregularly, timestamps kept), audio in any encoder and channel count (the container follows
    the path's suffix)."""
    args = [ffmpeg_binary(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}:duration={seconds}"]
    if variable_rate:
        args += ["-vf", r"select='not(eq(mod(n\,7)\,3))*not(eq(mod(n\,11)\,5))'", "-fps_mode", "vfr"]
    gop = max(int(keyframe_every * fps), 1)
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(gop)]
    args += ["-keyint_min", str(gop), "-sc_threshold", "0"]
    if x264_params:
        args += ["-x264-params", x264_params]
    args += ["-c:a", audio_codec, "-b:a", "64k", "-ac", str(audio_channels)] if audio else ["-an"]
    args += ["-shortest", str(path)]
    # a long clip on a busy machine takes a while (ultrafast 1080p: about real time with 2 cores busy)
    subprocess.run(args, check=True, capture_output=True, timeout=max(timeout, 3 * seconds))
    return path


def stream_facts(path: Path) -> dict[str, dict[str, float]]:
    """Per stream type ('video', 'audio'): start time, duration and counted frames, by ffprobe."""
    out = subprocess.run(
        [
            ffprobe_binary(),
            "-v",
            "error",
            "-count_packets",
            "-print_format",
            "json",
            "-show_streams",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout
    facts: dict[str, dict[str, float]] = {}
    for stream in json.loads(out)["streams"]:
        facts.setdefault(
            stream["codec_type"],
            {
                "start": float(stream.get("start_time", 0)),
                "duration": float(stream.get("duration", 0)),
                "frames": float(stream.get("nb_read_packets", 0)),
            },
        )
    return facts


def ssim_per_frame(a: Path, b: Path) -> list[float]:
    """ffmpeg's ssim filter: each frame's 'All' SSIM of a against b, in display order."""
    args = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(a), "-i", str(b)]
    args += ["-lavfi", "[0:v][1:v]ssim=stats_file=-", "-f", "null", "-"]
    out = subprocess.run(args, check=True, capture_output=True, timeout=300, text=True).stdout
    return [
        float(part.split(":")[1])
        for line in out.splitlines()
        for part in line.split()
        if part.startswith("All:")
    ]


def make_black_start_clip(path: Path, black: float = 1.5, seconds: float = 4.0, fps: int = 10) -> Path:
    """A clip that opens on `black` seconds of black (a fade-in's first frames), then a test
    pattern: its first frame is no poster."""
    rest = seconds - black
    graph = (
        f"color=black:size=320x180:rate={fps}:duration={black}[b];"
        f"testsrc2=size=320x180:rate={fps}:duration={rest}[t];[b][t]concat=n=2:v=1:a=0[v]"
    )
    args = [ffmpeg_binary(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
    args += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    return path


HDR_TRANSFERS = {"hlg": "arib-std-b67", "pq": "smpte2084"}


def make_hdr_clip(path: Path, kind: str, seconds: float = 1.0, width: int = 320, height: int = 180) -> Path:
    """A 10-bit HEVC clip in BT.2020 with HLG or PQ, as recent phones record: the test pattern
    (SDR, BT.709, white at 100 nits) converted with zscale, tagged in the stream."""
    transfer = HDR_TRANSFERS[kind]
    to_hdr = (
        "format=yuv420p,setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,"
        f"zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt2020,zscale=t={transfer}:m=bt2020nc:r=tv:npl=100,"
        "format=yuv420p10le"
    )
    args = [ffmpeg_binary(), "-nostdin", "-y", "-hide_banner", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=10:duration={seconds}", "-vf", to_hdr]
    args += ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1"]
    args += ["-x265-params", f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"]
    args += [str(path)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    return path


def picture_stats(path: Path) -> dict[str, float]:
    """Mean luma (YAVG) and mean saturation (SATAVG) over every frame, 8-bit scale (signalstats)."""
    args = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path)]
    args += ["-vf", "format=yuv420p,signalstats,metadata=print:file=-", "-f", "null", "-"]
    out = subprocess.run(args, check=True, capture_output=True, timeout=120, text=True).stdout
    sums: dict[str, list[float]] = {"YAVG": [], "SATAVG": []}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in sums:
            sums[name].append(float(value))
    return {name: sum(values) / len(values) for name, values in sums.items() if values}


def first_packets(path: Path, stream: str = "v:0") -> list[dict[str, Any]]:
    """The first packets of a stream (pts_time, flags) in file order."""
    out = subprocess.run(
        [
            ffprobe_binary(),
            "-v",
            "error",
            "-select_streams",
            stream,
            "-read_intervals",
            "%+#3",
            "-show_entries",
            "packet=pts_time,flags",
            "-print_format",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    packets: list[dict[str, Any]] = json.loads(out).get("packets", [])
    return packets


def decodes(path: Path) -> str:
    """ffmpeg's complaints decoding the whole file ('' when it decodes cleanly)."""
    done = subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        timeout=120,
        text=True,
    )
    return done.stderr.strip() if done.returncode == 0 else done.stderr.strip() or f"exit {done.returncode}"
