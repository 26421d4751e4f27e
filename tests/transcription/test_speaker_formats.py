"""Speaker labels in every output format (app.transcription.formats)."""

from __future__ import annotations

import json

import msgspec
import srt
import webvtt

from app.transcription.formats import render, speaker_turns, to_srt, to_txt, to_vtt
from app.transcription.types import Segment, SubtitleShape, Transcript, Word

TRANSCRIPT = Transcript(
    text=" Hi there. Hello. How are you?",
    language="en",
    language_probability=0.99,
    duration=6.0,
    segments=[
        Segment(id=1, start=0.0, end=1.5, text=" Hi there.", speaker="A"),
        Segment(id=2, start=1.5, end=3.0, text=" Hello.", speaker="Ann & <Bo>"),
        Segment(
            id=3,
            start=3.0,
            end=6.0,
            text=" How are you?",
            speaker="A",
            words=[
                Word(3.0, 4.0, " How", 0.9, "A"),
                Word(4.0, 5.0, " are", 0.9, "A"),
                Word(5.0, 6.0, " you?", 0.9, "A"),
            ],
        ),
    ],
)


def test_srt_prefixes_each_cue_with_its_speaker() -> None:
    """SRT cues parse with `srt` and start with "speaker: "."""
    cues = list(srt.parse(to_srt(TRANSCRIPT)))
    assert [cue.content for cue in cues] == [
        "A: Hi there.",
        "Ann & <Bo>: Hello.",
        "A: How are you?",
    ]


def test_shaped_srt_cues_keep_the_speaker() -> None:
    """Cues cut by a subtitle shape still carry their segment's speaker."""
    cues = list(srt.parse(to_srt(TRANSCRIPT, SubtitleShape(max_words_per_cue=1))))
    assert [cue.content for cue in cues][-3:] == ["A: How", "A: are", "A: you?"]


def test_vtt_voice_spans_parse_with_webvtt_py() -> None:
    """Each WebVTT cue is a <v speaker> span that webvtt-py reads back, names escaped."""
    captions = webvtt.from_string(to_vtt(TRANSCRIPT)).captions
    assert [caption.voice for caption in captions] == ["A", "Ann &amp; <Bo&gt;", "A"]
    assert [caption.text for caption in captions] == ["Hi there.", "Hello.", "How are you?"]
    assert "<v Ann &amp; <Bo&gt;>Hello.</v>" in to_vtt(TRANSCRIPT)


def test_txt_is_one_line_per_turn() -> None:
    """TXT joins consecutive segments of one speaker: "A: …" per turn."""
    two_a = msgspec.structs.replace(
        TRANSCRIPT,
        segments=[*TRANSCRIPT.segments, Segment(id=4, start=6, end=7, text=" Fine.", speaker="A")],
    )
    assert to_txt(two_a) == "A: Hi there.\nAnn & <Bo>: Hello.\nA: How are you? Fine.\n"
    assert speaker_turns(two_a)[-1] == ("A", "How are you? Fine.")


def test_json_and_verbose_json_carry_the_speaker() -> None:
    """json has speaker on segments and words; verbose_json on its segments."""
    plain = json.loads(render(TRANSCRIPT, "json"))
    assert [s["speaker"] for s in plain["segments"]] == ["A", "Ann & <Bo>", "A"]
    assert plain["segments"][2]["words"][0]["speaker"] == "A"
    verbose = json.loads(render(TRANSCRIPT, "verbose_json"))
    assert [s["speaker"] for s in verbose["segments"]] == ["A", "Ann & <Bo>", "A"]


def test_diarized_json_has_openais_shape() -> None:
    """diarized_json: task, duration, text, typed segments with string ids and speakers, usage."""
    body = json.loads(render(TRANSCRIPT, "diarized_json"))
    assert body["task"] == "transcribe"
    assert body["duration"] == 6.0
    assert body["usage"] == {"type": "duration", "seconds": 6}
    assert body["segments"][1] == {
        "type": "transcript.text.segment",
        "id": "seg_1",
        "start": 1.5,
        "end": 3.0,
        "text": " Hello.",
        "speaker": "Ann & <Bo>",
    }


def test_formats_without_speakers_are_unchanged() -> None:
    """Without labels there is no prefix, no voice span and no speaker key in verbose_json."""
    bare = msgspec.structs.replace(
        TRANSCRIPT,
        segments=[
            msgspec.structs.replace(s, speaker=None, words=None) for s in TRANSCRIPT.segments
        ],
    )
    assert to_txt(bare) == "Hi there.\nHello.\nHow are you?\n"
    assert "<v" not in to_vtt(bare)
    assert srt.parse(to_srt(bare)).__next__().content == "Hi there."
    assert "speaker" not in json.loads(render(bare, "verbose_json"))["segments"][0]
