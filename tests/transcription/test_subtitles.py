"""Readable subtitle cues: the broadcasters' norms on timed words (transcription/subtitles.py)."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from app.transcription import formats
from app.transcription.subtitles import ReadableCue, ReadingRules, readable_cues
from app.transcription.types import Segment, SubtitleShape, Transcript, Word

JFK = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def timed(text: str, *, start: float = 0.0, seconds_per_char: float = 0.065) -> list[Word]:
    """Whisper-style words (leading space) timed by their length, a 0.1 s pause after commas."""
    words: list[Word] = []
    clock = start
    for index, token in enumerate(text.split()):
        end = clock + max(0.12, len(token) * seconds_per_char)
        words.append(Word(clock, end, (" " if index else "") + token, 0.9))
        clock = end + (0.25 if token.endswith((",", ".")) else 0.02)
    return words


def all_words(cues: list[ReadableCue]) -> list[str]:
    return " ".join(cue.text for cue in cues).split()


def check_norms(cues: list[ReadableCue]) -> None:
    rules = ReadingRules()
    for cue in cues:
        assert 1 <= len(cue.lines) <= rules.max_lines
        assert all(len(line) <= rules.max_line_chars for line in cue.lines), cue
        assert cue.end - cue.start <= rules.max_seconds + 1e-9, cue
        if len(cue.lines) == 2:
            assert all(len(line.split()) > 1 for line in cue.lines), f"orphan in {cue}"
    for before, after in pairwise(cues):
        assert before.end <= after.start + 1e-9


def test_jfk_becomes_two_line_cues_broken_after_punctuation() -> None:
    """jfk's 107-character sentence: cues within 2x42, broken at its commas, no word lost."""
    cues = readable_cues(timed(JFK))
    check_norms(cues)
    assert all_words(cues) == JFK.split()
    ends = [line.rstrip()[-1] for cue in cues for line in cue.lines]
    assert ends.count(",") + ends.count(".") >= 2


def test_short_text_stays_one_line_and_is_shown_at_least_a_second() -> None:
    """A few words fit one line; a 0.3 s utterance is held for the minimum second."""
    words = [Word(2.0, 2.15, "Yes", 0.9), Word(2.15, 2.3, " please.", 0.9)]
    (cue,) = readable_cues(words)
    assert cue.lines == ("Yes please.",)
    assert cue.start == 2.0
    assert cue.end == pytest.approx(3.0)


def test_hold_never_runs_into_the_next_cue() -> None:
    """A cue is held for reading only until the next word starts."""
    words = [Word(0.0, 0.2, "Hi.", 0.9), Word(0.6, 7.5, " There", 0.9)]
    cues = readable_cues(words)
    assert [cue.text for cue in cues] == ["Hi.", "There"]
    assert cues[0].end == pytest.approx(0.6)


def test_cue_never_longer_than_seven_seconds_of_slow_speech() -> None:
    """Slow speech is cut into cues of at most 7 s even where lines would hold more."""
    words = timed(
        "one two three four five six seven eight nine ten eleven twelve", seconds_per_char=0.3
    )
    cues = readable_cues(words)
    check_norms(cues)
    assert all_words(cues) == [w.word.strip() for w in words]


def test_reading_speed_is_kept_where_pauses_leave_room() -> None:
    """Fast speech followed by silence: the cue stays up long enough to read at 20 cps."""
    words = timed("This sentence is said rather quickly indeed.", seconds_per_char=0.02)
    (cue,) = readable_cues(words)
    assert len(cue.text) / (cue.end - cue.start) <= 20.0 + 1e-6


def test_breaks_before_a_conjunction_rather_than_mid_phrase() -> None:
    """Without punctuation the line break goes before 'and'/'because', not inside a phrase."""
    text = "we looked at the numbers from the quarter because the market was strong"
    (cue,) = readable_cues(timed(text, seconds_per_char=0.05))
    assert len(cue.lines) == 2
    assert cue.lines[1].split()[0] in {"because", "from"}


def test_never_a_one_word_line() -> None:
    """A 43-character text is not split as 42 + an orphan word."""
    text = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iii"  # 43 chars
    (cue,) = readable_cues(timed(text, seconds_per_char=0.04))
    assert len(cue.lines) == 2
    assert all(len(line.split()) >= 2 for line in cue.lines)


def test_a_word_wider_than_a_line_keeps_a_line_of_its_own() -> None:
    """An over-long token (a URL) is never dropped or cut."""
    url = "https://example.org/" + "x" * 60
    words = [
        Word(0.0, 1.0, "See", 0.9),
        Word(1.0, 3.0, " " + url, 0.9),
        Word(3.0, 3.5, " now.", 0.9),
    ]
    cues = readable_cues(words)
    assert all_words(cues) == ["See", url, "now."]


def test_long_pause_starts_a_new_cue() -> None:
    """Words 3 s apart are not shown together before the second is said."""
    words = [*timed("Good morning everyone."), *timed("Let us begin.", start=5.0)]
    cues = readable_cues(words)
    assert [cue.text for cue in cues] == ["Good morning everyone.", "Let us begin."]


@pytest.mark.parametrize("seed", range(20))
def test_random_speech_keeps_every_word_and_the_norms(seed: int) -> None:
    """Random word lengths and speeds: same words in order, every cue within the norms."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    vocab = [
        "a",
        "an",
        "the",
        "market",
        "and",
        "because",
        "revenue,",
        "grew.",
        "international",
        "we",
        "expect",
        "growth",
        "of",
        "twelve",
        "percent",
        "quarter.",
        "so",
        "but",
    ]
    text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 300)))
    words = timed(text, seconds_per_char=rng.uniform(0.03, 0.12))
    cues = readable_cues(words)
    check_norms(cues)
    assert all_words(cues) == text.split()


def test_cjk_words_keep_their_spacing() -> None:
    """Characters without spaces are joined without spaces."""
    words = [
        Word(i * 0.3, i * 0.3 + 0.25, ch, 0.9) for i, ch in enumerate("我们今天讨论一下市场。")
    ]
    (cue,) = readable_cues(words)
    assert cue.text == "我们今天讨论一下市场。"


def segment(text: str, start: float, *, words: bool = True, speaker: str | None = None) -> Segment:
    timed_words = timed(text, start=start)
    return Segment(
        id=0,
        start=timed_words[0].start,
        end=timed_words[-1].end,
        text=" " + text,
        words=timed_words if words else None,
        speaker=speaker,
    )


def transcript(*segments: Segment) -> Transcript:
    return Transcript(
        text="".join(s.text for s in segments).strip(),
        language="en",
        language_probability=1.0,
        duration=max(s.end for s in segments) + 5,
        segments=list(segments),
    )


def test_srt_of_a_readable_shape_follows_the_norms_and_keeps_the_words() -> None:
    """formats.to_srt with the readable default: no line over 42 and the words of to_txt."""
    tr = transcript(segment(JFK, 0.3))
    srt = formats.to_srt(tr, SubtitleShape(readable=True))
    text_lines = [ln for ln in srt.splitlines() if ln and "-->" not in ln and not ln.isdigit()]
    assert max(len(line) for line in text_lines) <= 42
    assert " ".join(text_lines).split() == formats.to_txt(tr).split()


def test_readable_shape_without_word_timings_still_cuts_long_segments() -> None:
    """Segments decoded without word timings are cut on timings spread over their characters."""
    tr = transcript(segment(JFK, 0.3, words=False))
    cues = list(formats.subtitle_cues(tr, SubtitleShape(readable=True)))
    assert len(cues) >= 2
    assert all(len(line) <= 42 for cue in cues for line in cue.text.splitlines())


def test_client_limits_override_the_readable_default() -> None:
    """max_words_per_cue given by a client is kept to the letter even when readable is on."""
    tr = transcript(segment(JFK, 0.3))
    cues = list(formats.subtitle_cues(tr, SubtitleShape(readable=True, max_words_per_cue=3)))
    assert all(len(cue.text.split()) <= 3 for cue in cues)


def test_readable_cues_never_mix_speakers() -> None:
    """A cue belongs to one speaker: runs of one speaker are shaped on their own."""
    tr = transcript(segment("Hello there.", 0.0, speaker="A"), segment("Hi.", 1.0, speaker="B"))
    cues = list(formats.subtitle_cues(tr, SubtitleShape(readable=True)))
    assert [(cue.speaker, cue.text) for cue in cues] == [("A", "Hello there."), ("B", "Hi.")]


def test_plain_shape_is_one_cue_per_segment() -> None:
    """SUBTITLE_SHAPING off (and OpenAI without fields): Whisper's segments as cues, as before."""
    tr = transcript(segment(JFK, 0.3))
    (cue,) = list(formats.subtitle_cues(tr, SubtitleShape()))
    assert cue.text == JFK
