"""FFmpegTranscoder against the real ffmpeg/ffprobe, on clips generated at test time.

The input is read as a local path and, like the worker does with a presigned R2 URL, over
HTTP(S) from a small Range-capable server on 127.0.0.1. FFMPEG_PATH / FFPROBE_PATH choose the
binaries (default: on PATH), so the same suite checks the Lambda layer's build.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from chalicelib.adapters.ffmpeg import FFmpegTranscoder, mp4index
from chalicelib.errors import (
    DownloadError,
    FFmpegNotFoundError,
    InvalidVideoError,
    TranscodeFailedError,
    TranscodeTimeoutError,
)
from tests.support.media import (
    ffmpeg_binary,
    ffprobe_binary,
    make_clip,
    make_corrupt_file,
    make_portrait_clip,
    make_text_file,
    make_truncated_clip,
    probe_streams,
    top_level_boxes,
)

pytestmark = pytest.mark.integration


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _ffmpeg_installed() -> None:
    for binary in (ffmpeg_binary(), ffprobe_binary()):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} not found: install ffmpeg or set FFMPEG_PATH/FFPROBE_PATH")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clips(media_dir: Path) -> dict[str, Path]:
    """Every input clip, made once per module (about 2 s in all)."""
    return {
        "640x360": make_clip(media_dir / "640x360.mp4", seconds=1.0, width=640, height=360, fps=10),
        "1280x720": make_clip(media_dir / "1280x720.mp4", seconds=1.0, width=1280, height=720, fps=10),
        "1920x1080": make_clip(media_dir / "1920x1080.mp4", seconds=4.0, width=1920, height=1080, fps=25),
        "portrait": make_portrait_clip(media_dir / "portrait.mp4", seconds=1.0, width=1080, height=1920),
        "rotated": make_portrait_clip(media_dir / "rotated.mov", seconds=1.0, rotated=True),
        "silent": make_clip(media_dir / "silent.mp4", seconds=1.0, fps=10, audio=False),
        "corrupt": make_corrupt_file(media_dir / "corrupt.mp4"),
        "text": make_text_file(media_dir / "notes.txt"),
        "text_as_mp4": make_text_file(media_dir / "notes.mp4"),
    }


def transcoder(**overrides: object) -> FFmpegTranscoder:
    options: dict = {
        "ffmpeg_path": ffmpeg_binary(),
        "ffprobe_path": ffprobe_binary(),
        "timeout_seconds": 120,
        "progress_interval_seconds": 0.0,
    } | overrides
    return FFmpegTranscoder(**options)


class RangeHandler(BaseHTTPRequestHandler):
    """Serves files from `root` with single-range support, as R2 does for a presigned GET."""

    root: Path

    def do_GET(self) -> None:
        path = self.root / unquote(urlsplit(self.path).path).lstrip("/")
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        size = path.stat().st_size
        start, end = self._range(size)
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(206 if "Range" in self.headers else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if "Range" in self.headers:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        with path.open("rb") as f:
            f.seek(start)
            remaining = end - start + 1
            try:
                while remaining > 0 and (chunk := f.read(min(65536, remaining))):
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # ffmpeg drops a connection when it seeks elsewhere

    def _range(self, size: int) -> tuple[int, int]:
        header = self.headers.get("Range", "")
        if not header.startswith("bytes="):
            return 0, size - 1
        first, _, last = header[len("bytes=") :].split(",")[0].partition("-")
        if not first:  # suffix range: the last N bytes
            return max(size - int(last), 0), size - 1
        return int(first), min(int(last), size - 1) if last else size - 1

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    handler = type("Handler", (RangeHandler,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def http_base(clips: dict[str, Path], media_dir: Path) -> Iterator[str]:
    yield from serve(media_dir)


@pytest.fixture(scope="module")
def https_base(
    clips: dict[str, Path], media_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    certs = tmp_path_factory.mktemp("tls")
    key, cert = certs / "key.pem", certs / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from serve(media_dir, tls=context)


def video_and_audio(path: Path) -> tuple[dict, dict | None]:
    streams = probe_streams(path)
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next((s for s in streams if s["codec_type"] == "audio"), None)
    return video, audio


# --- output format and size ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("clip", "size"),
    [
        ("1280x720", (1280, 720)),
        ("1920x1080", (1280, 720)),
        ("640x360", (640, 360)),
        ("portrait", (720, 1280)),
    ],
)
def test_transcode_writes_browser_playable_h264_aac_bounded_at_720p(clips, tmp_path, clip, size):
    output = tmp_path / "out.mp4"

    result = transcoder().transcode(str(clips[clip]), output)

    video, audio = video_and_audio(output)
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert audio is not None and audio["codec_name"] == "aac"
    assert (video["width"], video["height"]) == size
    assert (result.width, result.height) == size
    assert result.duration_seconds == pytest.approx(4.0 if clip == "1920x1080" else 1.0, abs=0.15)
    assert result.elapsed_seconds > 0


def test_phone_video_with_rotation_comes_out_upright_portrait(clips, tmp_path):
    # GIVEN landscape frames with a 90-degree display matrix, as a phone writes them
    output = tmp_path / "out.mp4"

    result = transcoder().transcode(str(clips["rotated"]), output)

    # THEN the output is stored upright, short side 720, and carries no rotation any more
    video, _ = video_and_audio(output)
    assert (video["width"], video["height"]) == (720, 1280) == (result.width, result.height)
    rotations = [d.get("rotation", 0) for d in video.get("side_data_list", [])]
    assert not any(rotations)


# --- what was written, read from the output's own index -------------------------------------
def make_odd_sized_clip(path: Path) -> Path:
    """641x361 (4:4:4, MP3 audio): the 720p rule rounds it to 640x360 with a non-square sample
    aspect ratio, so the track header's display width (639.2) is not the coded width (640)."""
    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-y", "-v", "error"]
        + ["-f", "lavfi", "-i", "testsrc=size=641x361:rate=10:d=1"]
        + ["-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-preset", "ultrafast"]
        + ["-pix_fmt", "yuv444p", "-c:a", "libmp3lame", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def ffprobe_facts(path: Path) -> tuple[int, int, float]:
    info = transcoder().probe(str(path), timeout=30)
    return info.width, info.height, info.duration_seconds or 0.0


@pytest.mark.parametrize("clip", ["640x360", "portrait", "rotated", "silent", "odd"])
def test_the_outputs_size_and_duration_are_read_from_its_index_as_ffprobe_reads_them(
    clips, media_dir, tmp_path, clip
):
    # GIVEN sources of every shape: landscape, portrait, rotated by a display matrix, silent,
    # and an odd size whose output has a non-square sample aspect ratio
    source = make_odd_sized_clip(media_dir / "odd.mov") if clip == "odd" else clips[clip]
    output = tmp_path / "out.mp4"

    result = transcoder().transcode(str(source), output)

    # THEN the index says what ffprobe says, and the transcode reports exactly that
    facts = mp4index.movie_facts(str(output))
    assert facts is not None
    assert facts == ffprobe_facts(output) == (result.width, result.height, result.duration_seconds)
    if clip == "odd":  # the case where the track header's display size would have been wrong
        video, _ = video_and_audio(output)
        assert video["sample_aspect_ratio"] != "1:1"


def test_when_the_outputs_index_cannot_be_read_ffprobe_says_what_was_written(clips, tmp_path, monkeypatch):
    monkeypatch.setattr(mp4index, "movie_facts", lambda path: None)
    output = tmp_path / "out.mp4"

    result = transcoder().transcode(str(clips["portrait"]), output)

    assert (result.width, result.height, result.duration_seconds) == ffprobe_facts(output)
    assert (result.width, result.height) == (720, 1280)


@pytest.mark.parametrize("clip", ["corrupt", "text_as_mp4", "truncated", "missing"])
def test_a_file_whose_index_does_not_say_has_no_movie_facts(clips, tmp_path, clip):
    paths = {
        "truncated": make_truncated_clip(clips["640x360"], tmp_path / "cut.mp4"),  # moov was at the end
        "missing": tmp_path / "nothing.mp4",
    }
    assert mp4index.movie_facts(str(paths.get(clip) or clips[clip])) is None


def test_a_fragmented_mp4_has_no_movie_facts(clips, tmp_path):
    fragmented = tmp_path / "fragmented.mp4"
    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-y", "-v", "error", "-i", str(clips["640x360"]), "-c", "copy"]
        + ["-movflags", "frag_keyframe+empty_moov", str(fragmented)],
        check=True,
        capture_output=True,
    )
    assert mp4index.movie_facts(str(fragmented)) is None


def test_output_index_comes_before_media_data_for_progressive_playback(clips, tmp_path):
    output = tmp_path / "out.mp4"

    transcoder().transcode(str(clips["640x360"]), output)

    boxes = top_level_boxes(output)
    assert boxes.index("moov") < boxes.index("mdat")
    assert top_level_boxes(clips["640x360"]).index("moov") > top_level_boxes(clips["640x360"]).index("mdat")


def test_video_without_audio_succeeds_with_video_only(clips, tmp_path):
    output = tmp_path / "out.mp4"

    result = transcoder().transcode(str(clips["silent"]), output)

    video, audio = video_and_audio(output)
    assert audio is None
    assert video["codec_name"] == "h264"
    assert (result.width, result.height) == (640, 360)


def test_progress_reports_increasing_fractions_ending_at_one(clips, tmp_path):
    reports: list[float] = []

    transcoder().transcode(str(clips["1920x1080"]), tmp_path / "out.mp4", on_progress=reports.append)

    assert reports, "no progress reported"
    assert all(0 < value <= 1 for value in reports)
    assert reports == sorted(set(reports)), f"not strictly increasing: {reports}"
    assert reports[-1] == 1.0
    assert any(value < 1 for value in reports), f"only the final report arrived: {reports}"


def test_progress_is_throttled_to_about_once_per_second(clips, tmp_path):
    reports: list[float] = []

    result = transcoder(progress_interval_seconds=1.0).transcode(
        str(clips["1920x1080"]), tmp_path / "out.mp4", on_progress=reports.append
    )

    assert len(reports) <= result.elapsed_seconds + 2  # one per second, plus the final 1.0
    assert reports[-1] == 1.0


# --- over HTTP, as the worker reads a presigned R2 URL -----------------------------------------
def test_transcode_reads_the_input_over_http_with_moov_at_the_end(clips, http_base, tmp_path):
    output = tmp_path / "out.mp4"

    result = transcoder().transcode(f"{http_base}/1920x1080.mp4?X-Amz-Signature=s3cr3t", output)

    assert (result.width, result.height) == (1280, 720)
    assert top_level_boxes(output).index("moov") < top_level_boxes(output).index("mdat")


def test_transcode_reads_the_input_over_https(clips, https_base, tmp_path):
    result = transcoder().transcode(f"{https_base}/640x360.mp4", tmp_path / "out.mp4")

    assert (result.width, result.height) == (640, 360)


def test_missing_object_is_a_download_error_without_the_signature(http_base, tmp_path):
    output = tmp_path / "out.mp4"

    with pytest.raises(DownloadError) as caught:
        transcoder().transcode(f"{http_base}/gone.mp4?X-Amz-Signature=s3cr3t", output)

    assert caught.value.message == "Failed to download from R2"
    assert caught.value.code == "R2_DOWNLOAD_FAILED"
    assert "404" in caught.value.detail
    assert "s3cr3t" not in caught.value.detail
    assert not output.exists()


def test_refused_connection_is_a_download_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens

    with pytest.raises(DownloadError) as caught:
        transcoder().transcode(f"http://127.0.0.1:{port}/in.mp4", tmp_path / "out.mp4")

    assert "Connection refused" in caught.value.detail


def test_corrupt_file_over_http_is_an_invalid_video(clips, http_base, tmp_path):
    with pytest.raises(InvalidVideoError):
        transcoder().transcode(f"{http_base}/corrupt.mp4", tmp_path / "out.mp4")


# --- unreadable inputs -----------------------------------------------------------------------
@pytest.mark.parametrize("clip", ["corrupt", "text", "text_as_mp4"])
def test_not_a_video_is_an_invalid_video_with_stderr_in_detail(clips, tmp_path, clip):
    output = tmp_path / "out.mp4"

    with pytest.raises(InvalidVideoError) as caught:
        transcoder().transcode(str(clips[clip]), output)

    error = caught.value
    assert error.message == "The file is not a readable video"
    assert error.code == "INVALID_VIDEO"
    assert error.detail.startswith("ffprobe exit 1: ")
    assert any(
        line in error.detail for line in ("Invalid data found", "moov atom not found", "not on whitelist")
    )
    assert "Invalid data" not in error.message
    assert not output.exists()


def test_truncated_upload_is_an_invalid_video(clips, tmp_path):
    truncated = make_truncated_clip(clips["1280x720"], tmp_path / "truncated.mp4")

    with pytest.raises(InvalidVideoError) as caught:
        transcoder().transcode(str(truncated), tmp_path / "out.mp4")

    assert "moov atom not found" in caught.value.detail


def test_playlist_disguised_as_video_is_rejected_before_reading_other_files(tmp_path):
    # An HLS playlist named .mp4 would make an unrestricted ffmpeg read local files.
    playlist = tmp_path / "evil.mp4"
    playlist.write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n/etc/passwd\n#EXT-X-ENDLIST\n")

    with pytest.raises(InvalidVideoError) as caught:
        transcoder().transcode(str(playlist), tmp_path / "out.mp4")

    assert "whitelist" in caught.value.detail or "Invalid data" in caught.value.detail


def test_audio_only_file_is_an_invalid_video(tmp_path):
    audio = tmp_path / "song.m4a"
    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", str(audio)],
        check=True,
    )

    with pytest.raises(InvalidVideoError):
        transcoder().transcode(str(audio), tmp_path / "out.mp4")


# --- the environment fails -------------------------------------------------------------------
def test_missing_ffmpeg_binary_is_ffmpeg_not_found(clips, tmp_path):
    with pytest.raises(FFmpegNotFoundError) as caught:
        transcoder(ffmpeg_path=str(tmp_path / "no-ffmpeg")).transcode(
            str(clips["640x360"]), tmp_path / "o.mp4"
        )

    assert caught.value.message == "FFmpeg not found"
    assert caught.value.code == "FFMPEG_NOT_FOUND"


def test_missing_ffprobe_binary_is_ffmpeg_not_found(clips, tmp_path):
    with pytest.raises(FFmpegNotFoundError):
        transcoder(ffprobe_path=str(tmp_path / "no-ffprobe")).transcode(
            str(clips["640x360"]), tmp_path / "o.mp4"
        )


def test_transcode_over_the_time_limit_is_stopped_and_its_output_removed(clips, tmp_path):
    # GIVEN a slow preset on a 4 s 1080p clip (several seconds of work) and a 1 s limit
    output = tmp_path / "out.mp4"
    output.write_bytes(b"left over from an earlier attempt")
    slow = transcoder(timeout_seconds=1, preset="veryslow")

    # WHEN it runs
    with pytest.raises(TranscodeTimeoutError) as caught:
        slow.transcode(str(clips["1920x1080"]), output)

    # THEN it stops at the limit, says so, and leaves no partial output
    assert caught.value.message == "Processing took longer than 1 second and was stopped"
    assert caught.value.code == "TRANSCODE_TIMEOUT"
    assert not output.exists()
    assert not list(tmp_path.glob("*.mp4"))


def test_a_probe_cut_off_by_the_time_limit_is_the_time_limit_not_a_bad_file(clips, tmp_path):
    # GIVEN an ffprobe slower than the whole transcode's limit (a loaded machine, say)
    slow_probe = tmp_path / "ffprobe"
    slow_probe.write_text(f'#!/bin/sh\nsleep 3\nexec {ffprobe_binary()} "$@"\n')
    slow_probe.chmod(0o755)
    limited = transcoder(ffprobe_path=str(slow_probe), timeout_seconds=1)

    # WHEN it runs THEN the transcode ran out of time (the platform's clock, never "not a video")
    with pytest.raises(TranscodeTimeoutError) as caught:
        limited.transcode(str(clips["640x360"]), tmp_path / "out.mp4")
    assert caught.value.message == "Processing took longer than 1 second and was stopped"
    assert not list(tmp_path.glob("*.mp4"))

    # ... while a probe bounded by its own limit, not the transcode's, still blames the file
    with pytest.raises(InvalidVideoError):
        transcoder(ffprobe_path=str(slow_probe), probe_timeout_seconds=1).transcode(
            str(clips["640x360"]), tmp_path / "out.mp4"
        )


def test_a_failing_progress_callback_stops_ffmpeg_and_removes_the_output(clips, tmp_path):
    output = tmp_path / "out.mp4"

    def lease_lost(fraction: float) -> None:
        raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        transcoder().transcode(str(clips["1920x1080"]), output, on_progress=lease_lost)

    assert not output.exists()


def test_chatty_failing_ffmpeg_cannot_deadlock_and_only_its_stderr_tail_is_kept(clips, tmp_path):
    # GIVEN an "ffmpeg" that writes 2 MB to stderr (far beyond a pipe's buffer), then fails
    chatty = tmp_path / "chatty-ffmpeg"
    chatty.write_text(
        "#!/bin/sh\nhead -c 2000000 /dev/zero | tr '\\0' x >&2\necho ' Conversion failed!' >&2\nexit 1\n"
    )
    chatty.chmod(0o755)
    output = tmp_path / "out.mp4"

    with pytest.raises(TranscodeFailedError) as caught:
        transcoder(ffmpeg_path=str(chatty), timeout_seconds=30).transcode(str(clips["640x360"]), output)

    error = caught.value
    assert error.message == "FFmpeg could not convert this video"
    assert error.detail.endswith("Conversion failed!")
    assert len(error.detail) <= 4100
    assert not output.exists()
