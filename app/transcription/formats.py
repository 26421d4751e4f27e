"""Render a :class:`Transcript` as plain text, subtitles (SRT, WebVTT), TSV or JSON.

Each ``to_*`` function is small and pure so that later additions (``verbose_json``,
cue shaping by line width/line count/words per cue) can replace one piece, e.g.
:func:`subtitle_cues`, without touching the writers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import msgspec

from app.transcription.types import Transcript

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "Cue",
    "format_timestamp",
    "render",
    "subtitle_cues",
    "to_json",
    "to_srt",
    "to_tsv",
    "to_txt",
    "to_vtt",
]

FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "tsv", "json")

MEDIA_TYPES: dict[str, str] = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "json": "application/json",
}


class Cue(NamedTuple):
    """One subtitle cue: its times in seconds and its (already cleaned, non-empty) text."""

    start: float
    end: float
    text: str


def format_timestamp(
    seconds: float, *, decimal_marker: str = ",", always_include_hours: bool = True
) -> str:
    """``HH:MM:SS,mmm`` (or ``MM:SS,mmm`` under an hour without ``always_include_hours``).

    The time is rounded to whole milliseconds first, so 59.9996 s is ``00:01:00,000``,
    never ``00:00:59,1000``. Negative times are clamped to zero.
    """
    total_ms = _milliseconds(seconds)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    prefix = f"{hours:02d}:" if always_include_hours or hours else ""
    return f"{prefix}{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def subtitle_cues(transcript: Transcript) -> Iterator[Cue]:
    """The segments worth showing as cues: text stripped, blank lines dropped, empties skipped."""
    for segment in transcript.segments:
        text = _subtitle_text(segment.text)
        if text:
            yield Cue(segment.start, segment.end, text)


def to_txt(transcript: Transcript) -> str:
    """The text of each non-empty segment, stripped, one segment per line."""
    lines = (_single_line(segment.text) for segment in transcript.segments)
    return "".join(f"{line}\n" for line in lines if line)


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues from 1, ``HH:MM:SS,mmm`` times, a blank line between cues."""
    blocks = [
        f"{index}\n{_cue_times(cue, ',')}\n{cue.text}\n"
        for index, cue in enumerate(subtitle_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: a ``WEBVTT`` header, then ``HH:MM:SS.mmm`` cues separated by blank lines."""
    blocks = [
        f"{_cue_times(cue, '.')}\n{_vtt_safe(cue.text)}\n" for cue in subtitle_cues(transcript)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_tsv(transcript: Transcript) -> str:
    """``start<TAB>end<TAB>text`` in integer milliseconds, one row per non-empty segment."""
    rows = ["start\tend\ttext\n"]
    for segment in transcript.segments:
        text = _single_line(segment.text)
        if text:
            start, end = _milliseconds(segment.start), _milliseconds(segment.end)
            rows.append(f"{start}\t{end}\t{text}\n")
    return "".join(rows)


def to_json(transcript: Transcript) -> bytes:
    """The transcript as JSON: text, language, language_probability, duration, segments."""
    return msgspec.json.encode(transcript)


_TEXT_WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "tsv": to_tsv,
}


def render(transcript: Transcript, fmt: str) -> bytes:
    """The transcript in format ``fmt`` (one of :data:`FORMATS`), as UTF-8 bytes."""
    if fmt == "json":
        return to_json(transcript)
    writer = _TEXT_WRITERS.get(fmt)
    if writer is None:
        allowed = ", ".join(FORMATS)
        raise ValueError(f"unknown output format {fmt!r}; expected one of: {allowed}")
    return writer(transcript).encode("utf-8")


def _milliseconds(seconds: float) -> int:
    """Seconds rounded half-up to whole milliseconds, clamped at zero."""
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp must be a finite number of seconds, got {seconds!r}")
    return max(0, math.floor(seconds * 1000 + 0.5))


def _cue_times(cue: Cue, decimal_marker: str) -> str:
    start = format_timestamp(cue.start, decimal_marker=decimal_marker)
    end = format_timestamp(cue.end, decimal_marker=decimal_marker)
    return f"{start} --> {end}"


def _subtitle_text(text: str) -> str:
    """Strip the text and drop blank lines, which would end a cue early."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _single_line(text: str) -> str:
    """Strip the text and turn tabs and line breaks into single spaces."""
    return " ".join(text.split())


def _vtt_safe(text: str) -> str:
    """Replace ``-->`` so cue text can never be read as a timing line (``--->`` too)."""
    while "-->" in text:
        text = text.replace("-->", "->")
    return text
