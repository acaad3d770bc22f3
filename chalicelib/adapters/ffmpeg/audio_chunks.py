"""A soundtrack encoded to AAC in chunks that run in parallel, joined without a gap or a click:
the chunks' command lines and the join (where the chunks are: chalicelib.processing.audio_plan).

Each chunk is encoded from its own time range of the source (read with input seeking, as the
segments are), a little wider than its share: `PRE_FRAMES` AAC frames before it and
`POST_FRAMES` after it. The chunk's encoder has then seen the audio around both of its joins, so
the AAC frames it contributes are the ones a single encoder over the whole soundtrack would have
made there, up to quantisation: AAC frames overlap by half (MDCT), and the frame before a join
and the frame after it come from encoders that both heard the audio the two frames share.

Where a chunk starts and ends is counted in AAC frames of 1024 samples from the soundtrack's
first sample (the timeline the single pass encodes), so nothing is duplicated or lost at a join:

- chunk k holds the output frames (m_k, m_k+1]: the decoded blocks covering samples
  [1024·m_k, 1024·m_k+1) of the soundtrack; chunk 0 also holds the encoder's priming frame;
- its encoder reads samples [1024·(m_k - PRE_FRAMES), 1024·(m_k+1 + POST_FRAMES)) (the last
  chunk: to the end), cut exactly by timestamp (`atrim` on sample-exact timestamps, `-copyts`),
  after seeking `SEEK_MARGIN_SECONDS` earlier so the source's decoder has settled;
- the joiner (`join`) keeps each chunk's frames (PRE_FRAMES, PRE_FRAMES + m_k+1 - m_k] (chunk 0:
  [0, m_1]; the last: to its end) and writes one M4A with the single pass's edit list: the
  encoder's priming skipped, exactly the soundtrack's sample count presented.

This needs timestamps that count samples exactly (`exact_timestamps`): an audio time base of
1/sample-rate (or a divisor of it), as MP4 and MOV have. Matroska counts milliseconds, so a
seek there lands up to half a millisecond off: such a source keeps the whole-file audio task.
tests/integration/test_audio_chunks.py compares the joined audio with the single pass's around
every join.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from chalicelib.adapters.ffmpeg.commands import AUDIO_BITRATE, ProbeInfo, base_args, input_options
from chalicelib.adapters.ffmpeg.mp4index import Unsupported, _boxes
from chalicelib.errors import InternalProcessingError
from chalicelib.processing.audio_plan import FRAME, Chunk

# The sample rates ffmpeg's AAC encoder takes as they are; any other would be resampled (a filter
# with state of its own across the joins).
AAC_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
)


def chunkable(info: ProbeInfo) -> tuple[int, int] | None:
    """(sample rate, timestamp of the first sample in samples) of a soundtrack the segment tasks
    can encode in chunks; None for one whose timestamps do not count samples exactly (one task
    copies it whole when it is AAC-LC already, else encodes it whole).

    AAC-LC sources are encoded in chunks too, as the single pass encodes them: a whole-file copy
    reads the whole upload through one stream (a 2 GiB hour at 25 MB/s is 86 s), and the copy
    kept the source's bitrate where the single pass gives 128 kb/s."""
    if info.audio_stream is None:
        return None
    rate, base = info.audio_sample_rate, info.audio_time_base
    if rate is None or base is None or not exact_timestamps(base, rate):
        return None
    origin = info.audio_start_pts * base * rate
    return (rate, int(origin)) if origin.denominator == 1 else None


def exact_timestamps(time_base: Fraction | None, sample_rate: int | None) -> bool:
    """Whether the source's audio timestamps count its samples exactly (and the encoder takes its
    rate): then a chunk can start on the sample it must."""
    if not time_base or not sample_rate or sample_rate not in AAC_RATES:
        return False
    return (1 / (time_base * sample_rate)).denominator == 1


def build_chunk_args(
    ffmpeg_path: str, input_url: str, output_path: Path | str, audio_stream: int, chunk: Chunk
) -> list[str]:
    """Encode the chunk's samples (and its margins) as the single pass encodes the soundtrack."""
    trim = f"atrim=start_pts={chunk.read_from}"
    if chunk.read_to is not None:
        trim += f":end_pts={chunk.read_to}"
    seek = ["-noaccurate_seek", "-ss", f"{chunk.seek:.6f}"] if chunk.seek > 0 else []
    return [
        *base_args(ffmpeg_path),
        *input_options(input_url),
        *seek,
        "-copyts",  # timestamps stay the source's: they count samples exactly (see above)
        "-i",
        input_url,
        "-map",
        f"0:{audio_stream}",
        "-vn",
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
        "-af",
        # sample-exact cut on the source's timestamps (in 1/sample-rate inside the filter)
        trim,
        "-c:a",
        "aac",
        "-b:a",
        AUDIO_BITRATE,
        "-ac",
        "2",
        "-f",
        "mp4",
        str(output_path),
    ]


# --- the join: M4A in, M4A out ----------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """An M4A's one audio track: its frames, their durations, its sample description."""

    frames: list[bytes]
    durations: list[int]
    stsd: bytes  # the whole `stsd` box: codec and AudioSpecificConfig, copied to the join
    timescale: int
    priming: int  # the edit list's media time: encoder delay the player skips


def read_m4a(data: bytes) -> Track:
    top = dict(_boxes(data))
    if b"moov" not in top:
        raise Unsupported("no moov")
    trak = next(payload for kind, payload in _boxes(top[b"moov"]) if kind == b"trak")
    boxes = dict(_boxes(trak))
    mdia = dict(_boxes(boxes[b"mdia"]))
    mdhd = mdia[b"mdhd"]
    timescale = struct.unpack(">I", mdhd[20:24] if mdhd[0] == 1 else mdhd[12:16])[0]
    stbl = dict(_boxes(dict(_boxes(mdia[b"minf"]))[b"stbl"]))
    sizes = _sizes(stbl[b"stsz"])
    offsets = _sample_offsets(stbl, sizes)
    durations = [d for count, d in _pairs(stbl[b"stts"]) for _ in range(count)]
    if len(durations) != len(sizes):
        raise Unsupported("stts and stsz disagree")
    priming = 0
    if b"edts" in boxes:
        elst = dict(_boxes(boxes[b"edts"]))[b"elst"]
        entries = _elst(elst)
        media = [m for _, m in entries if m >= 0]
        priming = media[0] if media else 0
    frames = [data[o : o + s] for o, s in zip(offsets, sizes, strict=True)]
    stsd = _box(b"stsd", stbl[b"stsd"])
    return Track(frames, durations, stsd, int(timescale), priming)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _pairs(box: bytes) -> list[tuple[int, int]]:
    (count,) = struct.unpack(">I", box[4:8])
    return [struct.unpack(">II", box[8 + 8 * i : 16 + 8 * i]) for i in range(count)]


def _elst(box: bytes) -> list[tuple[int, int]]:
    version, (count,) = box[0], struct.unpack(">I", box[4:8])
    size, fmt = (20, ">Qq") if version == 1 else (12, ">Ii")
    return [
        struct.unpack(fmt, box[8 + size * i : 8 + size * i + (16 if version == 1 else 8)])
        for i in range(count)
    ]


def _sizes(stsz: bytes) -> list[int]:
    fixed, count = struct.unpack(">II", stsz[4:12])
    if fixed:
        return [fixed] * count
    return list(struct.unpack(f">{count}I", stsz[12 : 12 + 4 * count]))


def _sample_offsets(stbl: dict[bytes, bytes], sizes: list[int]) -> list[int]:
    if b"stco" in stbl:
        (n,) = struct.unpack(">I", stbl[b"stco"][4:8])
        chunks = list(struct.unpack(f">{n}I", stbl[b"stco"][8 : 8 + 4 * n]))
    else:
        (n,) = struct.unpack(">I", stbl[b"co64"][4:8])
        chunks = list(struct.unpack(f">{n}Q", stbl[b"co64"][8 : 8 + 8 * n]))
    (entries,) = struct.unpack(">I", stbl[b"stsc"][4:8])
    runs = [struct.unpack(">III", stbl[b"stsc"][8 + 12 * i : 20 + 12 * i]) for i in range(entries)]
    offsets, sample = [], 0
    for c, base in enumerate(chunks, start=1):
        per = next(spc for first, spc, _ in reversed(runs) if first <= c)
        at = base
        for _ in range(per):
            if sample >= len(sizes):
                break
            offsets.append(at)
            at += sizes[sample]
            sample += 1
    if len(offsets) != len(sizes):
        raise Unsupported("stsc and stsz disagree")
    return offsets


def select(chunk: Chunk, track: Track) -> tuple[list[bytes], list[int], bool]:
    """The frames of a chunk's encode that are its own, their durations, and whether the
    soundtrack ends in it (the last chunk, or one the audio ended in: a video whose sound
    stops before its picture)."""
    start = chunk.skip
    end = None if chunk.keep is None else start + chunk.keep
    frames, durations = track.frames[start:end], track.durations[start:end]
    ended = (
        chunk.keep is None or len(frames) < chunk.keep or sum(track.durations[start:]) < FRAME * chunk.keep
    )
    return frames, durations, ended


def join(chunks: Sequence[Chunk], tracks: Sequence[Track], output: Path) -> int:
    """Write the chunks' own frames as one M4A, as the single pass's encode of the whole
    soundtrack is written; returns the soundtrack's sample count."""
    frames: list[bytes] = []
    durations: list[int] = []
    for chunk, track in zip(chunks, tracks, strict=True):
        own, lengths, ended = select(chunk, track)
        frames += own
        # every frame is a whole one but the soundtrack's last: its encoder says how much is left
        durations += lengths if ended else [FRAME] * len(own)
        if ended:
            break
    if not frames:
        raise Unsupported("no audio frame in any chunk")
    first = tracks[0]
    samples = sum(durations) - first.priming
    output.write_bytes(_m4a(frames, durations, first.stsd, first.timescale, first.priming, samples))
    return samples


def _m4a(
    frames: list[bytes], durations: list[int], stsd: bytes, rate: int, priming: int, samples: int
) -> bytes:
    ftyp = _box(b"ftyp", b"M4A " + struct.pack(">I", 512) + b"M4A isomiso2mp41")
    media = sum(durations)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full(
        b"mvhd",
        struct.pack(">IIII", 0, 0, rate, samples)
        + struct.pack(">IH", 0x10000, 0x100)
        + b"\0" * 10
        + matrix
        + b"\0" * 24
        + struct.pack(">I", 2),
    )
    tkhd = _full(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, 1, 0, samples)
        + b"\0" * 8
        + struct.pack(">hhhH", 0, 0, 0x100, 0)
        + matrix
        + struct.pack(">II", 0, 0),
        flags=3,
    )
    elst = _full(b"elst", struct.pack(">IIiI", 1, samples, priming, 0x10000))
    mdhd = _full(b"mdhd", struct.pack(">IIII", 0, 0, rate, media) + struct.pack(">HH", 0x55C4, 0))  # 'und'
    hdlr = _full(b"hdlr", struct.pack(">I4s", 0, b"soun") + b"\0" * 12 + b"SoundHandler\0")
    dinf = _box(b"dinf", _full(b"dref", struct.pack(">I", 1) + _full(b"url ", b"", flags=1)))
    runs: list[tuple[int, int]] = []
    for d in durations:
        if runs and runs[-1][1] == d:
            runs[-1] = (runs[-1][0] + 1, d)
        else:
            runs.append((1, d))
    stts = _full(b"stts", struct.pack(">I", len(runs)) + b"".join(struct.pack(">II", n, d) for n, d in runs))
    stsc = _full(b"stsc", struct.pack(">IIII", 1, 1, len(frames), 1))  # one chunk holds every frame
    stsz = _full(
        b"stsz", struct.pack(">II", 0, len(frames)) + b"".join(struct.pack(">I", len(f)) for f in frames)
    )

    def moov(offset: int) -> bytes:
        stco = _full(b"stco", struct.pack(">II", 1, offset))
        stbl = _box(b"stbl", stsd + stts + stsc + stsz + stco)
        minf = _box(b"minf", _full(b"smhd", b"\0\0\0\0") + dinf + stbl)
        mdia = _box(b"mdia", mdhd + hdlr + minf)
        trak = _box(b"trak", tkhd + _box(b"edts", elst) + mdia)
        return _box(b"moov", mvhd + trak)

    size = len(moov(0))
    body = b"".join(frames)
    offset = len(ftyp) + size + 8
    return ftyp + moov(offset) + struct.pack(">I4s", 8 + len(body), b"mdat") + body


def join_files(chunks: Sequence[Chunk], paths: Sequence[Path], output: Path) -> int:
    """`join` over the chunks' M4A files. A file that is not what its chunk needs is an
    InternalProcessingError (the platform's: the chunk is encoded again on a retry)."""
    try:
        tracks = [read_m4a(Path(p).read_bytes()) for p in paths]
        return join(chunks, tracks, output)
    except (Unsupported, KeyError, StopIteration, struct.error, ValueError) as exc:
        raise InternalProcessingError(detail=f"joining the audio chunks failed: {exc!r}") from exc
