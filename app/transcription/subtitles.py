"""Readable subtitle cues from timed words, to the norms broadcasters publish (BBC, Netflix).

At most two lines of 42 characters a cue, 1 to 7 seconds on screen, at most about 20
characters a second where the pauses leave room, lines and cues broken at phrase
boundaries (after punctuation, before a conjunction) and never a line of one word where
a cue has two. The cut is a shortest path over the words: every cue that fits the rules
is an edge whose cost says how badly it reads, so a cue never ends mid-phrase when a
nearby boundary would do. Words are only grouped, never changed or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from app.transcription.types import Word

__all__ = ["ReadableCue", "ReadingRules", "line_text", "readable_cues"]

_SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
_CLAUSE_END = (",", ";", ":", "、", "，", "；", "：", "—", "–")
# A line or cue reads best when it starts with one of these (it begins a new phrase).
_PHRASE_STARTS = frozenset(
    {
        *("and", "but", "or", "nor", "so", "yet", "because", "although", "though", "while"),
        *("whereas", "if", "unless", "when", "whenever", "where", "which", "who", "whom"),
        *("whose", "that", "than", "until", "since", "after", "before", "as", "to", "of"),
        *("in", "on", "at", "for", "with", "from", "by", "about", "into", "over", "under"),
        *("between", "through", "during", "without"),
    }
)

# A line or cue that ends with one of these leaves its phrase hanging ("to help the / poorest").
_HANGING_ENDS = _PHRASE_STARTS | frozenset(
    {"a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "these"}
)


@dataclass(frozen=True, slots=True)
class ReadingRules:
    """The limits one cue keeps; the defaults are the broadcasters' common ones."""

    max_line_chars: int = 42
    max_lines: int = 2
    min_seconds: float = 1.0
    max_seconds: float = 7.0
    max_chars_per_second: float = 20.0
    # Words further apart than this read as separate thoughts: a cue rarely spans them.
    pause_seconds: float = 1.2


@dataclass(frozen=True, slots=True)
class ReadableCue:
    """One cue: when it shows, and its lines (each already stripped, never empty)."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The lines as the cue's text, one per line."""
        return "\n".join(self.lines)


def line_text(words: Sequence[Word]) -> str:
    """Words keep their own spacing (none between CJK characters); the line is stripped."""
    return "".join(word.word for word in words).strip()


def readable_cues(
    words: Sequence[Word],
    rules: ReadingRules | None = None,
    *,
    boundaries: frozenset[int] = frozenset(),
) -> list[ReadableCue]:
    """The words cut into cues that keep `rules` wherever the words allow it.

    `boundaries` are indexes of words after which the source ended a segment (a good place
    to end a cue). A word too long for a line gets a line of its own; speech faster than
    the reading speed keeps its pace rather than drifting from the audio.
    """
    rules = rules or ReadingRules()
    words = [word for word in words if word.word.strip()]
    if not words:
        return []
    breaks = _cheapest_breaks(words, rules, boundaries)
    cues: list[ReadableCue] = []
    for first, last in breaks:
        piece = words[first:last]
        lines = _layout(piece, rules.max_line_chars, rules.max_lines)
        assert lines is not None  # only cues that can be laid out are ever chosen
        following = words[last].start if last < len(words) else None
        start, end = _display_times(piece, following, rules)
        if cues and start < cues[-1].end:
            start = cues[-1].end
        cues.append(ReadableCue(start, max(start, end), tuple(line_text(ln) for ln in lines)))
    return cues


# ---------------------------------------------------------------- cutting into cues


def _cheapest_breaks(
    words: list[Word], rules: ReadingRules, boundaries: frozenset[int]
) -> list[tuple[int, int]]:
    """The (first, end) word ranges of the cheapest cut into cues (dynamic programming)."""
    count = len(words)
    best: list[float] = [0.0] + [float("inf")] * count
    choice: list[int] = [0] * (count + 1)
    for end in range(1, count + 1):
        for first in range(end - 1, -1, -1):
            piece = words[first:end]
            single = end - first == 1
            span = piece[-1].end - piece[0].start
            if not single and span > rules.max_seconds:
                break
            lines = _layout(piece, rules.max_line_chars, rules.max_lines)
            if lines is None:
                if single:
                    continue
                break  # a longer cue has even more text
            cost = best[first] + _cue_cost(words, first, end, lines, rules, boundaries)
            if cost < best[end]:
                best[end], choice[end] = cost, first
    ranges: list[tuple[int, int]] = []
    end = count
    while end > 0:
        ranges.append((choice[end], end))
        end = choice[end]
    return ranges[::-1]


def _cue_cost(
    words: list[Word],
    first: int,
    end: int,
    lines: list[list[Word]],
    rules: ReadingRules,
    boundaries: frozenset[int],
) -> float:
    """How badly the cue of words[first:end] reads; lower is better."""
    piece = words[first:end]
    chars = len(line_text(piece))
    cost = 1.0  # each cue costs something, so fuller cues win when all else is equal
    cost += _break_cost(words, end - 1, boundaries)
    if len(piece) == 1 and len(words) > 1:
        cost += 6.0
    elif chars < 16:
        cost += 2.0
    cost += _layout_cost(lines)
    for before, after in pairwise(piece):
        if after.start - before.end > rules.pause_seconds:
            cost += 8.0  # the cue would show words long before they are said
    following = words[end].start if end < len(words) else None
    start, shown_until = _display_times(piece, following, rules)
    seconds = max(shown_until - start, 1e-3)
    speed = chars / seconds
    if speed > rules.max_chars_per_second:
        cost += (speed - rules.max_chars_per_second) * 0.4
    return cost


def _break_cost(words: list[Word], last: int, boundaries: frozenset[int]) -> float:
    """The cost of ending a cue (or a line) after words[last]."""
    if last >= len(words) - 1:
        return 0.0
    text = words[last].word.strip()
    if text.endswith(_SENTENCE_END):
        return 0.0
    gap = words[last + 1].start - words[last].end
    if last in boundaries or gap >= 0.6:
        return 1.0
    if text.endswith(_CLAUSE_END):
        return 1.5
    if _starts_phrase(words[last + 1]):
        return 3.0
    return 9.0 if _hangs(words[last]) else 7.0


def _starts_phrase(word: Word) -> bool:
    return word.word.strip().lower().strip("\"'“‘(") in _PHRASE_STARTS


def _hangs(word: Word) -> bool:
    return word.word.strip().lower() in _HANGING_ENDS


def _display_times(
    piece: Sequence[Word], following: float | None, rules: ReadingRules
) -> tuple[float, float]:
    """When the cue shows: from its first word until its last word ends, held longer
    (into the pause before the next cue, never past it or past the maximum) until it
    was on screen for the minimum time and long enough to read at the reading speed."""
    start, spoken_end = piece[0].start, piece[-1].end
    chars = len(line_text(piece))
    wanted = max(rules.min_seconds, chars / rules.max_chars_per_second)
    end = max(spoken_end, min(start + wanted, start + rules.max_seconds))
    if following is not None:
        end = min(end, max(spoken_end, following))
    return start, end


# ---------------------------------------------------------------- lines within a cue


def _layout(piece: Sequence[Word], width: int, max_lines: int) -> list[list[Word]] | None:
    """The best way to set the words in at most `max_lines` lines of `width` characters,
    or None when they do not fit. One line when the text fits on one; a line of a
    single word only where the cue is that one word, or where a word is wider than a line."""
    if len(line_text(piece)) <= width or len(piece) == 1:
        return [list(piece)]
    if max_lines <= 1:
        return None
    best: list[list[Word]] | None = None
    best_cost = float("inf")
    for split in range(1, len(piece)):
        top = piece[:split]
        if len(line_text(top)) > width:
            break
        rest = _layout(piece[split:], width, max_lines - 1)
        if rest is None:
            continue
        lines = [list(top), *rest]
        if any(len(line) == 1 and len(line_text(line)) < width // 2 for line in lines):
            continue  # an orphan: one short word alone on its line
        cost = _layout_cost(lines)
        if cost < best_cost:
            best, best_cost = lines, cost
    return best


def _layout_cost(lines: list[list[Word]]) -> float:
    """Lines broken at phrase boundaries and of similar length read best."""
    if len(lines) == 1:
        return 0.0
    cost = 0.0
    for line, following in pairwise(lines):
        text = line[-1].word.strip()
        if text.endswith(_SENTENCE_END + _CLAUSE_END):
            pass
        elif _starts_phrase(following[0]):
            cost += 0.5
        else:
            cost += 2.5 if _hangs(line[-1]) else 1.5
    lengths = [len(line_text(line)) for line in lines]
    cost += (max(lengths) - min(lengths)) / 20
    return cost
