"""Decode uploaded audio or video into the samples Whisper wants, entirely in memory.

Whisper models take float32 mono PCM at 16 kHz in [-1, 1]. :func:`decode_audio` turns
the bytes of any container FFmpeg can read (wav, flac, mp3, ogg/opus, m4a/aac, webm,
mp4/mkv with a video track, ...) into that array with PyAV, reading from an
``io.BytesIO``: nothing is ever written to disk. Every failure is an
:class:`AudioDecodeError` whose message is fit to show to the client as-is.
"""

from __future__ import annotations

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
    "EmptyAudioError",
    "NoAudioStreamError",
    "UndecodableAudioError",
    "decode_audio",
    "decode_pcm_s16le",
    "duration_seconds",
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


_NO_SAMPLES = "the audio track contains no samples"
_CORRUPT = "the audio track is corrupt and could not be decoded"


def decode_audio(data: bytes | bytearray | memoryview) -> npt.NDArray[np.float32]:
    """Decode the first audio track of ``data`` to float32 mono samples at 16 kHz in [-1, 1].

    Raises :class:`EmptyAudioError` for an empty upload or a track without samples,
    :class:`NoAudioStreamError` for a readable video/image without audio, and
    :class:`UndecodableAudioError` for anything FFmpeg cannot read (text, garbage,
    data that turns corrupt part-way through).
    """
    if memoryview(data).nbytes == 0:
        raise EmptyAudioError()
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError) as exc:
        raise UndecodableAudioError() from exc
    with container:
        stream = _first_audio_stream(container)
        try:
            samples = _decode_stream(container, stream)
        except (av.error.FFmpegError, ValueError) as exc:
            raise UndecodableAudioError(_CORRUPT) from exc
    if samples.size == 0:
        raise EmptyAudioError(_NO_SAMPLES)
    return samples


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


def _decode_stream(container: InputContainer, stream: AudioStream) -> npt.NDArray[np.float32]:
    """Decode every frame of ``stream``, resampled to mono float32 at 16 kHz."""
    chunks: list[npt.NDArray[np.float32]] = []
    resampler: AudioResampler | None = None
    source: tuple[str, str, int] | None = None
    for frame in container.decode(stream):
        # A resampler is fixed to the first frame's format/layout/rate; some streams
        # (e.g. concatenated mp3s, broadcast AAC) change these midway, so start anew.
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if resampler is None or shape != source:
            if resampler is not None:
                _collect(resampler.resample(None), chunks)
            resampler = _new_resampler()
            source = shape
        _collect(resampler.resample(frame), chunks)
    if resampler is not None:
        _collect(resampler.resample(None), chunks)
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(chunks)
    # Lossy decoders (mp3, aac, opus) may overshoot full scale slightly.
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def _new_resampler() -> AudioResampler:
    return AudioResampler(format=_OUTPUT_FORMAT, layout=_OUTPUT_LAYOUT, rate=SAMPLE_RATE)


def _collect(frames: Iterable[AudioFrame | None], chunks: list[npt.NDArray[np.float32]]) -> None:
    """Append the samples of resampled frames (a passthrough flush yields ``None``)."""
    for frame in frames:
        if frame is None or frame.samples == 0:
            continue
        array = frame.to_ndarray()
        chunks.append(np.ascontiguousarray(array.reshape(-1), dtype=np.float32))
