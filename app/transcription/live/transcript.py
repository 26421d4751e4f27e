"""A live session's completed turns as a `Transcript`, for a client that keeps them as a task.

Each turn becomes one or more segments: a long turn is cut at sentence ends and
pauses by its word timings (`split_on_words`, as the batched long-form path does),
so the task's subtitles are as readable as an upload's.
"""

from __future__ import annotations

from collections import Counter

from app.transcription.audio import SAMPLE_RATE
from app.transcription.engine import split_on_words
from app.transcription.live.events import TurnRecord
from app.transcription.live.turn import LiveTurn, shifted
from app.transcription.types import Segment, Transcript

__all__ = ["record_of", "transcript_of"]


def transcript_of(
    turns: list[TurnRecord], *, duration_s: float, fallback_language: str
) -> Transcript:
    """The turns in order as one transcript of `duration_s` seconds of session audio."""
    segments: list[Segment] = []
    # In the audio's order, whatever order their transcripts were finished in.
    turns = sorted(turns, key=lambda turn: turn.start_s)
    for turn in turns:
        whole = Segment(
            id=len(segments),
            start=turn.start_s,
            end=max(turn.end_s, turn.words[-1].end if turn.words else turn.end_s),
            text=" " + turn.text,
            words=turn.words or None,
        )
        segments.extend(split_on_words(whole, len(segments), keep_words=True))
    heard = Counter(turn.language for turn in turns if turn.language)
    language = heard.most_common(1)[0][0] if heard else fallback_language
    return Transcript(
        text=" ".join(turn.text for turn in turns).strip(),
        language=language,
        language_probability=1.0 if heard else 0.0,
        duration=duration_s,
        segments=segments,
    )


def record_of(turn: LiveTurn, language: str | None) -> TurnRecord:
    """What a task keeps of a completed turn: times on the session's timeline."""
    base_s = turn.start_sample / SAMPLE_RATE
    words = shifted(turn.committed, base_s)
    return TurnRecord(
        item_id=turn.item_id,
        start_s=words[0].start if words else base_s,
        end_s=base_s + turn.total_samples / SAMPLE_RATE,
        text=turn.text,
        words=words,
        language=turn.language or language,
    )
