"""Decode uploaded audio or video into the samples Whisper wants, entirely in memory.

Whisper models take float32 mono PCM at 16 kHz in [-1, 1]. :func:`decode_audio` turns
the bytes of any container FFmpeg can read (wav, flac, mp3, ogg/opus, m4a/aac, webm,
mp4/mkv with a video track, ...) into that array with PyAV, reading from an
``io.BytesIO``: nothing is ever written to disk. Every failure is an
:class:`AudioDecodeError` whose message is fit to show to the client as-is.

The upload probe lives here too (about 400 lines in all): it applies the same stream,
length and truncation rules as the decoder, and keeping them together keeps them equal.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from typing import ClassVar

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer

__all__ = [
    "SAMPLE_RATE",
    "AudioDecodeError",
    "AudioTooLongError",
    "EmptyAudioError",
    "NoAudioStreamError",
    "UndecodableAudioError",
    "decode_audio",
    "decode_pcm_s16le",
    "decode_upload",
    "duration_seconds",
    "probe_upload",
]

SAMPLE_RATE = 16000
"""Samples per second of every array this module returns (what Whisper expects)."""

# Samples are produced as packed float32 mono, so each resampled frame is one row.
_OUTPUT_FORMAT = "flt"
_OUTPUT_LAYOUT = "mono"


class AudioDecodeError(ValueError):
    """The upload cannot be turned into audio samples; ``str(error)`` is a client-facing message."""

    default_message: ClassVar[str] = "the upload could not be decoded as audio"
    code: ClassVar[str] = "audio_decode_error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class EmptyAudioError(AudioDecodeError):
    """The upload has no bytes, or its audio track decodes to no samples at all."""

    default_message = "the upload is empty"
    code = "empty_audio"


class UndecodableAudioError(AudioDecodeError):
    """The bytes are not a container/codec FFmpeg can read, or they are corrupt."""

    default_message = "the upload is not audio or video this server can decode"
    code = "undecodable_audio"


class NoAudioStreamError(AudioDecodeError):
    """The container is readable (e.g. a video or an image) but holds no audio track."""

    default_message = "the file has no audio track"
    code = "no_audio_stream"


class AudioTooLongError(AudioDecodeError):
    """The audio is longer than the server accepts (MAX_AUDIO_DURATION_S): HTTP 413."""

    code = "audio_too_long"

    def __init__(self, limit_s: float, declared_s: float | None = None) -> None:
        self.limit_s = limit_s
        length = (
            f"the file declares {_clock(declared_s)} of audio"
            if declared_s is not None
            else "the audio is longer than that"
        )
        super().__init__(
            f"this server accepts audio of at most {limit_s:g} s ({_clock(limit_s)}); {length}"
        )


_NO_SAMPLES = "the audio track contains no samples"
_CORRUPT = "the audio track is corrupt and could not be decoded"
# Containers whose header states the audio's exact length (FLAC's total samples,
# MP4's track duration, Matroska's Duration): decoding much less than that means the
# file was cut off. Formats whose length FFmpeg only estimates (MP3, ADTS) are not
# judged, and WAV needs no check: FFmpeg trims its declared length to the file.
_EXACT_LENGTH_FORMATS = frozenset({"flac", "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska"})
_TRUNCATION_TOLERANCE_S = 1.0


# A cap on the pixels of any picture FFmpeg is asked to decode (4K UHD is 8.3 M): the
# audio-only decoder list below keeps video decoders closed, this bounds anything left.
MAX_PIXELS = 16_000_000


@functools.cache
def _audio_decoders() -> str:
    """Every audio decoder this FFmpeg has, comma-separated (its `codec_whitelist`)."""
    names = []
    for name in sorted(av.codecs_available):
        try:
            codec = av.Codec(name, "r")
        except (ValueError, av.error.FFmpegError):
            continue  # an encoder only
        if codec.type == "audio":
            names.append(name)
    return ",".join(names)


def _open(data: bytes | bytearray | memoryview) -> InputContainer:
    """Open an upload reading its audio only.

    FFmpeg's stream probe decodes a frame of every stream whose format it does
    not know yet: one 16000×16000 PNG "video" stream costs 768 MB. Allowing
    audio decoders only keeps every other decoder closed, so other streams are
    listed (a silent video is still told apart from garbage) but never decoded;
    `max_pixels` caps any picture that still would be.
    """
    options = {"codec_whitelist": _audio_decoders(), "max_pixels": str(MAX_PIXELS)}
    try:
        return av.open(io.BytesIO(data), mode="r", metadata_errors="ignore", options=options)
    except (av.error.FFmpegError, ValueError) as exc:
        raise UndecodableAudioError() from exc


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def decode_audio(
    data: bytes | bytearray | memoryview, *, max_seconds: float | None = None
) -> npt.NDArray[np.float32]:
    """Decode the first audio track of ``data`` to float32 mono samples at 16 kHz in [-1, 1].

    Raises :class:`EmptyAudioError` for an empty upload or a track without samples,
    :class:`NoAudioStreamError` for a readable video/image without audio,
    :class:`UndecodableAudioError` for anything FFmpeg cannot read (text, garbage,
    data that turns corrupt part-way through, a file cut off before the length its
    header states), and :class:`AudioTooLongError` past ``max_seconds``: at once when
    the header declares more, else as soon as that much has been decoded, so a small
    upload of highly compressed audio cannot fill the memory.
    """
    if memoryview(data).nbytes == 0:
        raise EmptyAudioError()
    with _open(data) as container:
        stream = _first_audio_stream(container)
        declared_s = _declared_seconds(stream)
        if max_seconds is not None and declared_s is not None and declared_s > max_seconds:
            raise AudioTooLongError(max_seconds, declared_s)
        max_samples = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        try:
            samples = _decode_stream(container, stream, max_samples)
        except (av.error.FFmpegError, ValueError) as exc:
            raise UndecodableAudioError(_CORRUPT) from exc
        if max_samples is not None and samples.size > max_samples:
            raise AudioTooLongError(float(max_seconds or 0))
        _check_complete(container, declared_s, samples.size / SAMPLE_RATE)
    if samples.size == 0:
        raise EmptyAudioError(_NO_SAMPLES)
    return samples


def decode_upload(
    data: bytes | bytearray | memoryview, *, raw_pcm: bool, max_seconds: float | None
) -> npt.NDArray[np.float32]:
    """Decode an upload (a file, or raw 16 kHz s16le PCM) within `max_seconds`."""
    if not raw_pcm:
        return decode_audio(data, max_seconds=max_seconds)
    audio = decode_pcm_s16le(data)
    if max_seconds is not None and duration_seconds(audio) > max_seconds:
        raise AudioTooLongError(max_seconds, duration_seconds(audio))
    return audio


# The probe decodes this much of an upload (and reads the rest without decoding):
# enough to check a short file completely, a few milliseconds of CPU, no samples kept.
PROBE_DECODE_S = 60.0


def probe_upload(
    data: bytes | bytearray | memoryview, *, raw_pcm: bool, max_seconds: float
) -> float:
    """Prove an upload is usable without decoding it all; return its length in seconds.

    The container must open and hold an audio stream, its first `PROBE_DECODE_S`
    seconds must decode, and its length, as the header states it or as its packets
    add up, must be within `max_seconds`. Raises the same errors as `decode_audio`.
    Nothing decoded is kept: a queued job holds only the upload.
    """
    if raw_pcm:
        return duration_seconds(decode_upload(data, raw_pcm=True, max_seconds=max_seconds))
    if memoryview(data).nbytes == 0:
        raise EmptyAudioError()
    with _open(data) as container:
        stream = _first_audio_stream(container)
        declared_s = _declared_seconds(stream) or _container_seconds(container)
        if declared_s is not None and declared_s > max_seconds:
            raise AudioTooLongError(max_seconds, declared_s)
        try:
            decoded_s, complete, packets_s = _probe_stream(
                container, stream, None if declared_s is not None else max_seconds
            )
        except (av.error.FFmpegError, ValueError) as exc:
            raise UndecodableAudioError(_CORRUPT) from exc
        if complete:
            if decoded_s == 0:
                raise EmptyAudioError(_NO_SAMPLES)
            _check_complete(container, _declared_seconds(stream), decoded_s)
            return decoded_s
    if declared_s is not None:
        return declared_s
    length_s = max(packets_s, decoded_s)
    if length_s > max_seconds:
        raise AudioTooLongError(max_seconds)  # counted only up to the limit
    return length_s


def _container_seconds(container: InputContainer) -> float | None:
    """The container's own length (av.time_base units), when it states one."""
    if container.duration is None or container.duration <= 0:
        return None
    return float(container.duration / av.time_base)


def _probe_stream(
    container: InputContainer, stream: AudioStream, measure_up_to_s: float | None
) -> tuple[float, bool, float]:
    """Decode the stream's first seconds; then, if asked, add up the rest's packets.

    Returns the seconds decoded, whether that was the whole stream, and where the
    last packet read ends (seconds), for files whose header states no length.
    Adding up stops as soon as the packets pass `measure_up_to_s`: a file of
    tiny packets (hours of compressed silence) costs no more than the limit.
    """
    decoded_s = 0.0
    end_s = 0.0
    time_base = stream.time_base
    for packet in container.demux(stream):
        if packet.pts is not None and time_base is not None:
            end_s = max(end_s, float((packet.pts + (packet.duration or 0)) * time_base))
        if decoded_s < PROBE_DECODE_S:
            for frame in packet.decode():
                if frame.sample_rate:
                    decoded_s += frame.samples / frame.sample_rate
        elif measure_up_to_s is None or end_s > measure_up_to_s:
            return decoded_s, False, end_s
    return decoded_s, decoded_s < PROBE_DECODE_S, end_s


def _declared_seconds(stream: AudioStream) -> float | None:
    """The audio track's length as its header states it, if it states one."""
    if stream.duration is None or stream.time_base is None or stream.duration <= 0:
        return None
    return float(stream.duration * stream.time_base)


def _check_complete(container: InputContainer, declared_s: float | None, decoded_s: float) -> None:
    """Refuse a file cut off before the exact length its header states."""
    if declared_s is None or decoded_s == 0:
        return  # no claim to hold it to; a track without samples is EmptyAudioError
    formats = set(container.format.name.split(","))
    if not formats & _EXACT_LENGTH_FORMATS:
        return
    if declared_s - decoded_s > max(_TRUNCATION_TOLERANCE_S, 0.02 * declared_s):
        raise UndecodableAudioError(
            f"the file is truncated: its header states {declared_s:.1f} s of audio, "
            f"but only {decoded_s:.1f} s could be decoded"
        )


def decode_pcm_s16le(
    data: bytes | bytearray | memoryview, sample_rate: int = SAMPLE_RATE
) -> npt.NDArray[np.float32]:
    """Convert raw little-endian signed 16-bit mono PCM at 16 kHz to float32 in [-1, 1)."""
    if sample_rate != SAMPLE_RATE:
        raise UndecodableAudioError(
            f"raw PCM must be sampled at {SAMPLE_RATE} Hz, not {sample_rate} Hz"
        )
    view = memoryview(data).cast("B")
    if view.nbytes == 0:
        raise EmptyAudioError()
    if view.nbytes % 2:
        raise UndecodableAudioError(
            "raw PCM must be 16-bit samples, but the upload has an odd number of bytes"
        )
    pcm = np.frombuffer(view, dtype="<i2")
    return (pcm.astype(np.float32) / np.float32(32768.0)).astype(np.float32, copy=False)


def duration_seconds(samples: npt.NDArray[np.float32]) -> float:
    """Length in seconds of a 1-D array of samples at :data:`SAMPLE_RATE`."""
    if samples.ndim != 1:
        raise ValueError(f"expected a 1-D array of samples, got shape {samples.shape}")
    return int(samples.shape[0]) / SAMPLE_RATE


def _first_audio_stream(container: InputContainer) -> AudioStream:
    """The first audio stream, or the right error for a container without one."""
    if container.streams.audio:
        return container.streams.audio[0]
    if container.streams.video:
        # A silent video or a picture: readable, just nothing to listen to.
        raise NoAudioStreamError()
    # Only subtitles or data (FFmpeg happily opens .srt/.vtt text): not media at all.
    raise UndecodableAudioError()


def _decode_stream(
    container: InputContainer, stream: AudioStream, max_samples: int | None = None
) -> npt.NDArray[np.float32]:
    """Decode every frame of ``stream``, resampled to mono float32 at 16 kHz.

    Stops early, returning more than ``max_samples`` samples, once that many are
    decoded: the caller refuses such audio without decoding the rest.
    """
    sink = _SampleSink(max_samples)
    resampler: AudioResampler | None = None
    source: tuple[str, str, int] | None = None
    for frame in container.decode(stream):
        if sink.full:
            break
        # A resampler is fixed to the first frame's format/layout/rate; some streams
        # (e.g. concatenated mp3s, broadcast AAC) change these midway, so start anew.
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if resampler is None or shape != source:
            if resampler is not None:
                _collect(resampler.resample(None), sink)
            resampler = _new_resampler()
            source = shape
        _collect(resampler.resample(frame), sink)
    if resampler is not None:
        _collect(resampler.resample(None), sink)
    samples = sink.samples()
    # Lossy decoders (mp3, aac, opus) may overshoot full scale slightly.
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


class _SampleSink:
    """Where decoded samples go: with a limit, one buffer filled in place.

    The buffer has room for one sample past the limit (which marks audio too
    long). `np.empty` maps its pages lazily, so the resident memory is the audio
    decoded so far, and no second copy is ever made. Without a limit, chunks
    are joined at the end.
    """

    def __init__(self, limit: int | None) -> None:
        self._buffer = None if limit is None else np.empty(limit + 1, dtype=np.float32)
        self._chunks: list[npt.NDArray[np.float32]] = []
        self.count = 0

    @property
    def full(self) -> bool:
        """Whether the limit has been passed (the rest need not be decoded)."""
        return self._buffer is not None and self.count >= self._buffer.size

    def add(self, chunk: npt.NDArray[np.float32]) -> None:
        """Append samples (past the limit they are dropped)."""
        if self._buffer is None:
            self._chunks.append(chunk.copy())
            self.count += chunk.size
            return
        take = min(chunk.size, self._buffer.size - self.count)
        self._buffer[self.count : self.count + take] = chunk[:take]
        self.count += take

    def samples(self) -> npt.NDArray[np.float32]:
        """Everything added, as one array (a view of the buffer: no copy)."""
        if self._buffer is not None:
            return self._buffer[: self.count]
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)


def _new_resampler() -> AudioResampler:
    return AudioResampler(format=_OUTPUT_FORMAT, layout=_OUTPUT_LAYOUT, rate=SAMPLE_RATE)


def _collect(frames: Iterable[AudioFrame | None], sink: _SampleSink) -> None:
    """Add the samples of resampled frames (a passthrough flush yields ``None``) to `sink`."""
    for frame in frames:
        if frame is None or frame.samples == 0:
            continue
        sink.add(np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1))
