"""OpenAI's verbose_json and subtitle cue shaping, checked with independent SRT/WebVTT parsers."""

from __future__ import annotations

import msgspec
import pytest
import srt
import webvtt

from app.transcription.formats import render, subtitle_cues, to_srt, to_verbose_json, to_vtt
from app.transcription.types import Segment, SubtitleShape, Transcript, Word

SEGMENT_KEYS = [
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
]


def timed_words(text: str, start: float, step: float) -> list[Word]:
    """Words of `text`, each `step` seconds long, starting at `start`, with leading spaces."""
    return [
        Word(start + i * step, start + (i + 1) * step, " " + word, 0.9)
        for i, word in enumerate(text.split())
    ]


SENTENCE = "the quick brown fox jumps over the lazy dog and keeps on running far away"
LONG = Transcript(
    text=SENTENCE,
    language="en",
    language_probability=0.97,
    duration=20.0,
    segments=[
        Segment(
            id=0,
            seek=0,
            start=1.0,
            end=16.0,
            text=" " + SENTENCE,
            tokens=[1, 2, 3],
            temperature=0.2,
            avg_logprob=-0.3,
            compression_ratio=1.1,
            no_speech_prob=0.01,
            words=timed_words(SENTENCE, 1.0, 1.0),
        ),
        Segment(
            id=1,
            start=16.0,
            end=19.0,
            text=" Short end.",
            words=timed_words("Short end.", 16.0, 1.5),
        ),
    ],
)


def test_verbose_json_has_openai_keys_and_names_the_language() -> None:
    """verbose_json: task, english (not en), duration, text, OpenAI's segment keys, usage."""
    body = msgspec.json.decode(to_verbose_json(LONG))

    assert list(body) == ["task", "language", "duration", "text", "segments", "usage"]
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == 20.0
    assert body["text"] == SENTENCE
    assert [list(segment) for segment in body["segments"]] == [SEGMENT_KEYS, SEGMENT_KEYS]
    assert body["segments"][0]["temperature"] == 0.2
    assert body["segments"][0]["tokens"] == [1, 2, 3]
    assert body["usage"] == {"type": "duration", "seconds": 20}


def test_verbose_json_words_without_segments() -> None:
    """Word granularity alone gives top-level stripped words and no segments; seconds round up."""
    transcript = msgspec.structs.replace(LONG, duration=19.2)
    body = msgspec.json.decode(to_verbose_json(transcript, segments=False, words=True))

    assert "segments" not in body
    assert body["words"][0] == {"word": "the", "start": 1.0, "end": 2.0}
    assert [w["word"] for w in body["words"]][-2:] == ["Short", "end."]
    assert body["usage"]["seconds"] == 20


def test_verbose_json_of_a_translation_reports_english() -> None:
    """A translation's language is the language of its text, english, as OpenAI reports."""
    german = msgspec.structs.replace(LONG, language="de")
    assert msgspec.json.decode(to_verbose_json(german, task="translate"))["language"] == "english"
    assert msgspec.json.decode(to_verbose_json(german))["language"] == "german"


def test_render_verbose_json_lists_words_when_timed() -> None:
    """render(..., verbose_json) includes words exactly when the transcript has word timings."""
    untimed = msgspec.structs.replace(
        LONG, segments=[msgspec.structs.replace(s, words=None) for s in LONG.segments]
    )
    assert "words" in msgspec.json.decode(render(LONG, "verbose_json"))
    assert "words" not in msgspec.json.decode(render(untimed, "verbose_json"))


def test_max_words_per_cue_cuts_on_word_timings() -> None:
    """Each cue holds at most N words and starts/ends on its first/last word's timing."""
    shape = SubtitleShape(max_words_per_cue=4)
    subtitles = list(srt.parse(to_srt(LONG, shape)))

    assert [len(s.content.split()) for s in subtitles] == [4, 4, 4, 3, 2]
    assert subtitles[0].start.total_seconds() == 1.0
    assert subtitles[0].end.total_seconds() == 5.0
    assert subtitles[1].start.total_seconds() == 5.0
    assert " ".join(s.content for s in subtitles) == SENTENCE + " Short end."


def test_line_width_and_count_shape_vtt_cues() -> None:
    """No line is wider than max_line_width and no cue has more than max_line_count lines."""
    shape = SubtitleShape(max_line_width=16, max_line_count=2)
    captions = list(webvtt.from_string(to_vtt(LONG, shape)))

    assert len(captions) > 2
    for caption in captions:
        assert 1 <= len(caption.lines) <= 2
        assert all(len(line) <= 16 for line in caption.lines)
    words = " ".join(" ".join(c.lines) for c in captions).split()
    assert words == (SENTENCE + " Short end.").split()


def test_line_width_without_count_keeps_one_cue_per_segment() -> None:
    """Without a line count limit, width only wraps lines: one cue per segment stays."""
    cues = list(subtitle_cues(LONG, SubtitleShape(max_line_width=20)))
    assert len(cues) == 2
    assert all(len(line) <= 20 for line in cues[0].text.splitlines())
    assert len(cues[0].text.splitlines()) > 1


def test_a_word_longer_than_the_line_gets_its_own_line() -> None:
    """A single word wider than max_line_width is kept whole on a line of its own."""
    transcript = msgspec.structs.replace(
        LONG,
        segments=[
            Segment(
                id=0,
                start=0.0,
                end=3.0,
                text=" a supercalifragilistic b",
                words=timed_words("a supercalifragilistic b", 0.0, 1.0),
            )
        ],
    )
    cue = next(subtitle_cues(transcript, SubtitleShape(max_line_width=5)))
    assert cue.text.splitlines() == ["a", "supercalifragilistic", "b"]


def test_shaping_without_word_timings_spreads_time_over_characters() -> None:
    """Segments without words are still cut; cue times split the segment by character share."""
    untimed = Transcript(
        text="",
        language="en",
        language_probability=1.0,
        duration=10.0,
        segments=[Segment(id=0, start=0.0, end=8.0, text=" aaa bbb ccc ddd")],
    )
    cues = list(subtitle_cues(untimed, SubtitleShape(max_words_per_cue=2)))

    assert [cue.text for cue in cues] == ["aaa bbb", "ccc ddd"]
    assert cues[0].start == 0.0 and cues[-1].end == 8.0
    assert cues[0].end == pytest.approx(4.0)
    assert cues[1].start == pytest.approx(4.0)


def test_cjk_words_are_not_joined_with_spaces() -> None:
    """Words without leading spaces (Chinese) stay joined as written."""
    words = [Word(0.0, 0.5, "你好", 0.9), Word(0.5, 1.0, "世界", 0.9), Word(1.0, 1.5, "朋友", 0.9)]
    transcript = Transcript(
        text="你好世界朋友",
        language="zh",
        language_probability=1.0,
        duration=2.0,
        segments=[Segment(id=0, start=0.0, end=1.5, text="你好世界朋友", words=words)],
    )
    cues = list(subtitle_cues(transcript, SubtitleShape(max_words_per_cue=2)))
    assert [cue.text for cue in cues] == ["你好世界", "朋友"]


def test_cues_never_overlap_or_pass_the_end_of_the_audio() -> None:
    """Overlapping segments are pushed apart and a segment past the end is cut at the duration."""
    transcript = Transcript(
        text="",
        language="en",
        language_probability=1.0,
        duration=5.0,
        segments=[
            Segment(id=0, start=0.0, end=3.0, text=" one"),
            Segment(id=1, start=2.5, end=4.0, text=" two"),
            Segment(id=2, start=4.5, end=6.2, text=" three"),
        ],
    )
    subtitles = list(srt.parse(to_srt(transcript)))

    times = [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles]
    assert times == [(0.0, 3.0), (3.0, 4.0), (4.5, 5.0)]
