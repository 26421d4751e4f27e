"""Render a :class:`Transcript` as plain text, subtitles (SRT, WebVTT), TSV, JSON or OpenAI's
``verbose_json``; one module shared by every HTTP surface.

Subtitle cues come from :func:`subtitle_cues`, which cuts segments into cues that
respect a :class:`SubtitleShape` (characters per line, lines per cue, words per cue)
on word timings, so every writer gets shaped cues for free.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import msgspec

from app.transcription.languages import language_name
from app.transcription.subtitles import line_text, readable_cues
from app.transcription.types import Segment, SubtitleShape, TaskType, Transcript, Word

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "MEDIA_TYPES",
    "Cue",
    "diarized_segment",
    "format_timestamp",
    "openai_usage",
    "render",
    "speaker_turns",
    "subtitle_cues",
    "to_diarized_json",
    "to_json",
    "to_srt",
    "to_tsv",
    "to_txt",
    "to_verbose_json",
    "to_vtt",
]

FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "tsv", "json", "verbose_json", "diarized_json")

MEDIA_TYPES: dict[str, str] = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
}

# The file name extension of each format (verbose_json is JSON too).
EXTENSIONS: dict[str, str] = {fmt: fmt for fmt in FORMATS} | {
    "verbose_json": "json",
    "diarized_json": "json",
}

_PLAIN = SubtitleShape()


class Cue(NamedTuple):
    """One subtitle cue: its times in seconds, its (already cleaned, non-empty) text and,
    after the speaker stage, who says it."""

    start: float
    end: float
    text: str
    speaker: str | None = None


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


def subtitle_cues(transcript: Transcript, shape: SubtitleShape | None = None) -> Iterator[Cue]:
    """The cues worth showing, in order, never overlapping and never past the audio's end.

    Without a shape each non-empty segment is one cue; with one, segments are cut on
    word timings (or on timings spread over the characters where there are none).
    """
    shape = shape or _PLAIN
    previous_end = 0.0
    for cue in _raw_cues(transcript, shape):
        start = max(cue.start, previous_end)
        end = max(cue.end, start)
        if transcript.duration > 0:
            end = min(end, transcript.duration)
            start = min(start, end)
        previous_end = end
        yield Cue(start, end, cue.text, cue.speaker)


def _raw_cues(transcript: Transcript, shape: SubtitleShape) -> Iterator[Cue]:
    """Cues as the shape asks: per segment, cut to the client's limits, or readable cues
    across each run of segments by one speaker (sentences may span Whisper's segments)."""
    if shape.readable and not shape.has_limits:
        for speaker, run in _speaker_runs(transcript.segments):
            words: list[Word] = []
            boundaries: set[int] = set()
            for segment in run:
                own = _segment_words(segment)
                if words and own and _needs_space(words[-1].word, own[0].word):
                    own[0] = msgspec.structs.replace(own[0], word=" " + own[0].word)
                words.extend(own)
                boundaries.add(len(words) - 1)
            for readable in readable_cues(words, boundaries=frozenset(boundaries)):
                yield Cue(readable.start, readable.end, readable.text, speaker)
        return
    for segment in transcript.segments:
        if shape.is_plain:
            text = _subtitle_text(segment.text)
            raw = [Cue(segment.start, segment.end, text)] if text else []
        else:
            raw = list(_shaped_cues(segment, shape))
        for piece in raw:
            yield piece._replace(speaker=segment.speaker)


def _needs_space(before: str, after: str) -> bool:
    """Whether two segments' words need a space between them: not where either side already
    has one, nor between characters of scripts written without spaces (CJK)."""
    if not before or not after or before[-1].isspace() or after[0].isspace():
        return False
    return not (_unspaced(before[-1]) or _unspaced(after[0]))


def _unspaced(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _speaker_runs(segments: Sequence[Segment]) -> Iterator[tuple[str | None, list[Segment]]]:
    """Consecutive segments grouped by speaker (one run when nobody is labelled)."""
    run: list[Segment] = []
    for segment in segments:
        if run and segment.speaker != run[-1].speaker:
            yield run[-1].speaker, run
            run = []
        run.append(segment)
    if run:
        yield run[-1].speaker, run


def to_txt(transcript: Transcript) -> str:
    """The text of each non-empty segment, stripped, one segment per line; with speaker
    labels, one line per turn instead: ``A: what A said until B speaks``."""
    if any(segment.speaker for segment in transcript.segments):
        return "".join(f"{speaker}: {text}\n" for speaker, text in speaker_turns(transcript))
    lines = (_single_line(segment.text) for segment in transcript.segments)
    return "".join(f"{line}\n" for line in lines if line)


def speaker_turns(transcript: Transcript) -> list[tuple[str, str]]:
    """``(speaker, text)`` for each run of non-empty segments by the same speaker."""
    turns: list[tuple[str, list[str]]] = []
    for segment in transcript.segments:
        text = _single_line(segment.text)
        if not text:
            continue
        speaker = segment.speaker or "?"
        if turns and turns[-1][0] == speaker:
            turns[-1][1].append(text)
        else:
            turns.append((speaker, [text]))
    return [(speaker, " ".join(texts)) for speaker, texts in turns]


def to_srt(transcript: Transcript, shape: SubtitleShape | None = None) -> str:
    """SubRip: numbered cues from 1, ``HH:MM:SS,mmm`` times, a blank line between cues."""
    blocks = [
        f"{index}\n{_cue_times(cue, ',')}\n{_srt_text(cue)}\n"
        for index, cue in enumerate(subtitle_cues(transcript, shape), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript, shape: SubtitleShape | None = None) -> str:
    """WebVTT: a ``WEBVTT`` header, then ``HH:MM:SS.mmm`` cues separated by blank lines;
    a cue with a speaker is one voice span, ``<v A>…</v>``."""
    blocks = [
        f"{_cue_times(cue, '.')}\n{_vtt_text(cue)}\n" for cue in subtitle_cues(transcript, shape)
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


def openai_usage(duration: float) -> dict[str, Any]:
    """OpenAI's usage object for audio billed by duration: whole seconds, rounded up."""
    return {"type": "duration", "seconds": math.ceil(max(0.0, duration))}


def to_verbose_json(
    transcript: Transcript,
    *,
    task: TaskType = "transcribe",
    segments: bool = True,
    words: bool = False,
) -> bytes:
    """OpenAI's ``verbose_json``: task, language (full lower-case name), duration, text,
    segments (without words), top-level ``words`` when asked, and usage.

    A translation reports ``english``, the language of its text, as OpenAI does.
    """
    body: dict[str, Any] = {
        "task": task,
        "language": "english" if task == "translate" else language_name(transcript.language),
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if segments:
        body["segments"] = [
            _openai_segment(index, segment) for index, segment in enumerate(transcript.segments)
        ]
    if words:
        body["words"] = [
            {"word": word.word.strip(), "start": word.start, "end": word.end}
            for word in transcript.words
        ]
    body["usage"] = openai_usage(transcript.duration)
    return msgspec.json.encode(body)


def to_diarized_json(transcript: Transcript) -> bytes:
    """OpenAI's ``diarized_json``: task, duration, text, segments of
    ``transcript.text.segment`` with a speaker each, and usage."""
    body = {
        "task": "transcribe",
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [diarized_segment(index, s) for index, s in enumerate(transcript.segments)],
        "usage": openai_usage(transcript.duration),
    }
    return msgspec.json.encode(body)


def diarized_segment(index: int, segment: Segment) -> dict[str, Any]:
    """One ``transcript.text.segment`` (also the body of OpenAI's streamed segment event)."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{index}",
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "speaker": segment.speaker or "A",
    }


def _openai_segment(index: int, segment: Segment) -> dict[str, Any]:
    # OpenAI numbers segments from 0; faster-whisper from 1.
    extra = {"speaker": segment.speaker} if segment.speaker else {}
    return extra | {
        "id": index,
        "seek": segment.seek,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.tokens,
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


_TEXT_WRITERS: dict[str, Callable[[Transcript], str]] = {
    "txt": to_txt,
    "tsv": to_tsv,
}


def render(
    transcript: Transcript,
    fmt: str,
    *,
    shape: SubtitleShape | None = None,
    task: TaskType = "transcribe",
) -> bytes:
    """The transcript in format ``fmt`` (one of :data:`FORMATS`), as UTF-8 bytes.

    ``shape`` cuts srt and vtt cues; ``task`` is reported by verbose_json, which also
    lists the words whenever the transcript has word timings.
    """
    if fmt == "json":
        return to_json(transcript)
    if fmt == "verbose_json":
        return to_verbose_json(transcript, task=task, words=bool(transcript.words))
    if fmt == "diarized_json":
        return to_diarized_json(transcript)
    if fmt == "srt":
        return to_srt(transcript, shape).encode("utf-8")
    if fmt == "vtt":
        return to_vtt(transcript, shape).encode("utf-8")
    writer = _TEXT_WRITERS.get(fmt)
    if writer is None:
        allowed = ", ".join(FORMATS)
        raise ValueError(f"unknown output format {fmt!r}; expected one of: {allowed}")
    return writer(transcript).encode("utf-8")


# ---------------------------------------------------------------- cue shaping

_TOKEN = re.compile(r"\s*\S+")


def _segment_words(segment: Segment) -> list[Word]:
    """The segment's timed words, or its whitespace-separated tokens timed by their share of
    the segment's (non-space) characters."""
    if segment.words:
        return [word for word in segment.words if word.word.strip()]
    tokens = _TOKEN.findall(" ".join(_subtitle_text(segment.text).splitlines()))
    total = sum(len(token.strip()) for token in tokens)
    if not total:
        return []
    span = max(0.0, segment.end - segment.start)
    words: list[Word] = []
    done = 0
    for token in tokens:
        start = segment.start + span * done / total
        done += len(token.strip())
        words.append(Word(start, segment.start + span * done / total, token, 1.0))
    return words


def _shaped_cues(segment: Segment, shape: SubtitleShape) -> Iterator[Cue]:
    """Fill lines up to max_line_width and cues up to max_line_count lines and
    max_words_per_cue words; a single word longer than a line gets a line of its own."""
    lines: list[list[Word]] = [[]]
    for word in _segment_words(segment):
        count = sum(len(line) for line in lines)
        line = lines[-1]
        if shape.max_words_per_cue is not None and count >= shape.max_words_per_cue:
            yield _cue(lines)
            lines = [[]]
        elif (
            shape.max_line_width is not None
            and line
            and len(line_text([*line, word])) > shape.max_line_width
        ):
            if shape.max_line_count is not None and len(lines) >= shape.max_line_count:
                yield _cue(lines)
                lines = [[]]
            else:
                lines.append([])
        lines[-1].append(word)
    if lines[0]:
        yield _cue(lines)


def _cue(lines: list[list[Word]]) -> Cue:
    words = [word for line in lines for word in line]
    text = "\n".join(line_text(line) for line in lines if line)
    return Cue(words[0].start, words[-1].end, text)


# ---------------------------------------------------------------- helpers


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


def _srt_text(cue: Cue) -> str:
    """The cue's text, its first line prefixed with the speaker (``A: …``)."""
    return f"{cue.speaker}: {cue.text}" if cue.speaker else cue.text


def _vtt_text(cue: Cue) -> str:
    """The cue's text, inside a voice span when the speaker is known."""
    text = _vtt_safe(cue.text)
    if not cue.speaker:
        return text
    # A voice annotation ends at ">" and may not hold "&" or line breaks unescaped.
    voice = " ".join(cue.speaker.replace("&", "&amp;").replace(">", "&gt;").split())
    return f"<v {voice}>{text}</v>"


def _vtt_safe(text: str) -> str:
    """Replace ``-->`` so cue text can never be read as a timing line (``--->`` too)."""
    while "-->" in text:
        text = text.replace("-->", "->")
    return text
