"""Live audio in: 24 kHz PCM16 chunks resampled to 16 kHz, and a voice detector over them.

Framework-free and in memory only. The Realtime protocol sends little-endian 16-bit
mono PCM at 24 kHz in small base64 chunks; `PcmResampler` turns each chunk into
Whisper's float32 samples at 16 kHz with PyAV's resampler (stateful, so chunk
boundaries leave no clicks). `VoiceDetector` scores 32 ms frames with the Silero
model faster-whisper ships and turns the scores into speech start / stop events
the way OpenAI's `server_vad` describes them (threshold, prefix padding, silence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from app.transcription.audio import SAMPLE_RATE
from app.transcription.types import Word

__all__ = [
    "INPUT_RATE",
    "VAD_FRAME_SAMPLES",
    "WORD_SLACK_S",
    "PcmResampler",
    "SileroScorer",
    "SileroStream",
    "SpeechMap",
    "SpeechScorer",
    "TurnDetection",
    "VoiceDetector",
    "VoiceEvent",
    "silero_scorer",
]

Samples = npt.NDArray[np.float32]
INPUT_RATE = 24000
# Silero scores 512-sample (32 ms) frames at 16 kHz.
VAD_FRAME_SAMPLES = 512
# How far from a voiced frame a word may lie (Whisper's word times are this loose).
WORD_SLACK_S = 0.2
# Speech shorter than this opens no turn (Silero's own default minimum).
MIN_SPEECH_MS = 250
SpeechScorer = Callable[[Samples], list[float]]
"""Speech probability of each whole `VAD_FRAME_SAMPLES` frame of the samples given."""


class PcmResampler:
    """PCM16 LE mono at `rate` Hz in, float32 at 16 kHz out, chunk by chunk."""

    def __init__(self, rate: int = INPUT_RATE) -> None:
        self._rate = rate
        self._resampler = AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._odd_byte = b""

    def push(self, pcm: bytes) -> Samples:
        """The 16 kHz samples of this chunk (an odd trailing byte waits for the next one)."""
        data = self._odd_byte + pcm
        cut = len(data) - len(data) % 2
        self._odd_byte = data[cut:]
        if cut == 0:
            return np.zeros(0, dtype=np.float32)
        if self._rate == SAMPLE_RATE:
            ints = np.frombuffer(data[:cut], dtype="<i2")
            return (ints.astype(np.float32) / np.float32(32768.0)).astype(np.float32)
        frame = AudioFrame.from_ndarray(
            np.frombuffer(data[:cut], dtype="<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self._rate
        return _join(self._resampler.resample(frame))


def _join(frames: list[AudioFrame]) -> Samples:
    parts = [frame.to_ndarray().reshape(-1).astype(np.float32) for frame in frames if frame]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def silero_scorer() -> SpeechScorer:
    """Silero VAD as bundled with faster-whisper (loaded once, a few MB, CPU only).

    Shared by every session; each voice detector scores through its own
    `SileroStream` (`streaming`), which carries the model's state from chunk to chunk.
    """
    from faster_whisper.vad import get_vad_model

    return SileroScorer(get_vad_model().session)


class SileroScorer:
    """The Silero model's session; called directly, it scores each chunk from a fresh state."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def __call__(self, samples: Samples) -> list[float]:
        """Speech probabilities of the chunk's whole frames, as if nothing came before."""
        return SileroStream(self.session)(samples)

    def streaming(self) -> SpeechScorer:
        """A scorer for one stream: each chunk continues where the last one ended."""
        return SileroStream(self.session)


class SileroStream:
    """One stream's scorer: the model's recurrent state and the last 64 samples carried over.

    Silero listens with memory: scored chunk by chunk from a fresh state (as its
    batch entry point does), 100 ms chunks come out far less sure of soft speech.
    """

    CONTEXT = 64

    def __init__(self, session: Any) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)

    def __call__(self, samples: Samples) -> list[float]:
        """Speech probability of each whole frame of `samples` (the rest is ignored)."""
        whole = len(samples) - len(samples) % VAD_FRAME_SAMPLES
        if whole == 0:
            return []
        frames = samples[:whole].astype(np.float32).reshape(-1, VAD_FRAME_SAMPLES)
        before = np.concatenate([self._context[None, :], frames[:-1, -self.CONTEXT :]])
        batch = np.concatenate([before, frames], axis=1)
        out, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = frames[-1, -self.CONTEXT :].copy()
        return [float(p) for p in np.asarray(out).reshape(-1)[: len(frames)]]


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """OpenAI's server_vad knobs: speech probability, padding kept before speech, silence."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True, slots=True)
class VoiceEvent:
    """Speech started or stopped, at `sample` (16 kHz samples since the session began)."""

    kind: str  # "started" or "stopped"
    sample: int
    # Where the detector could tell (the end of the frame that decided it): the audio
    # before it is what a turn may hold when the event is handled.
    heard_at: int = 0

    @property
    def ms(self) -> int:
        """The event's time in milliseconds since the session began."""
        return self.sample * 1000 // SAMPLE_RATE


class SpeechMap:
    """Which 32 ms frames of a session sounded like a voice (one byte a frame, ~110 KB an hour).

    A lower bar than the detector's threshold (as Silero's own `neg_threshold`): it
    tells words Whisper heard in a voice from words it made up in silence or noise.
    """

    def __init__(self, first_sample: int) -> None:
        self.first_sample = first_sample
        self._voiced = bytearray()

    def add(self, voiced: bool) -> None:
        """The next frame's verdict."""
        self._voiced.append(1 if voiced else 0)

    def heard(self, start_sample: int, end_sample: int) -> bool:
        """Whether any frame overlapping [start_sample, end_sample) was voiced.

        Audio not scored (yet) counts as voiced: only what the detector heard as
        silence rules a word out.
        """
        first = max(0, (start_sample - self.first_sample) // VAD_FRAME_SAMPLES)
        last = (end_sample - self.first_sample - 1) // VAD_FRAME_SAMPLES + 1
        if last > len(self._voiced) or last <= 0:
            return True
        return 1 in self._voiced[first:last]

    def said(self, words: list[Word], base_sample: int) -> list[Word]:
        """The words (times in seconds from `base_sample`) with a voiced frame near them.

        Whisper fills silence and noise with text of its own ("Thank you.", "Thanks
        for watching!"); a word with no voiced frame within `WORD_SLACK_S` was not said.
        """
        slack = round(WORD_SLACK_S * SAMPLE_RATE)
        return [
            word
            for word in words
            if self.heard(
                base_sample + round(word.start * SAMPLE_RATE) - slack,
                base_sample + round(word.end * SAMPLE_RATE) + slack,
            )
        ]


class VoiceDetector:
    """Frames in, speech started / stopped out, by threshold and a silence that lasts.

    Speech starts at the first frame at or above the threshold (the turn then takes
    `prefix_padding_ms` of audio before it), once `min_speech_ms` of such frames
    have followed without the silence that ends a turn (a click or a bump opens no
    turn), and stops once `silence_duration_ms` of frames below threshold - 0.15 follow; the stop
    is placed where that silence began. Positions count 16 kHz samples of the
    session from `first_sample`, where the detector began listening.
    """

    def __init__(
        self,
        detection: TurnDetection,
        scorer: SpeechScorer,
        *,
        first_sample: int = 0,
        min_speech_ms: int = MIN_SPEECH_MS,
    ) -> None:
        self.detection = detection
        # A scorer with memory (Silero) gets a stream of its own for this detector.
        streaming = getattr(scorer, "streaming", None)
        self._score: SpeechScorer = streaming() if callable(streaming) else scorer
        self._pending = np.zeros(0, dtype=np.float32)
        self._first_sample = first_sample
        self._frames_seen = 0
        self.in_speech = False
        self._silent_frames = 0
        self._silence_frames_needed = max(
            1, detection.silence_duration_ms * SAMPLE_RATE // 1000 // VAD_FRAME_SAMPLES
        )
        self._speech_frames_needed = max(
            1, min_speech_ms * SAMPLE_RATE // 1000 // VAD_FRAME_SAMPLES
        )
        self._candidate: int | None = None  # where speech not yet long enough began
        self._candidate_frames = 0
        self._voiced_bar = max(0.1, detection.threshold - 0.15)
        self.speech = SpeechMap(first_sample)

    def push(self, samples: Samples) -> list[VoiceEvent]:
        """Score every whole frame now available; the events they cause, in order."""
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) - len(self._pending) % VAD_FRAME_SAMPLES
        if whole == 0:
            return []
        frames, self._pending = self._pending[:whole], self._pending[whole:]
        events: list[VoiceEvent] = []
        for probability in self._score(frames):
            voiced = probability >= self._voiced_bar
            self.speech.add(voiced)
            # Hysteresis, as Silero's own: speech starts above the threshold and goes on
            # until the probability falls below threshold - 0.15 (a soft syllable).
            loud = probability >= self.detection.threshold
            event = self._step(voiced if self.in_speech else loud)
            if event is not None:
                events.append(event)
            self._frames_seen += 1
        return events

    def _step(self, speech: bool) -> VoiceEvent | None:
        here = self._first_sample + self._frames_seen * VAD_FRAME_SAMPLES
        if not self.in_speech:
            return self._maybe_start(speech, here)
        if speech:
            self._silent_frames = 0
            return None
        self._silent_frames += 1
        if self._silent_frames >= self._silence_frames_needed:
            self.in_speech = False
            began = here - (self._silent_frames - 1) * VAD_FRAME_SAMPLES
            return VoiceEvent("stopped", began, here + VAD_FRAME_SAMPLES)
        return None

    def _maybe_start(self, speech: bool, here: int) -> VoiceEvent | None:
        if self._candidate is None:
            if not speech:
                return None
            self._candidate, self._candidate_frames, self._silent_frames = here, 0, 0
        if speech:
            self._candidate_frames += 1
            self._silent_frames = 0
        else:
            self._silent_frames += 1
            if self._silent_frames >= self._silence_frames_needed:
                self._candidate = None  # too short to be speech
                return None
        if self._candidate_frames < self._speech_frames_needed:
            return None
        began, self._candidate = self._candidate, None
        self.in_speech, self._silent_frames = True, 0
        return VoiceEvent("started", began, here + VAD_FRAME_SAMPLES)

    def reset(self) -> None:
        """Forget the current speech state (the buffer was cleared or committed by hand)."""
        self.in_speech, self._silent_frames, self._candidate = False, 0, None
