"""Framework-free value types shared by the engine, queue, formats and API."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Segment", "TaskType", "TranscribeOptions", "Transcript", "Word"]

TaskType = Literal["transcribe", "translate"]


class Word(msgspec.Struct, frozen=True):
    """One word with its timing (seconds from the start of the audio)."""

    start: float
    end: float
    word: str
    probability: float


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded segment, with the fields OpenAI's verbose_json needs."""

    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = msgspec.field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] | None = None


class Transcript(msgspec.Struct, frozen=True, kw_only=True):
    """The whole result of one job."""

    text: str
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]

    @property
    def words(self) -> list[Word]:
        """All words of all segments, in order (empty without word timestamps)."""
        return [word for segment in self.segments for word in segment.words or ()]


class TranscribeOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller may ask of one transcription."""

    task: TaskType = "transcribe"
    language: str | None = None
    initial_prompt: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = False
    beam_size: int = 5
    temperature: float | tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Set by the service, not by callers: >0 runs long audio through faster-whisper's
    # batched VAD pipeline with this many chunks per pass (BATCHED_INFERENCE).
    long_form_batch_size: int = 0

    @property
    def needs_multilingual(self) -> bool:
        """English-only models can neither translate nor detect the language."""
        return self.task == "translate" or self.language != "en"
