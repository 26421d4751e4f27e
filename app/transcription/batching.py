"""Cross-request batching: the first windows of several short jobs decoded in one pass.

Short clips each cost a whole 30 s window, so the worker hands several waiting jobs
to `decode_short_batch`, which encodes their windows in one call per encoder context
(an adaptive model encodes a short window on its own length), detects each
job's language from the shared encoder output, and runs one batched beam search
with a prompt per job (its own language and task). A job's batched result is kept
only when faster-whisper's sequential path would have produced the same thing from
that single window: the quality thresholds pass at temperature 0 and the decoding
reached the end of the audio. Any other job returns None and is decoded on its own
with the full temperature fallback, so batching never lowers quality. On a CPU
model with several replicas (models/loading.py) a context group is split into one
part per replica, and the parts are decoded at once.

Built from faster-whisper 1.2.1's building blocks (pinned in pyproject.toml).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from app.transcription.audio import SAMPLE_RATE
from app.transcription.encoder_context import (
    DEFAULT_POLICY,
    FRAMES_PER_SECOND,
    ContextPolicy,
    timestamp_overrun,
)
from app.transcription.replicas import at_once, part_bounds
from app.transcription.timing import clamp_to_duration
from app.transcription.types import Segment, TranscribeOptions, Transcript, Word

__all__ = ["MAX_BATCHED_SECONDS", "decode_short_batch", "is_batchable", "pick_companions"]

# One window: longer audio needs seeking and goes through the sequential path.
MAX_BATCHED_SECONDS = 29.5
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# faster-whisper's defaults for the thresholds and the first timestamp.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
MAX_INITIAL_TIMESTAMP_S = 1.0


def is_batchable(duration_s: float, options: TranscribeOptions) -> bool:
    """Short audio with the default decoding options can share a batch."""
    return (
        0 < duration_s <= MAX_BATCHED_SECONDS
        and options.task in ("transcribe", "translate")
        and not options.word_timestamps
        and not options.vad_filter
        and options.initial_prompt is None
        and options.beam_size == 5
        and tuple(np.atleast_1d(options.temperature)) == DEFAULT_TEMPERATURES
    )


JobT = TypeVar("JobT")


def pick_companions(
    head: JobT,
    waiting: Sequence[JobT],
    room: int,
    *,
    key: Callable[[JobT], object],
    seconds: Callable[[JobT], float],
    policy: ContextPolicy = DEFAULT_POLICY,
) -> list[JobT]:
    """The waiting jobs (up to `room`, in queue order) that join `head` in one batch.

    Only jobs with the head's key (never None) may join. Members share one encoder
    and decoder pass only with those of the same context (`decode_short_batch`), so
    the ones whose context is closest to the head's join first, earlier arrivals
    first on equal distance. The head itself
    is always decoded now, so no job waits behind more than one batch of later ones.
    """
    head_key = key(head)
    if head_key is None or room <= 0:
        return []

    def context(job: JobT) -> int:
        return policy.frames_for(math.ceil(seconds(job) * FRAMES_PER_SECOND))

    head_context = context(head)
    candidates = [
        (abs(context(job) - head_context), position)
        for position, job in enumerate(waiting)
        if key(job) == head_key
    ]
    chosen = sorted(position for _, position in sorted(candidates)[:room])
    return [waiting[position] for position in chosen]


@dataclass(frozen=True, slots=True)
class _Window:
    features: npt.NDArray[np.float32]
    content_frames: int
    duration: float


def _first_window(model: Any, audio: npt.NDArray[np.float32]) -> _Window:
    """The window generate_segments() would encode first, and its frame count."""
    features = model.feature_extractor(audio)
    content_frames = features.shape[-1] - 1
    size = min(model.feature_extractor.nb_max_frames, content_frames)
    return _Window(
        features=pad_or_trim(features[:, :size]),
        content_frames=content_frames,
        duration=len(audio) / SAMPLE_RATE,
    )


def _languages(
    model: Any, encoder_output: Any, options: list[TranscribeOptions]
) -> list[tuple[str, float]]:
    """Each job's language: given, or the top language detected from its window."""
    if all(o.language is not None for o in options) or not model.model.is_multilingual:
        return [(o.language or "en", 1.0) for o in options]
    detected = model.model.detect_language(encoder_output)
    return [
        (o.language, 1.0) if o.language is not None else (ranked[0][0][2:-2], ranked[0][1])
        for o, ranked in zip(options, detected, strict=True)
    ]


def decode_short_batch(
    model: Any,
    audios: list[npt.NDArray[np.float32]],
    options: list[TranscribeOptions],
    *,
    parallel: int = 1,
) -> list[Transcript | None]:
    """Decode short clips together; None marks a job that needs the sequential path.

    Clips are decoded in one pass per encoder context: Whisper's encoder has no
    padding mask, so a clip padded to a longer member's context would be heard
    differently than on its own. Within a group nothing is padded beyond the
    policy, and each result equals the clip's sequential decoding.
    """
    windows = [_first_window(model, audio) for audio in audios]
    results: list[Transcript | None] = [None] * len(windows)
    parts = [
        group[start:end]
        for group in _same_context_groups(model, windows)
        for start, end in part_bounds(len(group), parallel)
    ]

    def decode(part: list[int]) -> list[Transcript | None]:
        return _decode_group(model, [windows[i] for i in part], [options[i] for i in part])

    for part, part_results in zip(parts, at_once(decode, parts, parallel), strict=True):
        for index, result in zip(part, part_results, strict=True):
            results[index] = result
    return results


def _same_context_groups(model: Any, windows: list[_Window]) -> list[list[int]]:
    """Indices of the windows that an adaptive model encodes on the same number of frames."""
    policy: ContextPolicy | None = getattr(model, "encoder_context", None)
    groups: dict[int, list[int]] = {}
    for index, window in enumerate(windows):
        frames = policy.frames_for(window.content_frames) if policy is not None else 0
        groups.setdefault(frames, []).append(index)
    return list(groups.values())


def _decode_group(
    model: Any, windows: list[_Window], options: list[TranscribeOptions]
) -> list[Transcript | None]:
    encoder_output = model.encode(np.stack([w.features for w in windows]))
    languages = _languages(model, encoder_output, options)
    tokenizers = [
        Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=o.task, language=lang)
        for o, (lang, _) in zip(options, languages, strict=True)
    ]
    prompts = [
        model.get_prompt(tokenizer, [], without_timestamps=False, prefix=None, hotwords=None)
        for tokenizer in tokenizers
    ]
    results = model.model.generate(
        encoder_output,
        prompts,
        beam_size=5,
        patience=1,
        length_penalty=1,
        repetition_penalty=1,
        no_repeat_ngram_size=0,
        max_length=model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizers[0], [-1]),
        max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP_S / model.time_precision),
    )
    transcripts = [
        _transcript(model, tokenizer, window, language, result)
        for tokenizer, window, language, result in zip(
            tokenizers, windows, languages, results, strict=True
        )
    ]
    decoded = [list(result.sequences_ids[0]) for result in results]
    pieces = [
        _pieces(t, tokens, w) for t, tokens, w in zip(transcripts, decoded, windows, strict=True)
    ]
    return _with_cue_words(model, tokenizers, encoder_output, windows, options, transcripts, pieces)


def _with_cue_words(
    model: Any,
    tokenizers: list[Tokenizer],
    encoder_output: Any,
    windows: list[_Window],
    options: list[TranscribeOptions],
    transcripts: list[Transcript | None],
    pieces: list[list[dict[str, Any]]],
) -> list[Transcript | None]:
    """The words of the jobs that time them for cues, aligned in one pass over the batch.

    The alignment runs on the whole batch's encoder output, so every window needs text
    and one start sequence (language, task); where they differ, those jobs are decoded
    alone (None), where their words are timed as the sequential path times them.
    """
    wanted = [
        transcript is not None and option.cue_words
        for transcript, option in zip(transcripts, options, strict=True)
    ]
    if not any(wanted):
        return transcripts
    align = getattr(model, "align_batch", None)
    eot = tokenizers[0].eot
    alignable = (
        align is not None
        and all(any(t < eot for piece in own for t in piece["tokens"]) for own in pieces)
        and len({tuple(tokenizer.sot_sequence) for tokenizer in tokenizers}) == 1
    )
    if align is None or not alignable:
        return [
            None if want else transcript
            for want, transcript in zip(wanted, transcripts, strict=True)
        ]
    sizes = [min(model.feature_extractor.nb_max_frames, w.content_frames) for w in windows]
    words = align(tokenizers[0], pieces, encoder_output, sizes)
    return [
        _timed(transcript, timed) if want and transcript is not None else transcript
        for want, transcript, timed in zip(wanted, transcripts, words, strict=True)
    ]


def _pieces(
    transcript: Transcript | None, tokens: list[int], window: _Window
) -> list[dict[str, Any]]:
    """A window's segments as faster-whisper's aligner takes them (the window at 0 s); a
    window left to the sequential path is aligned too (the batch is aligned as a whole)."""
    if transcript is None:
        return [{"seek": 0, "start": 0.0, "end": window.duration, "tokens": tokens}]
    return [
        {"seek": 0, "start": s.start, "end": s.end, "tokens": list(s.tokens)}
        for s in transcript.segments
    ]


def _timed(transcript: Transcript, words: list[list[dict[str, Any]]]) -> Transcript:
    """The transcript with each segment's aligned words (never past the audio's end)."""
    timed = [
        clamp_to_duration(
            msgspec.structs.replace(
                segment,
                words=[
                    Word(
                        start=float(w["start"]),
                        end=float(w["end"]),
                        word=str(w["word"]),
                        probability=float(w["probability"]),
                    )
                    for w in own
                ],
            ),
            transcript.duration,
        )
        for segment, own in zip(transcript.segments, words, strict=True)
    ]
    return msgspec.structs.replace(transcript, segments=timed)


def _transcript(
    model: Any, tokenizer: Tokenizer, window: _Window, language: tuple[str, float], result: Any
) -> Transcript | None:
    tokens: list[int] = result.sequences_ids[0]
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
    compression_ratio = get_compression_ratio(tokenizer.decode(tokens).strip())
    if compression_ratio > COMPRESSION_RATIO_THRESHOLD or avg_logprob < LOG_PROB_THRESHOLD:
        return None  # the sequential path retries at higher temperatures
    size = min(model.feature_extractor.nb_max_frames, window.content_frames)
    pieces, seek, _ = model._split_segments_by_timestamps(
        tokenizer=tokenizer,
        tokens=tokens,
        time_offset=0.0,
        segment_size=size,
        segment_duration=size * model.feature_extractor.time_per_frame,
        seek=0,
    )
    if seek < window.content_frames:
        return None  # sequential decoding would continue from the last timestamp
    if timestamp_overrun(
        tokens,
        content_s=window.duration,
        timestamp_begin=tokenizer.timestamp_begin,
        time_precision=model.time_precision,
    ):
        return None  # a shortened context made up time: the sequential path redoes it
    segments: list[Segment] = []
    for piece in pieces:
        text = tokenizer.decode(piece["tokens"])
        if piece["start"] == piece["end"] or not text.strip():
            continue
        segments.append(
            Segment(
                id=len(segments) + 1,
                seek=0,
                start=float(piece["start"]),
                end=float(piece["end"]),
                text=text,
                tokens=list(piece["tokens"]),
                temperature=0.0,
                avg_logprob=float(avg_logprob),
                compression_ratio=float(compression_ratio),
                no_speech_prob=float(result.no_speech_prob),
            )
        )
    segments = [clamp_to_duration(segment, window.duration) for segment in segments]
    return Transcript(
        text="".join(s.text for s in segments).strip(),
        language=language[0],
        language_probability=float(language[1]),
        duration=window.duration,
        segments=segments,
    )
