"""The live streaming policy: re-transcribe a growing turn, commit what two passes agree on.

Framework-free and pure (no threads, no clock): `LiveTurn` holds one turn's audio
(16 kHz samples) and its committed words. Every pass re-transcribes the audio kept
so far (`PassResult`: words with times relative to the kept audio, and where
segments end); `LiveTurn.apply` commits the longest prefix on which this pass and
the previous one agree (LocalAgreement-2, as in Macháček et al.'s
whisper_streaming), and the final pass of a turn commits everything left. Once the
kept audio passes `trim_after_s`, it is cut at the end of a segment whose words are
all committed, so a pass never grows beyond ~20 s plus a second or two.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.transcription.audio import SAMPLE_RATE
from app.transcription.types import Word

__all__ = [
    "MAX_REPEATED_WORDS",
    "LivePass",
    "LiveTurn",
    "PassResult",
    "agreed_prefix",
    "framed",
    "normalise_word",
    "shifted",
    "unrepeated",
    "without_closing_formula",
]

Samples = npt.NDArray[np.float32]
# Without a text match: a word starting this close before the last committed word's end
# is taken to be that word again.
OVERLAP_TOLERANCE_S = 0.1
# The longest run of words a new pass may repeat from the committed tail.
MAX_REPEATED_WORDS = 5
# How much committed text prompts the next pass (Whisper's prompt holds ~224 tokens).
PROMPT_CHARS = 200
# What Whisper says where the audio ends without speech (normalised), and how close to
# the end of the speech such a phrase must begin to be taken for that habit.
CLOSING_FORMULAS = frozenset(
    {
        "thank you",
        "thanks",
        "thank you very much",
        "thank you for watching",
        "thanks for watching",
        "thank you so much for watching",
        "please subscribe",
        "you",
        "bye",
    }
)
MAX_FORMULA_WORDS = 5
# Words at the start of a pass's context that may be garbled by the cut into it.
MAX_SKIPPED = 2
FORMULA_TAIL_S = 0.35
_PUNCTUATION = re.compile(r"[^\w']+")


@dataclass(frozen=True, slots=True)
class PassResult:
    """One pass over the kept audio: its words and segment ends, in seconds from its start."""

    words: list[Word]
    segment_ends: list[float] = field(default_factory=list)
    # The language the pass heard (or was told).
    language: str | None = None


LivePass = Callable[[Samples, str | None], PassResult]
"""Transcribe the samples with this prompt (blocking; run in the live executor)."""


def normalise_word(word: str) -> str:
    """A word as compared between passes: lower case, without punctuation or spaces."""
    return _PUNCTUATION.sub("", word.lower())


def agreed_prefix(previous: list[Word], current: list[Word]) -> int:
    """How many leading words two passes share (by their normalised text)."""
    count = 0
    for before, now in zip(previous, current, strict=False):
        if normalise_word(before.word) != normalise_word(now.word):
            break
        count += 1
    return count


def _after_text_match(kept: list[Word], words: list[Word]) -> int | None:
    """Where the committed `kept` words end in a new pass, by their last few words' text.

    Longer matches win; among equally long ones the one nearest to where the kept
    words would end. None when not even the last committed word is found.
    """
    if not kept:
        return None
    wanted = [normalise_word(w.word) for w in kept[-MAX_REPEATED_WORDS:]]
    said = [normalise_word(w.word) for w in words]
    expected = len(kept)
    horizon = min(len(said), expected + MAX_REPEATED_WORDS)
    for size in range(len(wanted), 0, -1):
        ends = [end for end in range(size, horizon + 1) if said[end - size : end] == wanted[-size:]]
        if ends:
            return min(ends, key=lambda end: abs(end - expected))
    return None


def framed(
    result: PassResult, lead_s: float, span_s: float | None = None, margin_s: float = 0.0
) -> PassResult:
    """A pass over (context, a turn's audio, look-ahead) told as a pass over the audio alone.

    Times move back by `lead_s`. Given `span_s`, the words that start in the
    look-ahead are the next turn's and left out: a word that starts before the cut is
    this turn's, whole (Whisper stretches a last word's end to where its audio
    ends). Words with their middle more than `margin_s` into the context before are
    left out; the next turn drops what this one said by text (`unrepeated`).
    """
    words = []
    for word in result.words:
        middle = (word.start + word.end) / 2 - lead_s
        if middle < -margin_s or (span_s is not None and word.start - lead_s >= span_s):
            continue
        start, end = max(0.0, word.start - lead_s), max(0.0, word.end - lead_s)
        words.append(Word(start, end, word.word, word.probability))
    ends = [end - lead_s for end in result.segment_ends if end > lead_s]
    return PassResult(words=words, segment_ends=ends, language=result.language)


def unrepeated(words: list[Word], before: list[Word], lead_s: float) -> list[Word]:
    """The words of a pass that hears `lead_s` of the previous turn's end, less that turn's.

    Where the pass's first words (after at most `MAX_SKIPPED` garbled by the cut
    into the context) repeat the previous turn's last words `before`, the longest
    such run and all before it are left out: by text, since word times jitter
    between passes and a word cut in two must be kept once, not twice or never.
    Without such a run, the words whose middle lies in the context are left out.
    """
    said = [normalise_word(word.word) for word in before]
    heard = [normalise_word(word.word) for word in words]
    for skip in range(min(MAX_SKIPPED, len(words)) + 1):
        for size in range(min(len(said), len(heard) - skip), 0, -1):
            if heard[skip : skip + size] == said[-size:] and words[skip].start < lead_s + 0.3:
                return words[skip + size :]
    return [word for word in words if (word.start + word.end) / 2 >= lead_s]


def without_closing_formula(words: list[Word], speech_end_s: float) -> list[Word]:
    """The words said before the speech ended at `speech_end_s` (seconds, the words' clock).

    Nothing starts after the silence that ended a turn. And Whisper's closing
    formulas ("Thank you.", "Thanks for watching!") squeezed into the speech's last
    `FORMULA_TAIL_S` are its habit at the end of audio, not words: a speaker takes
    longer to say them.
    """
    kept = [word for word in words if word.start <= speech_end_s + 0.2]
    for size in range(min(len(kept), MAX_FORMULA_WORDS), 0, -1):
        tail = kept[-size:]
        phrase = " ".join(normalise_word(word.word) for word in tail)
        if phrase in CLOSING_FORMULAS and tail[0].start >= speech_end_s - FORMULA_TAIL_S:
            return kept[:-size]
    return kept


def shifted(words: list[Word], offset_s: float) -> list[Word]:
    """The words with their times moved by `offset_s` seconds."""
    return [Word(w.start + offset_s, w.end + offset_s, w.word, w.probability) for w in words]


class LiveTurn:
    """One turn: its audio since the last trim, its committed words and last hypothesis."""

    def __init__(self, item_id: str, *, start_sample: int, trim_after_s: float = 20.0) -> None:
        self.item_id = item_id
        # Where this turn begins on the session's timeline (16 kHz samples).
        self.start_sample = start_sample
        self.trim_after_s = trim_after_s
        # Kept audio is `_buffer[_first:_last]`; the buffer doubles when full, so an
        # append copies only its own samples (amortised O(chunk)), never the whole turn.
        self._buffer: Samples = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self._first = 0
        self._last = 0
        self.offset_s = 0.0  # seconds of this turn's audio already trimmed away
        # Audio just before the turn (another turn's, or silence): heard by its passes for
        # context, never transcribed into it.
        self.lookback: Samples = np.zeros(0, dtype=np.float32)
        self.committed: list[Word] = []  # times in seconds from the turn's start
        self._hypothesis: list[Word] = []
        self.samples_at_last_pass = 0
        self.closed = False
        self.closed_at = 0.0  # when it was closed (time.monotonic)
        # Where the detector heard the speech end (session samples), for a turn it ended.
        self.speech_end: int | None = None
        self.cut_after = False  # closed in mid-speech: the audio after it may end its last word
        self.done = False
        self.language: str | None = None

    # -- audio

    @property
    def audio(self) -> Samples:
        """The kept audio (a view: a pass reads it while later samples are appended past it)."""
        return self._buffer[self._first : self._last]

    @property
    def total_samples(self) -> int:
        """Every sample this turn has received, trimmed ones included."""
        return round(self.offset_s * SAMPLE_RATE) + len(self.audio)

    def append(self, samples: Samples) -> None:
        """More audio for this turn (ignored once the turn is closed)."""
        if self.closed or not len(samples):
            return
        kept = self._last - self._first
        if self._last + len(samples) > len(self._buffer):
            # Move the kept audio to a fresh buffer (a running pass keeps its view of the old).
            grown = np.zeros(max(2 * (kept + len(samples)), SAMPLE_RATE), dtype=np.float32)
            grown[:kept] = self.audio
            self._buffer, self._first, self._last = grown, 0, kept
        self._buffer[self._last : self._last + len(samples)] = samples
        self._last += len(samples)

    def end_at(self, samples: int) -> None:
        """Keep only the first `samples` of the kept audio (the turn ends there)."""
        self._last = self._first + max(0, min(samples, self._last - self._first))

    def close(self) -> None:
        """No more audio: the next pass is the final one."""
        self.closed = True

    def new_audio_s(self) -> float:
        """Seconds received since the last pass began."""
        return (self.total_samples - self.samples_at_last_pass) / SAMPLE_RATE

    # -- text

    @property
    def text(self) -> str:
        """The committed words as one string."""
        return "".join(word.word for word in self.committed).strip()

    @property
    def tail(self) -> str:
        """The last pass's words not committed yet (they may still change)."""
        return "".join(word.word for word in self._hypothesis).strip()

    def prompt(self, before: str | None = None) -> str | None:
        """The text that conditions the next pass: earlier text, then words trimmed away.

        Only text outside the kept audio: Whisper leaves out words of its audio that
        the prompt already holds, so committed words still in the audio stay out.
        """
        gone = "".join(w.word for w in self.committed if w.end <= self.offset_s).strip()
        text = " ".join(part for part in (before, gone) if part).strip()
        return text[-PROMPT_CHARS:] if text else None

    # -- passes

    def begin_pass(self) -> Samples:
        """The audio the next pass transcribes (remembered as the pass's starting point)."""
        self.samples_at_last_pass = self.total_samples
        return self.audio

    def apply(self, result: PassResult, *, final: bool, revise: bool = False) -> list[Word]:
        """Commit from one pass over the audio `begin_pass` gave; the newly committed words.

        Interim passes commit what they agree on with the previous pass; the final
        pass commits every new word. A final pass that `revise`s (a stronger model's)
        replaces the words committed over the audio it heard; its words after the
        committed ones are still the last delta, so the deltas tell the whole turn
        and the completed text is the revision. A revision without a word keeps what
        was committed. Times are moved onto the turn's own clock.
        """
        self.language = result.language or self.language
        fresh = self._unseen(shifted(result.words, self.offset_s))
        if revise and (result.words or not self.committed):
            gone = [word for word in self.committed if word.end <= self.offset_s]
            self.committed, self._hypothesis = gone + shifted(result.words, self.offset_s), []
            return fresh
        if final:
            newly, self._hypothesis = fresh, []
        else:
            agreed = agreed_prefix(self._hypothesis, fresh)
            newly, self._hypothesis = fresh[:agreed], fresh[agreed:]
        self.committed.extend(newly)
        if not final:
            self._trim([end + self.offset_s for end in result.segment_ends])
        return newly

    def _unseen(self, words: list[Word]) -> list[Word]:
        """The words of a pass that come after the committed ones.

        Passes re-read the kept audio from its start, so a pass normally begins with
        the committed words still in it: they are matched by text near where they
        should be (word times jitter between passes by a tenth of a second or more).
        Only where the text does not line up are times used instead.
        """
        if not self.committed:
            return words
        kept = [w for w in self.committed if w.end > self.offset_s]
        after = _after_text_match(kept, words)
        if after is not None:
            return words[after:]
        last_end = self.committed[-1].end
        return [w for w in words if w.start > last_end - OVERLAP_TOLERANCE_S]

    def _trim(self, segment_ends: list[float]) -> None:
        """Past `trim_after_s` of kept audio, drop it up to a fully committed segment's end."""
        if len(self.audio) / SAMPLE_RATE <= self.trim_after_s or not self.committed:
            return
        committed_end = self.committed[-1].end
        ends = [end for end in segment_ends if self.offset_s < end <= committed_end + 0.01]
        if not ends:
            return
        cut = round((max(ends) - self.offset_s) * SAMPLE_RATE)
        self._first += cut
        self.offset_s += cut / SAMPLE_RATE
        # The hypothesis came from audio that is gone now; the next pass starts afresh.
        self._hypothesis = [w for w in self._hypothesis if w.start >= self.offset_s]
