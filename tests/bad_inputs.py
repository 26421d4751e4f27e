"""A corpus of bad and odd uploads, made in memory, and how each upload route should answer.

Each `Case` describes one input independently of the route; a route's adapter (see
tests/test_bad_inputs.py) turns it into a request. Every case expects one of:

* ``REFUSED``: a 4xx with a readable message, never a 5xx;
* ``EMPTY``: accepted, and the job finishes with an empty transcript (silence);
* ``ACCEPTED``: valid audio with odd metadata (file names), handled safely.

A case that a route cannot express (the task API has no `model` option) names
the routes it applies to.
"""

from __future__ import annotations

import functools
import io
import struct
import wave
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np

Expectation = Literal["refused", "empty", "accepted"]
REFUSED: Expectation = "refused"
EMPTY: Expectation = "empty"
ACCEPTED: Expectation = "accepted"

BOUNDARY = "corpus-boundary-7e3a"


@dataclass(frozen=True)
class Upload:
    """What to send: a file part (or a raw body), form fields and options."""

    file: tuple[str, bytes] | None = None
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # language, model, ...
    raw_body: bytes | None = None  # sent as-is instead of a multipart form
    content_type: str | None = None  # overrides the multipart content type


@dataclass(frozen=True)
class Case:
    """One input of the corpus and what it must lead to."""

    name: str
    make: Callable[[], Upload]
    expect: Expectation
    only_for: frozenset[str] | None = None  # surfaces it applies to; None = all

    def applies_to(self, surface: str) -> bool:
        """Whether the surface has a way to express this input."""
        return self.only_for is None or surface in self.only_for


# ---------------------------------------------------------------- media made in memory


def wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    """16-bit mono WAV of float samples in [-1, 1]."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    """A quiet 440 Hz tone."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def wav_header(data_bytes: int, rate: int = 16000) -> bytes:
    """A canonical 44-byte PCM WAV header announcing `data_bytes` of samples."""
    riff_size = min(0xFFFFFFFF, 36 + data_bytes)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + fmt
        + b"data"
        + (struct.pack("<I", min(0xFFFFFFFF, data_bytes)))
    )


def flac(samples: np.ndarray, rate: int = 16000) -> bytes:
    """FLAC of float samples, encoded with PyAV."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(
                pcm[start : start + 4096].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def png(width: int = 8, height: int = 8) -> bytes:
    """A valid grey PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@functools.cache
def silent_flac_without_length(seconds: float) -> bytes:
    """FLAC of digital silence whose STREAMINFO states no length (total samples 0).

    Silence compresses to a few bytes a frame, so hours fit in tens of KB; only
    adding up the frames (or decoding them) tells how long it is.
    """
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        # FLAC's largest block: the fewest frames, the smallest file.
        stream = out.add_stream("flac", rate=16000, layout="mono", options={"frame_size": "65535"})
        minute = np.zeros((1, 60 * 16000), np.int16)
        for index in range(int(seconds // 60)):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 60 * 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(buffer.getvalue())
    # STREAMINFO starts at byte 8; total samples are its low 36 bits, ending at byte 26.
    data[21] &= 0xF0
    data[22:26] = b"\0\0\0\0"
    return bytes(data)


@functools.cache
def big_png(side: int) -> bytes:
    """A black RGB PNG of side × side pixels (768 MB decoded at 16000), a few hundred KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * side)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def video_bomb(
    streams: int = 7, side: int = 16000, audio: np.ndarray | None = None, container: str = "mov"
) -> bytes:
    """`audio` (16 kHz; 1 s of tone by default) beside `streams` PNG video streams of side².

    The PNG packets are muxed as they are (no encoder), so the file is small while
    each frame would take side² × 3 bytes once decoded.
    """
    picture = big_png(side)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        track = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        videos = []
        for _ in range(streams):
            video = out.add_stream("png", rate=1)
            video.width, video.height, video.pix_fmt = side, side, "rgb24"
            videos.append(video)
        samples = tone(1.0) if audio is None else audio
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*track.encode(frame), *track.encode()]:
            out.mux(packet)  # the first packet writes the header: streams get time bases
        for video in videos:
            packet = av.Packet(picture)
            packet.stream, packet.pts, packet.dts = video, 0, 0
            packet.time_base = video.time_base
            out.mux(packet)
    return buffer.getvalue()


def mp4_without_audio() -> bytes:
    """A one-second MP4 with a video track only."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def multipart_body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body of (field name, file name or None, content) parts."""
    body = b""
    for name, file_name, content in parts:
        disposition = f'form-data; name="{name}"'
        if file_name is not None:
            disposition += f'; filename="{file_name}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def form_with_charset(charset: str, file: bytes) -> bytes:
    """A multipart body whose `language` part declares `charset`, and a file part."""
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="language"\r\n'
            f"Content-Type: text/plain; charset={charset}\r\n\r\nen\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        ).encode()
        + file
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


# ---------------------------------------------------------------- the corpus


def _good_wav() -> bytes:
    """A valid second of tone, for cases refused before the audio is even decoded."""
    return wav(tone(1.0))


def _truncated_flac(clip: Path) -> bytes:
    data = clip.read_bytes()
    return data[: len(data) // 2]


def _hardening_cases(speech_beside_huge_video: Callable[[], bytes]) -> list[Case]:
    """The inputs of the hardening review (issue 15): none may cost a 5xx, a freeze or GBs."""
    charset_cases = [
        Case(
            f"form field in charset {charset}",
            lambda charset=charset: Upload(raw_body=form_with_charset(charset, _good_wav())),
            REFUSED,
        )
        for charset in ("x-bogus", "hex", "idna")
    ]
    return [
        *charset_cases,
        Case(
            "100 KB field name",
            lambda: Upload(
                raw_body=multipart_body([("n" * 100_000, None, b"x"), ("file", "a.wav", b"RIFF")])
            ),
            REFUSED,
        ),
        Case(
            "speech beside seven 16000x16000 PNG video streams",
            lambda: Upload(file=("bomb.mov", speech_beside_huge_video())),
            ACCEPTED,
        ),
        Case(
            "72 KB FLAC of 5 h silence without a length in its header",
            lambda: Upload(file=("hours.flac", silent_flac_without_length(5 * 3600))),
            REFUSED,
        ),
    ]


def corpus(speech_flac: Path, short_speech: Path) -> list[Case]:
    """Every case.

    `speech_flac` is a real FLAC clip (cut in half for the truncated case);
    `short_speech` a short spoken clip for the cases that must be transcribed
    (Whisper spends long on a pure tone, retrying every temperature).
    """
    from app.transcription.audio import decode_audio

    hours = 10 * 3600 * 16000 * 2  # bytes of 10 h of 16 kHz 16-bit mono

    def speech() -> bytes:
        return short_speech.read_bytes()

    def speech_under_lying_header() -> bytes:
        return wav_header(hours) + wav(decode_audio(speech()))[44:]

    def speech_beside_huge_video() -> bytes:
        return video_bomb(streams=7, side=16000, audio=decode_audio(speech()))

    return [
        *_hardening_cases(speech_beside_huge_video),
        Case("empty body", lambda: Upload(raw_body=b""), REFUSED),
        Case("empty file", lambda: Upload(file=("empty.wav", b"")), REFUSED),
        Case("one byte", lambda: Upload(file=("one.wav", b"\x00")), REFUSED),
        Case(
            "text file",
            lambda: Upload(file=("notes.txt", b"This is not audio, just some words.\n" * 40)),
            REFUSED,
        ),
        Case("PNG image", lambda: Upload(file=("picture.png", png())), REFUSED),
        Case(
            "truncated FLAC",
            lambda: Upload(file=("cut.flac", _truncated_flac(speech_flac))),
            REFUSED,
        ),
        Case("zero-length WAV", lambda: Upload(file=("zero.wav", wav_header(0))), REFUSED),
        Case(
            "10 minutes of silence",
            lambda: Upload(file=("silence.flac", flac(np.zeros(600 * 16000, np.float32)))),
            EMPTY,
        ),
        Case("MP4 without audio", lambda: Upload(file=("video.mp4", mp4_without_audio())), REFUSED),
        Case(
            "WAV header claiming 10 hours, no samples",
            lambda: Upload(file=("hours.wav", wav_header(hours))),
            REFUSED,
        ),
        Case(
            "WAV header claiming 10 hours over 2 s of speech (the header is not believed)",
            lambda: Upload(file=("hours-2s.wav", speech_under_lying_header())),
            ACCEPTED,
        ),
        Case(
            "malformed multipart",
            lambda: Upload(
                raw_body=f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                'filename="a.wav"\r\n\r\nRIFF'.encode()
            ),
            REFUSED,
        ),
        Case(
            "not multipart at all",
            lambda: Upload(raw_body=_good_wav(), content_type="audio/wav"),
            REFUSED,
        ),
        Case(
            "multipart without boundary",
            lambda: Upload(raw_body=b"whatever", content_type="multipart/form-data"),
            REFUSED,
        ),
        Case(
            "missing file field",
            lambda: Upload(raw_body=multipart_body([("language", None, b"en")])),
            REFUSED,
        ),
        Case(
            "too many parts",
            lambda: Upload(raw_body=multipart_body([(f"f{i}", None, b"x") for i in range(100)])),
            REFUSED,
        ),
        Case(
            "file name with ../",
            lambda: Upload(file=("../../etc/passwd.wav", speech())),
            ACCEPTED,
        ),
        Case("file name with emoji", lambda: Upload(file=("🎙️ call 😀.wav", speech())), ACCEPTED),
        Case("file name in CJK", lambda: Upload(file=("会議の録音.wav", speech())), ACCEPTED),
        Case(
            "file name with control characters and quotes",
            lambda: Upload(file=('a"b\\c\x07d.wav', speech())),
            ACCEPTED,
        ),
        Case(
            "unknown language",
            lambda: Upload(file=("a.wav", _good_wav()), options={"language": "xx"}),
            REFUSED,
        ),
        Case(
            "absurd language: 5000 characters",
            lambda: Upload(file=("a.wav", _good_wav()), options={"language": "e" * 5000}),
            REFUSED,
        ),
        Case(
            "absurd language: NUL and newline",
            lambda: Upload(file=("a.wav", _good_wav()), options={"language": "e\x00n\n"}),
            REFUSED,
        ),
        Case(
            "absurd form field: 1 MB language",
            lambda: Upload(file=("a.wav", _good_wav()), fields={"language": "x" * 1_000_000}),
            REFUSED,
        ),
        Case(
            "unknown model",
            lambda: Upload(file=("a.wav", _good_wav()), options={"model": "whisper-9000"}),
            REFUSED,
            # whisper-asr-webservice has no per-request model: the server picks it.
            only_for=frozenset({"tasks", "openai"}),
        ),
    ]
