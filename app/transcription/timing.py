"""Timing clean-ups shared by the sequential and the batched decoding paths."""

from __future__ import annotations

import msgspec

from app.transcription.types import Segment

__all__ = ["clamp_to_duration"]


def clamp_to_duration(segment: Segment, duration: float) -> Segment:
    """Whisper's last timestamp can pass the end of the audio (1.9 s clip, end 2.0): cap it."""
    if segment.end <= duration and all(w.end <= duration for w in segment.words or ()):
        return segment
    words = (
        [
            msgspec.structs.replace(w, start=min(w.start, duration), end=min(w.end, duration))
            for w in segment.words
        ]
        if segment.words
        else segment.words
    )
    return msgspec.structs.replace(
        segment, start=min(segment.start, duration), end=min(segment.end, duration), words=words
    )
