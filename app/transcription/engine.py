"""The faster-whisper adapter: options in, `Transcript` out, progress on the way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from app.transcription.audio import SAMPLE_RATE
from app.transcription.batching import decode_short_batch
from app.transcription.timing import clamp_to_duration
from app.transcription.types import Segment, TranscribeOptions, Transcript, Word

__all__ = [
    "BatchTranscriber",
    "FasterWhisperTranscriber",
    "JobCancelledError",
    "ProgressCallback",
    "StopCheck",
    "Transcriber",
    "split_on_words",
]

AudioArray = npt.NDArray[np.float32]
ProgressCallback = Callable[[float], None]
StopCheck = Callable[[], bool]


class JobCancelledError(Exception):
    """The job was cancelled while it was being decoded."""


class BatchTranscriber(Protocol):
    """A transcriber that can also decode several short clips in one pass."""

    def decode_batch(
        self, audios: list[AudioArray], options: list[TranscribeOptions]
    ) -> list[Transcript | None]:
        """One result per clip; None where the clip must go through `transcribe`."""
        ...


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


SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
PAUSE_S = 0.8
MAX_SEGMENT_S = 15.0


def split_on_words(segment: Segment, first_id: int, *, keep_words: bool) -> list[Segment]:
    """Cut one long segment into sentences, long pauses or 15 s pieces by its word timings.

    The batched pipeline decodes up to 30 s chunks without timestamps; its word
    timings give subtitle-sized segments back. Tokens stay with the first piece
    only, since words do not map one-to-one onto tokens.
    """
    words = segment.words or []
    if not words:
        return [msgspec.structs.replace(segment, id=first_id + 1)]
    pieces: list[list[Word]] = [[]]
    for word in words:
        current = pieces[-1]
        if current and _ends_piece(current, word):
            pieces.append([])
        pieces[-1].append(word)
    return [
        msgspec.structs.replace(
            segment,
            id=first_id + index + 1,
            start=piece[0].start,
            end=piece[-1].end,
            text="".join(w.word for w in piece),
            tokens=segment.tokens if index == 0 else [],
            words=piece if keep_words else None,
        )
        for index, piece in enumerate(pieces)
    ]


def _ends_piece(current: list[Word], following: Word) -> bool:
    last = current[-1]
    return (
        last.word.strip().endswith(SENTENCE_END)
        or following.start - last.end >= PAUSE_S
        or following.end - current[0].start > MAX_SEGMENT_S
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
        common: dict[str, Any] = {
            "task": options.task,
            "language": options.language,
            "initial_prompt": options.initial_prompt,
            "word_timestamps": options.word_timestamps,
            "beam_size": options.beam_size,
            "temperature": options.temperature,
        }
        batched = options.long_form_batch_size > 0
        if batched:
            from faster_whisper import BatchedInferencePipeline

            pipeline = BatchedInferencePipeline(self.model)
            # Word timings are cheap here and let 30 s chunks be cut into readable segments.
            common["word_timestamps"] = True
            raw_segments, info = pipeline.transcribe(
                audio, batch_size=options.long_form_batch_size, vad_filter=True, **common
            )
        else:
            raw_segments, info = self.model.transcribe(
                audio, vad_filter=options.vad_filter, **common
            )
        segments: list[Segment] = []
        for raw in raw_segments:
            if should_stop():
                raise JobCancelledError
            segment = _segment(raw)
            if batched:
                segments.extend(
                    split_on_words(segment, len(segments), keep_words=options.word_timestamps)
                )
            else:
                segments.append(segment)
            if duration > 0:
                on_progress(min(1.0, float(raw.end) / duration))
        on_progress(1.0)
        segments = [clamp_to_duration(segment, duration) for segment in segments]
        return Transcript(
            text="".join(segment.text for segment in segments).strip(),
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration=float(info.duration),
            segments=segments,
        )

    def decode_batch(
        self, audios: list[AudioArray], options: list[TranscribeOptions]
    ) -> list[Transcript | None]:
        """Decode several short clips in one pass; None where one needs `transcribe`."""
        return decode_short_batch(self.model, audios, options)
