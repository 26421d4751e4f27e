"""What a live session reports: its events, a completed turn's record and its timings' observer.

Framework-free. `LiveSession` emits the `LiveEvent`s in order (the transport turns
them into its wire format), keeps a `TurnRecord` of each completed turn for a
client that asks to keep them, and reports its timings to a `LiveObserver`, never
any text.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Protocol

from app.transcription.types import Word

__all__ = [
    "Arrivals",
    "Cleared",
    "Committed",
    "Completed",
    "Delta",
    "LiveEvent",
    "LiveObserver",
    "SpeechStarted",
    "SpeechStopped",
    "TurnDropped",
    "TurnFailed",
    "TurnPending",
    "TurnRecord",
]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The detector heard speech; `audio_start_ms` includes the prefix padding."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The detector heard the silence that ends a turn."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    """A turn's audio is complete (by the detector or by the client)."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    """The uncommitted audio was dropped."""


@dataclass(frozen=True, slots=True)
class Delta:
    """Newly committed words of a turn; `words` carry times in ms of the session's audio."""

    item_id: str
    text: str
    words: list[Word]
    tail: str


@dataclass(frozen=True, slots=True)
class Completed:
    """A turn's whole transcript."""

    item_id: str
    transcript: str
    audio_seconds: float


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """A completed turn as a task keeps it: times in seconds of the session's audio."""

    item_id: str
    start_s: float
    end_s: float
    text: str
    words: list[Word]
    language: str | None


@dataclass(frozen=True, slots=True)
class TurnFailed:
    """A turn could not be transcribed."""

    item_id: str
    message: str


@dataclass(frozen=True, slots=True)
class TurnPending:
    """The detector opened a turn; it is announced once it has a word (`announce`)."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class TurnDropped:
    """A pending turn ended without a word: it was never announced and never will be."""

    item_id: str


LiveEvent = (
    SpeechStarted
    | SpeechStopped
    | Committed
    | Cleared
    | Delta
    | Completed
    | TurnFailed
    | TurnPending
    | TurnDropped
)


class LiveObserver(Protocol):
    """Where a session reports its timings (the metrics); never any text."""

    def pass_done(self, seconds: float) -> None:
        """One transcription pass took `seconds`."""
        ...

    def word_committed(self, delay_s: float) -> None:
        """A word was committed `delay_s` after its audio arrived."""
        ...

    def turn_completed(self, audio_s: float) -> None:
        """A turn of `audio_s` seconds was completed."""
        ...


@dataclass
class Arrivals:
    """When a session's audio arrived: (samples received so far, clock time) per chunk."""

    marks: list[tuple[int, float]] = field(default_factory=list)

    def add(self, received: int, when: float) -> None:
        """A chunk arrived `when`; the session had then received `received` samples."""
        self.marks.append((received, when))

    def at(self, sample: int) -> float:
        """When the audio up to `sample` had arrived."""
        index = bisect.bisect_left(self.marks, (sample, float("-inf")))
        return self.marks[min(index, len(self.marks) - 1)][1]

    def forget_before(self, sample: int) -> None:
        """Keep times only for audio from `sample` on (a turn may still commit words there)."""
        keep = bisect.bisect_left(self.marks, (sample, float("-inf")))
        del self.marks[: max(0, keep - 1)]
