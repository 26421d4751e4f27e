"""Tests for in-memory audio decoding (app.transcription.audio).

Every fixture is encoded at test time with PyAV into a BytesIO, so no binary fixtures
live in the repository and no ffmpeg executable is needed.
"""

from __future__ import annotations

import builtins
import io
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt
import pytest
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from app.transcription.audio import (
    SAMPLE_RATE,
    AudioDecodeError,
    AudioTooLongError,
    EmptyAudioError,
    NoAudioStreamError,
    UndecodableAudioError,
    decode_audio,
    decode_pcm_s16le,
    duration_seconds,
    probe_upload,
)

SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "audio"
TONE_HZ = 440.0


def _tone(rate: int, seconds: float, channels: int) -> npt.NDArray[np.float32]:
    """A 440 Hz sine at half scale with 10 ms fades (no clicks for lossy codecs to ring on)."""
    n = round(rate * seconds)
    t = np.arange(n) / rate
    signal = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    fade = min(n // 2, rate // 100)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        signal[:fade] *= ramp
        signal[n - fade :] *= ramp[::-1]
    return np.repeat(signal[None, :], channels, axis=0).astype(np.float32)


def encode(
    container_format: str,
    audio_codec: str | None,
    rate: int = 44100,
    *,
    video_codec: str | None = None,
    seconds: float = 1.0,
    layout: str = "mono",
) -> bytes:
    """Encode a tone (and optionally a tiny moving picture) into an in-memory container."""
    for codec in (audio_codec, video_codec):
        if codec is not None and codec not in av.codecs_available:
            pytest.skip(f"this PyAV build has no {codec} encoder")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as out:
        # Every stream must exist before the first packet is muxed.
        video = out.add_stream(video_codec, rate=25) if video_codec else None
        sound = out.add_stream(audio_codec, rate=rate, layout=layout) if audio_codec else None
        if video is not None:
            assert isinstance(video, VideoStream)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            for index in range(round(25 * seconds)):
                picture = np.full((48, 64, 3), (index * 10) % 256, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = index
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        if sound is not None:
            assert isinstance(sound, AudioStream)
            signal = _tone(rate, seconds, 2 if layout == "stereo" else 1)
            for start in range(0, signal.shape[1], 1024):
                chunk = np.ascontiguousarray(signal[:, start : start + 1024])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                aframe.sample_rate = rate
                aframe.pts = start
                out.mux(sound.encode(aframe))
            out.mux(sound.encode(None))
    return buffer.getvalue()


def dominant_frequency(samples: npt.NDArray[np.float32]) -> float:
    """The strongest frequency in the samples (taken at SAMPLE_RATE), in Hz."""
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


def assert_whisper_ready(samples: npt.NDArray[np.float32]) -> None:
    """float32, 1-D, finite and within [-1, 1]: what the engine feeds Whisper."""
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert np.isfinite(samples).all()
    assert float(samples.min()) >= -1.0
    assert float(samples.max()) <= 1.0


ENCODINGS = {
    "wav-s16-16k": ("wav", "pcm_s16le", 16000, None, "mono"),
    "wav-f32-16k": ("wav", "pcm_f32le", 16000, None, "mono"),
    "wav-s16-stereo-48k": ("wav", "pcm_s16le", 48000, None, "stereo"),
    "flac-stereo-44k": ("flac", "flac", 44100, None, "stereo"),
    "mp3": ("mp3", "libmp3lame", 44100, None, "mono"),
    "ogg-opus": ("ogg", "libopus", 48000, None, "mono"),
    "m4a-aac": ("ipod", "aac", 44100, None, "mono"),
    "webm-opus": ("webm", "libopus", 48000, None, "stereo"),
    "mp4-h264-aac": ("mp4", "aac", 44100, "libx264", "stereo"),
    "mkv-mpeg4-opus": ("matroska", "libopus", 48000, "mpeg4", "mono"),
}


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_decodes_common_containers_to_mono_16k_float(name: str) -> None:
    """Each common audio/video container decodes to a 1 s, 440 Hz, mono 16 kHz float32 array."""
    container_format, codec, rate, video_codec, layout = ENCODINGS[name]
    data = encode(container_format, codec, rate, video_codec=video_codec, layout=layout)

    samples = decode_audio(data)

    assert_whisper_ready(samples)
    assert duration_seconds(samples) == pytest.approx(1.0, abs=0.1)
    assert dominant_frequency(samples) == pytest.approx(TONE_HZ, abs=5)
    # The tone is at half scale: mono downmix and resampling must keep it audible.
    assert 0.3 < float(np.abs(samples).max()) <= 1.0


def test_accepts_bytearray_and_memoryview() -> None:
    """decode_audio takes any bytes-like upload, not only bytes."""
    data = encode("wav", "pcm_s16le", 16000)

    from_bytes = decode_audio(data)

    np.testing.assert_array_equal(decode_audio(bytearray(data)), from_bytes)
    np.testing.assert_array_equal(decode_audio(memoryview(data)), from_bytes)


def test_uncompressed_16k_wav_is_sample_exact() -> None:
    """A 16 kHz s16 wav comes back as exactly its samples divided by 32768."""
    pcm = (np.arange(-8000, 8000, dtype=np.int32) * 4).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())

    samples = decode_audio(buffer.getvalue())

    np.testing.assert_allclose(samples, pcm / 32768.0, atol=1e-7)


@pytest.mark.parametrize(
    ("filename", "expected_seconds"),
    [("en_jfk.flac", 11.0), ("en_ljspeech_LJ001-0001.wav", None)],
)
def test_decodes_real_speech_clips(filename: str, expected_seconds: float | None) -> None:
    """The shared speech clips (24-bit stereo 44.1 kHz flac, 22.05 kHz wav) decode in full."""
    path = SHARED_AUDIO / filename
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    if expected_seconds is None:
        with wave.open(str(path), "rb") as clip:
            expected_seconds = clip.getnframes() / clip.getframerate()

    samples = decode_audio(path.read_bytes())

    assert_whisper_ready(samples)
    assert duration_seconds(samples) == pytest.approx(expected_seconds, abs=0.1)
    assert float(np.abs(samples).max()) > 0.1  # speech, not silence


def test_empty_upload_is_empty_audio_error() -> None:
    """Zero bytes raise EmptyAudioError saying the upload is empty."""
    with pytest.raises(EmptyAudioError, match="the upload is empty"):
        decode_audio(b"")


def test_track_without_samples_is_empty_audio_error() -> None:
    """A valid wav with zero frames raises EmptyAudioError saying the track has no samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)

    with pytest.raises(EmptyAudioError, match="contains no samples"):
        decode_audio(buffer.getvalue())


@pytest.mark.parametrize(
    "text",
    [
        b"Hello, this is a plain text file.\nIt is not audio.\n" * 20,
        b'{"model": "whisper", "file": null}',
        b"1\n00:00:00,000 --> 00:00:01,000\nA subtitle file FFmpeg can open\n\n",
        b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nAnother one\n",
    ],
    ids=["prose", "json", "srt", "vtt"],
)
def test_text_is_undecodable(text: bytes) -> None:
    """Text uploads (even subtitle files FFmpeg can parse) raise UndecodableAudioError."""
    with pytest.raises(UndecodableAudioError, match="not audio or video"):
        decode_audio(text)


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(7).bytes(20_000),
        bytes(4096),
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
    ids=["random", "zeros", "bare-riff-header"],
)
def test_garbage_is_decode_error(data: bytes) -> None:
    """Random bytes, zeros and a bare header raise an AudioDecodeError, not a crash."""
    with pytest.raises(AudioDecodeError):
        decode_audio(data)


def test_file_truncated_inside_header_is_undecodable() -> None:
    """A flac cut off within its header raises UndecodableAudioError."""
    data = encode("flac", "flac", 44100)

    with pytest.raises(UndecodableAudioError):
        decode_audio(data[:30])


def test_file_truncated_mid_stream_keeps_what_was_there() -> None:
    """A wav cut in half decodes to the first half (truncated uploads are not rejected)."""
    data = encode("wav", "pcm_s16le", 16000)

    samples = decode_audio(data[: len(data) // 2])

    assert duration_seconds(samples) == pytest.approx(0.5, abs=0.05)


def test_corrupt_data_midway_is_undecodable() -> None:
    """An mp3 whose second half is random bytes raises UndecodableAudioError about corruption."""
    data = encode("mp3", "libmp3lame", 44100, seconds=2)
    half = len(data) // 2
    corrupt = data[:half] + np.random.default_rng(1).bytes(len(data) - half)

    with pytest.raises(UndecodableAudioError, match="corrupt"):
        decode_audio(corrupt)


def test_video_without_audio_is_no_audio_stream_error() -> None:
    """An mp4 with only an h264 video track raises NoAudioStreamError."""
    data = encode("mp4", None, video_codec="libx264")

    with pytest.raises(NoAudioStreamError, match="no audio track"):
        decode_audio(data)


class _FakeContainer:
    """Stands in for av.open()'s result, yielding prepared frames or errors from decode()."""

    def __init__(self, items: list[av.AudioFrame | Exception]) -> None:
        self.items = items
        stream = SimpleNamespace(duration=None, time_base=None)  # no declared length
        self.streams = SimpleNamespace(audio=[stream], video=[])
        self.format = SimpleNamespace(name="wav")

    def __enter__(self) -> _FakeContainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def decode(self, stream: object) -> Iterator[av.AudioFrame]:
        for item in self.items:
            if isinstance(item, Exception):
                raise item
            yield item


def _frame(samples: npt.NDArray[Any], fmt: str, layout: str, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def test_decoder_error_after_good_frames_is_undecodable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An FFmpeg error raised after some frames decoded maps to UndecodableAudioError."""
    good = _frame(_tone(16000, 0.1, 1), "fltp", "mono", 16000)
    error = av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
    monkeypatch.setattr(av, "open", lambda *a, **k: _FakeContainer([good, error]))

    with pytest.raises(UndecodableAudioError, match="corrupt") as caught:
        decode_audio(b"not used")

    assert isinstance(caught.value.__cause__, av.error.InvalidDataError)


def test_format_change_midstream_is_resampled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames whose rate/layout/format change midway are all decoded, none dropped."""
    first = _frame(_tone(44100, 0.25, 1), "fltp", "mono", 44100)
    stereo = (_tone(22050, 0.25, 2) * 32767).astype(np.int16).T.reshape(1, -1)
    second = _frame(stereo, "s16", "stereo", 22050)
    third = _frame(_tone(16000, 0.25, 1), "flt", "mono", 16000)  # passthrough format
    frames: list[av.AudioFrame | Exception] = [first, second, third]
    monkeypatch.setattr(av, "open", lambda *a, **k: _FakeContainer(frames))

    samples = decode_audio(b"not used")

    assert_whisper_ready(samples)
    assert duration_seconds(samples) == pytest.approx(0.75, abs=0.01)


def test_decoding_writes_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """decode_audio never opens a file or a temp file, and leaves cwd and TMPDIR empty."""
    datas = [encode("mp3", "libmp3lame", 44100), encode("mp4", "aac", video_codec="libx264")]
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    tmpdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", None)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"decode_audio touched the file system: {args!r}")

    for module, name in [
        (builtins, "open"),
        (io, "open"),
        (io, "FileIO"),
        (tempfile, "mkstemp"),
        (tempfile, "mkdtemp"),
        (tempfile, "NamedTemporaryFile"),
        (tempfile, "TemporaryFile"),
        (tempfile, "SpooledTemporaryFile"),
        (tempfile, "TemporaryDirectory"),
    ]:
        monkeypatch.setattr(module, name, forbidden)

    for data in datas:
        assert duration_seconds(decode_audio(data)) == pytest.approx(1.0, abs=0.1)

    monkeypatch.undo()
    assert list(workdir.iterdir()) == []
    assert list(tmpdir.iterdir()) == []


def test_error_messages_are_distinct_client_facing_text() -> None:
    """Each error is a ValueError with its own plain message and a stable code."""
    errors = [EmptyAudioError(), UndecodableAudioError(), NoAudioStreamError()]

    assert [str(error) for error in errors] == [
        "the upload is empty",
        "the upload is not audio or video this server can decode",
        "the file has no audio track",
    ]
    assert len({error.code for error in errors}) == 3
    assert all(isinstance(error, ValueError) for error in errors)
    assert str(EmptyAudioError("the audio track contains no samples")).endswith("no samples")


def test_pcm_s16le_round_trip() -> None:
    """Raw s16le PCM becomes float32 samples equal to the integers divided by 32768."""
    pcm = np.array([0, 1, -1, 16384, -16384, 32767, -32768], dtype="<i2")

    samples = decode_pcm_s16le(pcm.tobytes())

    assert samples.dtype == np.float32
    np.testing.assert_array_equal(samples, pcm.astype(np.float32) / 32768)
    assert float(samples.min()) == -1.0
    assert float(samples.max()) < 1.0
    np.testing.assert_array_equal(decode_pcm_s16le(bytearray(pcm.tobytes())), samples)
    np.testing.assert_array_equal(decode_pcm_s16le(memoryview(pcm.tobytes())), samples)


def test_pcm_s16le_duration() -> None:
    """One second of raw PCM is 32000 bytes and lasts 1.0 s."""
    assert duration_seconds(decode_pcm_s16le(bytes(2 * SAMPLE_RATE))) == 1.0


def test_pcm_s16le_rejects_bad_input() -> None:
    """Odd byte counts, empty input and rates other than 16 kHz raise AudioDecodeErrors."""
    with pytest.raises(UndecodableAudioError, match="odd number of bytes"):
        decode_pcm_s16le(b"\x00\x01\x02")
    with pytest.raises(EmptyAudioError):
        decode_pcm_s16le(b"")
    with pytest.raises(UndecodableAudioError, match="16000 Hz"):
        decode_pcm_s16le(b"\x00\x00", sample_rate=8000)


def test_duration_seconds() -> None:
    """duration_seconds counts samples at 16 kHz and rejects non-1-D arrays."""
    assert duration_seconds(np.zeros(24000, dtype=np.float32)) == 1.5
    assert duration_seconds(np.zeros(0, dtype=np.float32)) == 0.0
    with pytest.raises(ValueError, match="1-D"):
        duration_seconds(np.zeros((2, 10), dtype=np.float32))


def test_video_streams_are_never_decoded_while_probing() -> None:
    """Huge PNG video streams beside the audio are listed but not decoded: no frame is made."""
    from tests.bad_inputs import video_bomb

    bomb = video_bomb(streams=2, side=4096)  # 48 MB a frame, were it decoded
    assert video_formats_found(bomb) == [None, None]  # a decoded frame would tell rgb24
    assert probe_upload(bomb, raw_pcm=False, max_seconds=60) == pytest.approx(1.0, abs=0.01)
    assert decode_audio(bomb).size == 16000


def video_formats_found(data: bytes) -> list[str | None]:
    """The pixel formats of the video streams as our way of opening an upload finds them."""
    from app.transcription import audio

    with audio._open(data) as container:
        return [stream.codec_context.pix_fmt for stream in container.streams.video]


def test_hours_of_silence_without_a_stated_length_are_refused_by_the_probe() -> None:
    """A 72 KB FLAC of 5 h silence with no length in its header: 413 from its packets."""
    from tests.bad_inputs import silent_flac_without_length

    data = silent_flac_without_length(5 * 3600)
    assert len(data) < 100_000
    with pytest.raises(AudioTooLongError, match="at most 14400 s"):
        probe_upload(data, raw_pcm=False, max_seconds=4 * 3600)


def test_decoding_stops_one_sample_past_the_limit() -> None:
    """With a limit, decoding fills one buffer and stops as soon as the audio passes it."""
    data = _wav_of_seconds(3.0)
    with pytest.raises(AudioTooLongError):
        decode_audio(data, max_seconds=2.0)
    assert decode_audio(data, max_seconds=3.5).size == 3 * 16000


def _wav_of_seconds(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.full(int(seconds * 16000), 1000, "<i2").tobytes())
    return buffer.getvalue()
