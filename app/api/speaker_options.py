"""Reading the speaker-label options (diarize) the same way on every surface.

Task API and /asr: ``diarize`` with ``num_speakers`` / ``min_speakers`` / ``max_speakers``.
OpenAI: ``known_speaker_names[]`` and ``known_speaker_references[]`` (audio as data URLs),
up to four. Every helper raises ``InvalidInputError`` naming the field; the service proves
the reference clips are audio (off the event loop) before the job is queued.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence

import msgspec

from app.api.form_options import parse_bool
from app.service.errors import InvalidInputError
from app.transcription.types import SpeakerOptions, TranscribeOptions

__all__ = [
    "MAX_KNOWN_SPEAKERS",
    "SPEAKER_FIELDS",
    "parse_speaker_options",
    "with_speakers",
]

SPEAKER_FIELDS = ("diarize", "num_speakers", "min_speakers", "max_speakers")
MAX_KNOWN_SPEAKERS = 4
# A guard against absurd hints, far above any meeting.
MAX_SPEAKERS = 32
_NAME_CHARS = 64
_REFERENCES = "known_speaker_references[]"


def _count(raw: str | None, name: str) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SPEAKERS:
        raise InvalidInputError(
            f"{name} must be a whole number from 1 to {MAX_SPEAKERS}, not {raw!r}", param=name
        )
    return value


def _data_url(value: str, index: int) -> bytes:
    """The bytes of a ``data:<type>;base64,<data>`` URL (OpenAI's reference format)."""
    head, comma, payload = value.strip().partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        raise InvalidInputError(
            f"{_REFERENCES} entry {index} must be a data URL such as data:audio/wav;base64,<audio>",
            param=_REFERENCES,
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{_REFERENCES} entry {index} is not valid base64", param=_REFERENCES
        ) from None


def _known(
    names: Sequence[str], references: Sequence[str]
) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    cleaned = tuple(" ".join(name.split()) for name in names)
    if len(cleaned) != len(references):
        raise InvalidInputError(
            "known_speaker_names[] and known_speaker_references[] must have one entry each "
            f"per speaker (got {len(cleaned)} names and {len(references)} references)",
            param="known_speaker_names[]",
        )
    if len(cleaned) > MAX_KNOWN_SPEAKERS:
        raise InvalidInputError(
            f"at most {MAX_KNOWN_SPEAKERS} known speakers, not {len(cleaned)}",
            param="known_speaker_names[]",
        )
    if any(not name or len(name) > _NAME_CHARS for name in cleaned) or len(set(cleaned)) < len(
        cleaned
    ):
        raise InvalidInputError(
            f"known speaker names must be distinct and 1 to {_NAME_CHARS} characters",
            param="known_speaker_names[]",
        )
    return cleaned, tuple(_data_url(value, index) for index, value in enumerate(references))


def parse_speaker_options(
    raw: Callable[[str], str | None],
    *,
    names: Sequence[str] = (),
    references: Sequence[str] = (),
    forced: bool = False,
    keep_words: bool = False,
) -> SpeakerOptions | None:
    """The speaker options from raw field values, or None when labels are not asked for.

    ``forced`` asks for labels whatever ``diarize`` says (OpenAI's diarized_json).
    """
    if not (forced or parse_bool(raw("diarize"), "diarize")):
        return None
    num = _count(raw("num_speakers"), "num_speakers")
    low = _count(raw("min_speakers"), "min_speakers")
    high = _count(raw("max_speakers"), "max_speakers")
    if low is not None and high is not None and low > high:
        raise InvalidInputError(
            f"min_speakers ({low}) is above max_speakers ({high})", param="min_speakers"
        )
    known_names, clips = _known(names, references)
    return SpeakerOptions(
        num_speakers=num,
        min_speakers=low,
        max_speakers=high,
        known_speaker_names=known_names,
        known_speaker_references=clips,
        keep_words=keep_words,
    )


def with_speakers(options: TranscribeOptions, speakers: SpeakerOptions | None) -> TranscribeOptions:
    """The options with speaker labels on: labels go on words, so words are timed."""
    if speakers is None:
        return options
    return msgspec.structs.replace(options, word_timestamps=True, speakers=speakers)
