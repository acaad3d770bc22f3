"""The outputs' pure parts: presets and ladders, the render command lines, HLS playlists and
bandwidth, thumbnails and their WebVTT index, the package's byte ranges, playback links."""

from __future__ import annotations

import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from chalicelib.adapters.ffmpeg.render import RenderSpec, render_args, thumb_grid
from chalicelib.config import Settings
from chalicelib.domain import Preset, utcnow
from chalicelib.errors import LinkExpiredError, ServiceUnavailableError, UnknownPresetError
from chalicelib.outputs import hls, package, playback, presets, thumbnails
from chalicelib.outputs.presets import Rung

# --- presets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("short_side", "names"),
    [
        (2160, ["1080p", "720p", "480p"]),
        (1080, ["1080p", "720p", "480p"]),
        (720, ["720p", "480p"]),
        (480, ["480p"]),
        (360, ["480p"]),
    ],
)
def test_the_hls_ladder_has_each_rendition_only_when_the_source_is_at_least_that_tall(
    short_side: int, names: list[str]
) -> None:
    assert [r.name for r in presets.ladder(Preset.HLS, short_side)] == names


def test_a_rendition_smaller_than_its_rung_is_named_by_its_own_size() -> None:
    (rung,) = presets.ladder(Preset.HLS, 361)
    assert presets.rendition_name(rung, 361) == "360p"


def test_an_mp4_preset_is_one_rendition_whatever_the_source() -> None:
    assert [r.bound for r in presets.ladder(Preset.MP4_1080P, 240)] == [1080]
    assert [r.bound for r in presets.ladder(Preset.MP4_480P, 2160)] == [480]


def test_an_unknown_preset_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(UnknownPresetError) as refused:
        presets.parse("mp4-4k")
    assert (
        refused.value.message == "Unknown preset 'mp4-4k'. Valid presets: mp4-720p, mp4-1080p, mp4-480p, hls"
    )
    assert presets.parse(None) is None and presets.parse("hls") is Preset.HLS


# --- the render command ----------------------------------------------------------------------


def spec(**overrides: object) -> RenderSpec:
    values: dict[str, object] = {
        "video_stream": 0,
        "audio_stream": 1,
        "rungs": (Rung(720),),
        "streaming": False,
        "grid": thumb_grid(12.0),
        "poster": True,
    }
    values.update(overrides)
    return RenderSpec(**values)  # type: ignore[arg-type]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_an_mp4_preset_is_the_seeds_output_with_a_poster_and_a_sprite_from_the_same_decode(
    tmp_path: Path,
) -> None:
    args = render_args("ffmpeg", "in.mp4", tmp_path, spec())
    assert args.count("-i") == 1  # one input read once
    graph = option(args, "-filter_complex")
    assert "split=2" in graph and "thumbnail=n=12" in graph and "tile=10x2" in graph
    assert "zscale" not in graph  # SDR: no tone mapping
    assert option(args, "-crf") == "23" and option(args, "-preset") == "veryfast"
    assert "+faststart" in args and str(tmp_path / "video.mp4") in args
    assert str(tmp_path / "poster.jpg") in args and str(tmp_path / "thumbs.jpg") in args
    assert "-force_key_frames" not in args  # the MP4 encodes as it always did


def test_an_hdr_source_is_tone_mapped_to_sdr_bt709_and_tagged_so(tmp_path: Path) -> None:
    args = render_args("ffmpeg", "in.mp4", tmp_path, spec(hdr=True))
    graph = option(args, "-filter_complex")
    assert (
        "zscale=t=linear" in graph and "tonemap=tonemap=mobius" in graph and "zscale=t=bt709:m=bt709" in graph
    )
    assert (option(args, "-color_primaries"), option(args, "-color_trc"), option(args, "-colorspace")) == (
        "bt709",
        "bt709",
        "bt709",
    )


def test_hls_renditions_share_forced_keyframes_and_unshifted_timestamps(tmp_path: Path) -> None:
    rungs = presets.ladder(Preset.HLS, 1080)
    args = render_args("ffmpeg", "in.mp4", tmp_path, spec(streaming=True, rungs=rungs))
    assert args.count("-force_key_frames") == 3 and args.count("-sc_threshold") == 3
    assert {args[i + 1] for i, a in enumerate(args) if a == "-force_key_frames"} == {"expr:gte(t,n_forced*2)"}
    assert {args[i + 1] for i, a in enumerate(args) if a == "-output_ts_offset"} == {"10.000000"}
    assert args.count("-f") - args.count("-filter_complex") >= 4  # 3 renditions + audio, as HLS
    assert [args[i + 1] for i, a in enumerate(args) if a == "-maxrate"] == ["5000k", "3000k", "1200k"]
    assert str(tmp_path / "hls" / "audio" / "index.m3u8") in args


def test_a_segment_limits_every_output_to_its_span_and_samples_its_own_grid_points(tmp_path: Path) -> None:
    grid = thumb_grid(120.0, 60.0, 90.0, offset=59.9995)
    assert (grid.interval, grid.first, grid.count, grid.columns) == (2.0, 30, 15, 15)
    args = render_args("ffmpeg", "in.mp4", tmp_path, spec(audio_stream=None, grid=grid), span=(59.9995, 30.0))
    assert option(args, "-ss") == "59.999500" and args.index("-ss") < args.index("-i")
    assert args.count("-t") == 4  # the input (it is read no further), the part, the poster, the thumbnails
    assert option(args, "-t") == "30.000000" and args.index("-t") < args.index("-i")
    assert "gte((t+59.999500),60.000000)" in option(args, "-filter_complex")


# --- thumbnails -----------------------------------------------------------------------------------


def test_at_most_a_hundred_thumbnails_at_least_a_second_apart() -> None:
    assert thumbnails.interval_for(30) == 1.0 and thumbnails.interval_for(600) == 6.0
    assert thumbnails.interval_for(3601) == 37.0
    assert list(thumbnails.points_between(6.0, 0, 600)) == list(range(100))
    assert list(thumbnails.points_between(6.0, 59.96, 120.0)) == list(range(10, 20))


def test_the_webvtt_index_maps_each_interval_to_its_cell() -> None:
    sheets = [thumbnails.Sheet("thumbs/00000.jpg", 0, 12, 10)]
    vtt = thumbnails.webvtt(thumbnails.cues(1.0, 11.5, sheets))
    lines = vtt.splitlines()
    assert lines[:4] == ["WEBVTT", "", "00:00:00.000 --> 00:00:01.000", "thumbs/00000.jpg#xywh=0,0,160,90"]
    assert "00:00:11.000 --> 00:00:11.500" in lines and "thumbs/00000.jpg#xywh=160,90,160,90" in lines
    assert "00:00:12.000" not in vtt  # no cue past the end
    signed = thumbnails.with_image_urls(vtt, {"thumbs/00000.jpg": "https://r2/x?sig"})
    assert "https://r2/x?sig#xywh=0,0,160,90" in signed and thumbnails.sheet_names(vtt) == [
        "thumbs/00000.jpg"
    ]


# --- HLS playlists ------------------------------------------------------------------------------


def stream(event: bool = False, ended: bool = True) -> hls.Stream:
    video = hls.Rendition(
        "720p",
        1280,
        720,
        "avc1.64001f",
        tuple(hls.Segment(f"k/v{i}", 6.0, 750_000, name=f"720p/{i:05d}.ts") for i in range(3)),
    )
    audio = hls.Rendition(
        hls.AUDIO,
        segments=tuple(hls.Segment(f"k/a{i}", 6.0, 96_000, name=f"audio/{i:05d}.ts") for i in range(3)),
    )
    return hls.Stream(renditions=(video,), audio=audio, event=event, ended=ended)


def test_bandwidth_is_the_peak_segment_bit_rate_of_video_plus_audio() -> None:
    s = stream()
    assert hls.bandwidth(s, s.top) == (1_000_000 + 128_000, 1_000_000 + 128_000)
    master = hls.master_playlist(s, lambda name: f"{name}.m3u8")
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master and 'URI="audio.m3u8"' in master
    assert (
        'BANDWIDTH=1128000,AVERAGE-BANDWIDTH=1128000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="audio"'
        in master
    )


def test_a_short_spike_counts_only_over_half_a_target_duration_or_more() -> None:
    segments = [
        hls.Segment("a", 6.0, 600_000),
        hls.Segment("b", 0.04, 40_000),
        hls.Segment("c", 6.0, 600_000),
    ]
    assert hls.peak_bitrate(segments, 6) < 1_000_000  # not the 8 Mb/s of the 40 ms tail alone


def test_a_growing_stream_is_an_event_playlist_from_the_start_without_endlist() -> None:
    s = stream(event=True, ended=False)
    text = hls.media_playlist(s, s.top, lambda seg: seg.key)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-START:TIME-OFFSET=0" in text
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-TARGETDURATION:6" in text


def test_the_index_round_trips_and_a_growing_audio_is_cut_to_the_video() -> None:
    s = stream()
    assert hls.Stream.from_json(s.to_json()) == s
    assert audio_count(hls.audio_until(s.audio, 7.0)) == 2  # type: ignore[arg-type]


def audio_count(r: hls.Rendition) -> int:
    return len(r.segments)


def test_the_package_addresses_every_segment_as_a_byte_range_of_itself(tmp_path: Path) -> None:
    root = tmp_path / "hls"
    s = stream()
    for r in (*s.renditions, s.audio):
        assert r is not None
        for i, seg in enumerate(r.segments):
            (root / seg.name).parent.mkdir(parents=True, exist_ok=True)
            (root / seg.name).write_bytes(bytes([i]) * seg.size)
    zip_path = tmp_path / "package.zip"
    offsets = package.write(zip_path, s, root)
    addressed = package.addressed(s, "k/package.zip", offsets)
    data = zip_path.read_bytes()
    for r in (*addressed.renditions, addressed.audio):
        assert r is not None
        for i, seg in enumerate(r.segments):
            assert seg.key == "k/package.zip" and seg.offset is not None
            assert data[seg.offset : seg.offset + seg.size] == bytes([i]) * seg.size
    with zipfile.ZipFile(zip_path) as zf:
        assert "master.m3u8" in zf.namelist() and zf.read("720p/index.m3u8").decode().count(".ts") == 3
    text = hls.media_playlist(addressed, addressed.top, lambda seg: "URL")
    assert f"#EXT-X-BYTERANGE:750000@{offsets['720p/00000.ts']}" in text


# --- playback links -------------------------------------------------------------------------------

KEYED = Settings(playback_signing_key=SecretStr("k" * 32), playback_url_expiry_seconds=600)


def test_a_playback_link_names_its_job_and_ends_when_it_says() -> None:
    now = utcnow()
    token = playback.sign(KEYED, "job-1", now)
    assert playback.check(KEYED, "job-1", token, now + timedelta(seconds=599)) > now
    for job, at in (("job-2", now), ("job-1", now + timedelta(seconds=601))):
        with pytest.raises(LinkExpiredError):
            playback.check(KEYED, job, token, at)
    forged = token.split(".")[0] + ".AAAA"
    with pytest.raises(LinkExpiredError):
        playback.check(KEYED, "job-1", forged, now)
    with pytest.raises(LinkExpiredError):
        playback.check(KEYED, "job-1", "not-a-token", now)


def test_playback_without_a_signing_key_is_unavailable_not_unsigned() -> None:
    with pytest.raises(ServiceUnavailableError):
        playback.sign(Settings(playback_signing_key=SecretStr("")), "job-1", utcnow())
