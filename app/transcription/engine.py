"""The faster-whisper adapter: options in, `Transcript` out, progress on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.transcription.audio import SAMPLE_RATE
from app.transcription.types import Segment, TranscribeOptions, Transcript, Word

__all__ = [
    "FasterWhisperTranscriber",
    "JobCancelledError",
    "ProgressCallback",
    "StopCheck",
    "Transcriber",
]

AudioArray = npt.NDArray[np.float32]
ProgressCallback = Callable[[float], None]
StopCheck = Callable[[], bool]


class JobCancelledError(Exception):
    """The job was cancelled while it was being decoded."""


class Transcriber(Protocol):
    """Something that turns 16 kHz mono samples into a Transcript (blocking)."""

    def transcribe(
        self,
        audio: AudioArray,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
    ) -> Transcript:
        """Decode `audio`; report the fraction done; raise JobCancelledError when told to stop."""
        ...


def _words(raw_words: Iterable[Any] | None) -> list[Word] | None:
    if raw_words is None:
        return None
    return [
        Word(start=w.start, end=w.end, word=w.word, probability=w.probability) for w in raw_words
    ]


def _segment(raw: Any) -> Segment:
    return Segment(
        id=int(raw.id),
        seek=int(raw.seek),
        start=float(raw.start),
        end=float(raw.end),
        text=str(raw.text),
        tokens=list(raw.tokens),
        temperature=float(raw.temperature or 0.0),
        avg_logprob=float(raw.avg_logprob),
        compression_ratio=float(raw.compression_ratio),
        no_speech_prob=float(raw.no_speech_prob),
        words=_words(raw.words),
    )


class FasterWhisperTranscriber:
    """Runs a loaded `faster_whisper.WhisperModel` on one job at a time."""

    def __init__(self, model: Any, *, compute_type: str | None = None) -> None:
        self.model = model
        self.compute_type = compute_type

    def transcribe(
        self,
        audio: AudioArray,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
    ) -> Transcript:
        """Decode segment by segment so that progress and cancellation work mid-job."""
        duration = len(audio) / SAMPLE_RATE
        raw_segments, info = self.model.transcribe(
            audio,
            task=options.task,
            language=options.language,
            initial_prompt=options.initial_prompt,
            word_timestamps=options.word_timestamps,
            vad_filter=options.vad_filter,
            beam_size=options.beam_size,
            temperature=options.temperature,
        )
        segments: list[Segment] = []
        for raw in raw_segments:
            if should_stop():
                raise JobCancelledError
            segments.append(_segment(raw))
            if duration > 0:
                on_progress(min(1.0, float(raw.end) / duration))
        on_progress(1.0)
        return Transcript(
            text="".join(segment.text for segment in segments).strip(),
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration=float(info.duration),
            segments=segments,
        )
