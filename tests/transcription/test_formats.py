"""Tests for transcript rendering (app.transcription.formats)."""

from __future__ import annotations

import math

import msgspec
import pytest

from app.transcription.formats import (
    FORMATS,
    MEDIA_TYPES,
    format_timestamp,
    render,
    to_diarized_json,
    to_json,
    to_srt,
    to_tsv,
    to_txt,
    to_verbose_json,
    to_vtt,
)
from app.transcription.types import Segment, Transcript, Word

TRANSCRIPT = Transcript(
    text=" Hello world. Arrows --> here\tand there.",
    language="en",
    language_probability=0.98,
    duration=66.0,
    segments=[
        Segment(
            id=0,
            start=0.0,
            end=2.5,
            text=" Hello world.",
            tokens=[50364, 2425],
            words=[Word(0.0, 1.0, " Hello", 0.9), Word(1.0, 2.5, " world.", 0.8)],
        ),
        Segment(id=1, start=2.5, end=3.0, text="   "),
        Segment(id=2, start=3.0004, end=65.9996, text=" Arrows --> here\tand there. "),
    ],
)

EMPTY = Transcript(text="", language="en", language_probability=1.0, duration=0.0, segments=[])


def test_txt_golden() -> None:
    """txt is one stripped segment per line, empty segments skipped, tabs made spaces."""
    assert to_txt(TRANSCRIPT) == "Hello world.\nArrows --> here and there.\n"


def test_srt_golden() -> None:
    """srt numbers cues from 1 without gaps, uses comma milliseconds and leaves text as is."""
    assert to_srt(TRANSCRIPT) == (
        "1\n"
        "00:00:00,000 --> 00:00:02,500\n"
        "Hello world.\n"
        "\n"
        "2\n"
        "00:00:03,000 --> 00:01:06,000\n"
        "Arrows --> here\tand there.\n"
    )


def test_vtt_golden() -> None:
    """vtt starts with WEBVTT, uses dot milliseconds and turns --> in text into ->."""
    assert to_vtt(TRANSCRIPT) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\n"
        "Hello world.\n"
        "\n"
        "00:00:03.000 --> 00:01:06.000\n"
        "Arrows -> here\tand there.\n"
    )


def test_tsv_golden() -> None:
    """tsv has a start/end/text header, integer milliseconds and single-line text."""
    assert to_tsv(TRANSCRIPT) == (
        "start\tend\ttext\n0\t2500\tHello world.\n3000\t66000\tArrows --> here and there.\n"
    )


def test_empty_transcript() -> None:
    """A transcript without segments renders as empty text, a bare header or empty JSON list."""
    assert to_txt(EMPTY) == ""
    assert to_srt(EMPTY) == ""
    assert to_vtt(EMPTY) == "WEBVTT\n"
    assert to_tsv(EMPTY) == "start\tend\ttext\n"
    assert msgspec.json.decode(to_json(EMPTY))["segments"] == []


def test_vtt_cannot_be_broken_by_arrows() -> None:
    """No run of dashes before > survives in vtt cue text, so no text line reads as timing."""
    transcript = Transcript(
        text="",
        language="en",
        language_probability=1.0,
        duration=1.0,
        segments=[Segment(id=0, start=0.0, end=1.0, text="a ---> b ----> c --> d")],
    )

    body = to_vtt(transcript).split("\n\n", 1)[1]

    assert body.splitlines()[1] == "a -> b -> c -> d"
    assert body.count("-->") == 1  # only the timing line's


def test_blank_lines_inside_a_segment_do_not_end_the_cue() -> None:
    """Multi-line segment text keeps its lines in srt/vtt but loses blank ones; txt joins them."""
    transcript = Transcript(
        text="",
        language="en",
        language_probability=1.0,
        duration=2.0,
        segments=[Segment(id=0, start=0.0, end=2.0, text=" first line\n\n  second line \n")],
    )

    assert to_srt(transcript) == "1\n00:00:00,000 --> 00:00:02,000\nfirst line\nsecond line\n"
    assert to_vtt(transcript).endswith("\nfirst line\nsecond line\n")
    assert to_txt(transcript) == "first line second line\n"
    assert to_tsv(transcript).splitlines()[1] == "0\t2000\tfirst line second line"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "00:00:00,000"),
        (0.0005, "00:00:00,001"),
        (0.0004, "00:00:00,000"),
        (1.2344, "00:00:01,234"),
        (59.9994, "00:00:59,999"),
        (59.9996, "00:01:00,000"),
        (3599.9996, "01:00:00,000"),
        (3661.001, "01:01:01,001"),
        (360000.0, "100:00:00,000"),
        (-0.25, "00:00:00,000"),
    ],
)
def test_format_timestamp_rounding(seconds: float, expected: str) -> None:
    """Timestamps round to the nearest millisecond and carry into seconds, never 1000 ms."""
    assert format_timestamp(seconds) == expected


def test_format_timestamp_options() -> None:
    """decimal_marker sets the separator; hours may be dropped under an hour only."""
    assert format_timestamp(61.5, decimal_marker=".") == "00:01:01.500"
    assert format_timestamp(61.5, decimal_marker=".", always_include_hours=False) == "01:01.500"
    assert format_timestamp(3661.5, always_include_hours=False) == "01:01:01,500"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_format_timestamp_rejects_non_finite(bad: float) -> None:
    """NaN or infinite times raise ValueError instead of printing nonsense."""
    with pytest.raises(ValueError, match="finite"):
        format_timestamp(bad)


def test_tsv_milliseconds_round_half_up() -> None:
    """tsv times are whole milliseconds, rounded, with the 59.9996 s carry."""
    transcript = Transcript(
        text="",
        language="en",
        language_probability=1.0,
        duration=61.0,
        segments=[Segment(id=0, start=1.2345678, end=59.9996, text="x")],
    )

    assert to_tsv(transcript).splitlines()[1] == "1235\t60000\tx"


def test_json_round_trip() -> None:
    """json has the transcript's top-level keys and decodes back to an equal Transcript."""
    encoded = to_json(TRANSCRIPT)

    assert isinstance(encoded, bytes)
    assert list(msgspec.json.decode(encoded)) == [
        "text",
        "language",
        "language_probability",
        "duration",
        "segments",
    ]
    assert msgspec.json.decode(encoded, type=Transcript) == TRANSCRIPT


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_returns_utf8_bytes_for_every_format(fmt: str) -> None:
    """render gives UTF-8 bytes in each format, matching the to_* writer and keeping non-ASCII."""
    transcript = msgspec.structs.replace(
        TRANSCRIPT,
        segments=[Segment(id=0, start=0.0, end=1.0, text=" Café 北京 ")],
    )
    writers = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}

    rendered = render(transcript, fmt)

    if fmt == "verbose_json":
        expected = to_verbose_json(transcript)
    elif fmt == "json":
        expected = to_json(transcript)
    elif fmt == "diarized_json":
        expected = to_diarized_json(transcript)
    else:
        expected = writers[fmt](transcript).encode()
    assert rendered == expected
    assert "Café 北京" in rendered.decode("utf-8")


def test_render_unknown_format_names_allowed_ones() -> None:
    """An unknown format raises ValueError listing every supported format."""
    with pytest.raises(ValueError, match="'docx'") as caught:
        render(TRANSCRIPT, "docx")

    for fmt in FORMATS:
        assert fmt in str(caught.value)


def test_media_types_cover_every_format() -> None:
    """Every format has a media type, and the text formats declare UTF-8."""
    assert set(MEDIA_TYPES) == set(FORMATS)
    assert MEDIA_TYPES["json"] == "application/json"
    assert MEDIA_TYPES["verbose_json"] == "application/json"
    assert MEDIA_TYPES["srt"].startswith("application/x-subrip")
    assert MEDIA_TYPES["vtt"].startswith("text/vtt")
    assert MEDIA_TYPES["txt"].startswith("text/plain")
    for fmt in ("txt", "srt", "vtt", "tsv"):
        assert MEDIA_TYPES[fmt].endswith("; charset=utf-8")
