"""Adaptive encoder context: a window shorter than 30 s is encoded on its own length.

Whisper's encoder is built for 3000 mel frames (30 s); faster-whisper pads every
shorter window with zeros up to that size, so a 3 s clip pays for 27 s of padding.
CTranslate2's encoder accepts fewer frames, and Whisper decodes a shorter context
correctly as long as it keeps some silence after the speech (the margin) and is not
too short overall (the floor); below that it starts to loop. Both values come from
`whisper-api bench context` (the study in docs/benchmarks.md).

`AdaptiveContextWhisperModel.encode` finds where the zero padding starts and
encodes only `ContextPolicy.frames_for(content)` frames. One encoder output per
window stays: language detection and decoding read the same (shorter) output.
Where the first decoding of a shortened window shows a known failure sign (a
repetition loop, a low average log-probability, a timestamp past the audio), the
window is encoded again with the full context and decoded exactly as faster-whisper
would, temperature fallback included, so the result is never below today's.

Relies on faster-whisper 1.2.1 internals (pinned in pyproject.toml): its
`generate_segments()` and batched pipeline pad with `pad_or_trim` (zeros) and call
`encode()`, `generate_with_fallback()` and `add_word_timestamps()` on the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import structlog
from faster_whisper import WhisperModel
from faster_whisper.transcribe import get_compression_ratio

__all__ = [
    "DEFAULT_POLICY",
    "FULL_CONTEXT_FRAMES",
    "FULL_POLICY",
    "AdaptiveContextWhisperModel",
    "ContextPolicy",
    "Decoding",
    "FailureThresholds",
    "content_frames",
    "policy_for",
    "row_content_frames",
    "shows_failure",
    "timestamp_overrun",
]

log = structlog.get_logger(__name__)

FULL_CONTEXT_FRAMES = 3000
FRAMES_PER_SECOND = 100
# Encoder lengths in steps of 128 mel frames (64 encoder positions): matrix kernels
# work in tiles of 16-64 rows, and few distinct shapes keep their caches warm.
FRAME_MULTIPLE = 128
# Chosen by the study in docs/benchmarks.md (`whisper-api bench context`).
DEFAULT_FLOOR_FRAMES = 1000
DEFAULT_MARGIN_FRAMES = 200
# A window with fewer frames of audio than this (0.1 s) holds no word: never redone.
SLIVER_FRAMES = 10
# A timestamp this far past the last frame of audio means the decoder made it up.
TIMESTAMP_TOLERANCE_S = 0.5


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """How many mel frames the encoder sees for a window with `content` frames of audio."""

    adaptive: bool = True
    floor_frames: int = DEFAULT_FLOOR_FRAMES
    margin_frames: int = DEFAULT_MARGIN_FRAMES
    multiple: int = FRAME_MULTIPLE

    def frames_for(self, content: int) -> int:
        """Content plus margin, at least the floor, rounded up; never above 3000."""
        if not self.adaptive or content >= FULL_CONTEXT_FRAMES:
            return FULL_CONTEXT_FRAMES
        wanted = max(self.floor_frames, content + self.margin_frames, 1)
        rounded = -(-wanted // self.multiple) * self.multiple
        return min(FULL_CONTEXT_FRAMES, rounded)

    @property
    def label(self) -> str:
        """A short name for logs and benchmark tables."""
        if not self.adaptive:
            return "full"
        return (
            f"adaptive(floor {self.floor_frames / FRAMES_PER_SECOND:g} s, "
            f"margin {self.margin_frames / FRAMES_PER_SECOND:g} s)"
        )


DEFAULT_POLICY = ContextPolicy()
FULL_POLICY = ContextPolicy(adaptive=False)


def policy_for(setting: Literal["adaptive", "full"]) -> ContextPolicy:
    """The policy the ENCODER_CONTEXT setting names."""
    return FULL_POLICY if setting == "full" else DEFAULT_POLICY


def row_content_frames(features: npt.NDArray[np.float32]) -> list[int]:
    """For each window of (batch, mels, frames) features: frames before the zero padding.

    `pad_or_trim` pads with exact zeros; a real log-mel frame is never zero in every
    band (silence sits at the clipped minimum, well below zero).
    """
    batch = features if features.ndim == 3 else features[np.newaxis]
    sounding = np.any(batch != 0, axis=1)  # (batch, frames)
    counts: list[int] = []
    for row in sounding:
        nonzero = np.flatnonzero(row)
        counts.append(int(nonzero[-1]) + 1 if nonzero.size else 0)
    return counts


def content_frames(features: npt.NDArray[np.float32]) -> int:
    """Frames before the padding of the longest window in `features`."""
    return max(row_content_frames(features), default=0)


@dataclass(frozen=True, slots=True)
class FailureThresholds:
    """faster-whisper's fallback thresholds (None switches a check off)."""

    compression_ratio: float | None = 2.4
    log_prob: float | None = -1.0
    no_speech: float | None = 0.6

    @classmethod
    def of(cls, options: Any) -> FailureThresholds:
        """The thresholds in a faster-whisper TranscriptionOptions."""
        return cls(
            compression_ratio=options.compression_ratio_threshold,
            log_prob=options.log_prob_threshold,
            no_speech=options.no_speech_threshold,
        )


@dataclass(frozen=True, slots=True)
class Decoding:
    """What one decoded window said, as far as the failure checks need it."""

    tokens: Sequence[int]
    text: str
    avg_logprob: float
    no_speech_prob: float


def shows_failure(
    decoding: Decoding,
    *,
    content_s: float,
    timestamp_begin: int,
    time_precision: float,
    thresholds: FailureThresholds,
) -> bool:
    """The signs that Whisper lost its way on a window: loop, doubt or invented time."""
    ratio_limit, logprob_limit, no_speech_limit = (
        thresholds.compression_ratio,
        thresholds.log_prob,
        thresholds.no_speech,
    )
    looping = ratio_limit is not None and get_compression_ratio(decoding.text) > ratio_limit
    silent = no_speech_limit is not None and decoding.no_speech_prob > no_speech_limit
    doubtful = logprob_limit is not None and decoding.avg_logprob < logprob_limit and not silent
    overrun = timestamp_overrun(
        decoding.tokens,
        content_s=content_s,
        timestamp_begin=timestamp_begin,
        time_precision=time_precision,
    )
    return looping or doubtful or overrun


def timestamp_overrun(
    tokens: Sequence[int], *, content_s: float, timestamp_begin: int, time_precision: float
) -> bool:
    """Whether a timestamp token points past the end of the window's audio."""
    times = [token - timestamp_begin for token in tokens if token >= timestamp_begin]
    return bool(times) and max(times) * time_precision > content_s + TIMESTAMP_TOLERANCE_S


@dataclass(frozen=True, slots=True)
class _Shortened:
    """A window encoded on fewer frames: its output, its padded features, its content."""

    output: Any
    features: npt.NDArray[np.float32]
    content: int


@dataclass(frozen=True, slots=True)
class _Silent:
    """The decoding of a sliver, shaped like CTranslate2's result: no tokens, no speech."""

    sequences_ids: tuple[list[int], ...] = ([],)
    scores: tuple[float, ...] = (0.0,)
    no_speech_prob: float = 1.0


_SILENCE = _Silent()
# With no_speech_prob 1.0 this makes faster-whisper skip the window as silence.
SILENT_LOGPROB = -10.0


class AdaptiveContextWhisperModel(WhisperModel):  # type: ignore[misc]
    """A WhisperModel that encodes short windows on a shorter context (see module doc)."""

    def __init__(
        self, *args: Any, encoder_context: ContextPolicy = DEFAULT_POLICY, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.encoder_context = encoder_context
        # Per inference thread: the last shortened window, its full-context redo, and
        # whether a full context is forced (the batched pipeline's redo).
        self._windows = threading.local()
        # Off only in the floor/margin study, which measures a policy's own quality.
        self.redo_failures = True
        # Diagnostics for the study and the benchmark (not exact under concurrent use).
        self.windows_redone = 0
        self.encoded_frames = 0

    def _encode(self, features: np.ndarray) -> Any:
        rows = features.shape[0] if features.ndim == 3 else 1
        self.encoded_frames += rows * features.shape[-1]
        return super().encode(features)

    def encode(self, features: np.ndarray) -> Any:
        """Encode on `frames_for(content)` frames where the features end in padding."""
        given = getattr(self._windows, "given", None)
        if given is not None and given[0] is features:
            return given[1]  # encoded already, by the caller of `reuse_encoding`
        if features.shape[-1] != FULL_CONTEXT_FRAMES or getattr(self._windows, "force_full", False):
            return self._encode(features)
        content = content_frames(features)
        frames = self.encoder_context.frames_for(content)
        if frames >= FULL_CONTEXT_FRAMES:
            return self._encode(features)
        output = self._encode(features[..., :frames])
        self._windows.shortened = _Shortened(output, features, content)
        return output

    @contextlib.contextmanager
    def reuse_encoding(self, features: np.ndarray, encoder_output: Any) -> Iterator[None]:
        """Within this block, encoding these very features returns `encoder_output`."""
        self._windows.given = (features, encoder_output)
        try:
            yield
        finally:
            self._windows.given = None

    @contextlib.contextmanager
    def full_context(self) -> Iterator[None]:
        """Within this block, this thread's windows are encoded on all 3000 frames."""
        self._windows.force_full = True
        try:
            yield
        finally:
            self._windows.force_full = False

    def is_shortened(self, encoder_output: Any) -> bool:
        """Whether `encoder_output` came from a shortened window on this thread."""
        return self._kept(encoder_output) is not None

    def _kept(self, encoder_output: Any) -> _Shortened | None:
        kept: _Shortened | None = getattr(self._windows, "shortened", None)
        return kept if kept is not None and kept.output is encoder_output else None

    def generate_with_fallback(
        self, encoder_output: Any, prompt: list[int], tokenizer: Any, options: Any
    ) -> Any:
        """Decode a shortened window once; on a failure sign redo it as faster-whisper would."""
        kept = self._kept(encoder_output)
        if kept is None:
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
        if kept.content < SLIVER_FRAMES:
            # The few frames left after a window's last timestamp hold no word; decoded
            # on a short context they come out as "Thank you." and a redo would cost a
            # full encoder pass to hear the same silence.
            return _SILENCE, SILENT_LOGPROB, options.temperatures[0], 0.0
        first = dataclasses.replace(options, temperatures=list(options.temperatures[:1]))
        attempt = super().generate_with_fallback(encoder_output, prompt, tokenizer, first)
        result, avg_logprob, _, _ = attempt
        decoding = Decoding(
            tokens=result.sequences_ids[0],
            text=tokenizer.decode(result.sequences_ids[0]).strip(),
            avg_logprob=float(avg_logprob),
            no_speech_prob=float(result.no_speech_prob),
        )
        if not shows_failure(
            decoding,
            content_s=kept.content / FRAMES_PER_SECOND,
            timestamp_begin=tokenizer.timestamp_begin,
            time_precision=self.time_precision,
            thresholds=FailureThresholds.of(options),
        ):
            return attempt
        self.windows_redone += 1
        if not self.redo_failures:
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
        log.info("encoder_context_redo", content_frames=kept.content)
        full = self._encode(kept.features)
        self._windows.redone = (encoder_output, full)
        return super().generate_with_fallback(full, prompt, tokenizer, options)

    def add_word_timestamps(
        self, segments: list[Any], tokenizer: Any, encoder_output: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """Align words on the encoder output the window's text was decoded from."""
        redone = getattr(self._windows, "redone", None)
        if redone is not None and redone[0] is encoder_output:
            encoder_output = redone[1]
        return super().add_word_timestamps(segments, tokenizer, encoder_output, *args, **kwargs)
