"""The faster-whisper adapter: options in, `Transcript` out, progress on the way."""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from app.transcription.audio import SAMPLE_RATE
from app.transcription.batching import decode_short_batch
from app.transcription.progress import (
    BEFORE_DONE,
    BatchPace,
    LongFormProgress,
    ProgressCallback,
)
from app.transcription.timing import clamp_to_duration
from app.transcription.types import (
    LanguageCandidate,
    LanguageDetection,
    Segment,
    TranscribeOptions,
    Transcript,
    Word,
)

__all__ = [
    "DETECTION_CANDIDATES",
    "DETECTION_WINDOWS",
    "FasterWhisperTranscriber",
    "JobCancelledError",
    "ProgressCallback",
    "SegmentCallback",
    "StopCheck",
    "Transcriber",
    "speech_windows",
    "split_on_words",
]

AudioArray = npt.NDArray[np.float32]
SegmentCallback = Callable[[Segment], None]
StopCheck = Callable[[], bool]

# Whisper hears 30 s at a time; language detection looks at up to this many such windows
# of speech, spread over the whole recording, and averages what they say.
WINDOW_SAMPLES = 30 * SAMPLE_RATE
DETECTION_WINDOWS = 6
DETECTION_CANDIDATES = 5


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
        on_segment: SegmentCallback | None = None,
    ) -> Transcript:
        """Decode `audio`; report the fraction done and each segment as it is decoded;
        raise JobCancelledError when told to stop."""
        ...

    def detect_language(self, audio: AudioArray, should_stop: StopCheck) -> LanguageDetection:
        """Say which language is spoken in `audio` (multilingual models only)."""
        ...


def _words(raw_words: Iterable[Any] | None) -> list[Word] | None:
    if raw_words is None:
        return None
    # faster-whisper's word times are numpy floats: plain floats encode everywhere.
    return [
        Word(
            start=float(w.start),
            end=float(w.end),
            word=str(w.word),
            probability=float(w.probability),
        )
        for w in raw_words
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


# Shorter files say little of a model's pace (its fixed costs dominate).
MIN_PACE_AUDIO_S = 5.0

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


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return None


def return_freed_memory() -> None:
    """Give the heap that a decoding freed back to the system (glibc's malloc_trim).

    Without this an idle server with `base` keeps ~80 MiB of freed decoder buffers
    resident after its first jobs; the call itself takes well under a millisecond.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


class FasterWhisperTranscriber:
    """Runs a loaded `faster_whisper.WhisperModel` on one job at a time."""

    def __init__(
        self,
        model: Any,
        *,
        compute_type: str | None = None,
        parallel: int = 1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.compute_type = compute_type
        # The model's replicas (CPU): a batch is split into this many parts decoded at once.
        self.parallel = parallel
        # How fast this model gets through long audio, kept from one file to the next.
        self.pace = BatchPace()
        self._monotonic = monotonic

    def transcribe(
        self,
        audio: AudioArray,
        options: TranscribeOptions,
        on_progress: ProgressCallback,
        should_stop: StopCheck,
        on_segment: SegmentCallback | None = None,
    ) -> Transcript:
        """Decode segment by segment so that progress, streaming and cancellation work mid-job."""
        duration = len(audio) / SAMPLE_RATE
        started = self._monotonic()
        common: dict[str, Any] = {
            "task": options.task,
            "language": options.language,
            "initial_prompt": options.initial_prompt,
            # Only when asked: on the sequential path faster-whisper's word timing also moves
            # its seek to the last word's end, and the few silent tenths left after it were
            # decoded again, conditioned on the text so far (a repeat of the start). Words
            # for cues alone are timed aside (`_sequential`, app.transcription.cue_timing).
            "word_timestamps": options.word_timestamps,
            "beam_size": options.beam_size,
            "temperature": options.temperature,
        }
        if options.max_new_tokens is not None:
            common["max_new_tokens"] = options.max_new_tokens
        batched = options.long_form_batch_size > 0
        tracker: LongFormProgress | None = None
        if batched:
            from app.transcription.long_form import AdaptiveBatchedPipeline

            tracker = LongFormProgress(
                duration,
                on_progress,
                self.pace,
                parallel=self.parallel,
                monotonic=self._monotonic,
            )
            # Pads each batch of VAD chunks only to its longest chunk's encoder context.
            pipeline = AdaptiveBatchedPipeline(self.model, parallel=self.parallel, progress=tracker)
            # Word timings are cheap here and let 30 s chunks be cut into readable segments.
            common["word_timestamps"] = True
            raw_segments, info = pipeline.transcribe(
                audio, batch_size=options.long_form_batch_size, vad_filter=True, **common
            )
        else:
            raw_segments, info = self._sequential(audio, options, common)
        segments: list[Segment] = []
        for raw in raw_segments:
            if should_stop():
                raise JobCancelledError
            segment = _segment(raw)
            pieces = (
                split_on_words(segment, len(segments), keep_words=options.times_words)
                if batched
                else [segment]
            )
            for piece in pieces:
                segments.append(piece)
                if on_segment is not None:
                    on_segment(piece)
            if tracker is not None:
                tracker.segment_done(float(raw.end))
            elif duration > 0:
                on_progress(min(BEFORE_DONE, float(raw.end) / duration))
        on_progress(1.0)
        if tracker is None and duration >= MIN_PACE_AUDIO_S:
            # The model's speed on short files: the prior of its first long file's progress.
            self.pace.record_sequential((self._monotonic() - started) / duration)
        return_freed_memory()
        segments = [clamp_to_duration(segment, duration) for segment in segments]
        return Transcript(
            text="".join(segment.text for segment in segments).strip(),
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration=float(info.duration),
            segments=segments,
        )

    def _sequential(
        self, audio: AudioArray, options: TranscribeOptions, common: dict[str, Any]
    ) -> tuple[Iterator[Any], Any]:
        """faster-whisper's sequential decoding; words timed for cues without changing it."""
        for_cues = getattr(self.model, "transcribe_for_cues", None)
        if options.cue_words and not options.word_timestamps and for_cues is not None:
            rest = {name: value for name, value in common.items() if name != "word_timestamps"}
            return for_cues(audio, vad_filter=options.vad_filter, **rest)  # type: ignore[no-any-return]
        return self.model.transcribe(  # type: ignore[no-any-return]
            audio, vad_filter=options.vad_filter, **common
        )

    def decode_batch(
        self, audios: list[AudioArray], options: list[TranscribeOptions]
    ) -> list[Transcript | None]:
        """Decode several short clips in one pass; None where one needs `transcribe`."""
        results = decode_short_batch(self.model, audios, options, parallel=self.parallel)
        return_freed_memory()
        return results

    def detect_language(self, audio: AudioArray, should_stop: StopCheck) -> LanguageDetection:
        """Average Whisper's language probabilities over windows of speech across the audio.

        Silence and music are cut out first (Silero VAD, as faster-whisper's vad_filter),
        so a long intro does not decide the language; where VAD finds no speech, the raw
        audio is used. Each window is one 30 s Whisper input, weighted by its length.
        """
        windows, speech_seconds = speech_windows(audio)
        totals: dict[str, float] = {}
        for window in windows:
            if should_stop():
                raise JobCancelledError
            _, _, probabilities = self.model.detect_language(audio=window)
            weight = len(window) / WINDOW_SAMPLES
            for code, probability in probabilities:
                totals[code] = totals.get(code, 0.0) + weight * float(probability)
        norm = sum(totals.values()) or 1.0
        ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
        candidates = [
            LanguageCandidate(language_code=code, probability=round(total / norm, 4))
            for code, total in ranked[:DETECTION_CANDIDATES]
        ]
        best = candidates[0]
        return LanguageDetection(
            language=best.language_code,
            probability=best.probability,
            candidates=candidates,
            speech_seconds=round(speech_seconds, 3),
        )


def speech_windows(
    audio: AudioArray, max_windows: int = DETECTION_WINDOWS
) -> tuple[list[AudioArray], float]:
    """Up to `max_windows` windows of at most 30 s of speech, spread evenly over the audio.

    Returns the windows and the seconds of speech found. Falls back to windows of the
    raw audio when the voice detector hears nothing (or the audio is too short for it).
    """
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    chunks = get_speech_timestamps(audio, VadOptions())
    if chunks:
        windows, _ = collect_chunks(audio, chunks, max_duration=WINDOW_SAMPLES / SAMPLE_RATE)
        windows = [window for window in windows if len(window)]
        speech_seconds = sum(c["end"] - c["start"] for c in chunks) / SAMPLE_RATE
    else:
        windows, speech_seconds = [], 0.0
    if not windows:
        windows = [
            audio[start : start + WINDOW_SAMPLES] for start in range(0, len(audio), WINDOW_SAMPLES)
        ]
        windows = [window for window in windows if len(window)] or [audio]
    if len(windows) > max_windows:
        step = len(windows) / max_windows
        windows = [windows[int(index * step)] for index in range(max_windows)]
    return windows, speech_seconds
