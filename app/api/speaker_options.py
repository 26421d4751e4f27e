"""The speaker-label options (diarize), checked the same way on every surface.

Task API and /asr: ``diarize`` with ``num_speakers`` / ``min_speakers`` / ``max_speakers``
(typed form fields, each a `SpeakerCount`). OpenAI: ``known_speaker_names[]`` and
``known_speaker_references[]`` (audio as data URLs), up to four. What a field's type
cannot say (min above max, names, data URLs) is checked here, with an
``InvalidInputError`` naming the field; the service proves the reference clips are
audio (off the event loop) before the job is queued.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated

import msgspec

from app.service.errors import InvalidInputError
from app.transcription.types import SpeakerOptions, TranscribeOptions

__all__ = [
    "MAX_KNOWN_SPEAKERS",
    "SpeakerCount",
    "parse_speaker_options",
    "with_speakers",
]

MAX_KNOWN_SPEAKERS = 4
# A guard against absurd hints, far above any meeting.
MAX_SPEAKERS = 32
SpeakerCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_SPEAKERS)]
_NAME_CHARS = 64
_REFERENCES = "known_speaker_references[]"


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
    *,
    diarize: bool,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    names: Sequence[str] = (),
    references: Sequence[str] = (),
    keep_words: bool = False,
) -> SpeakerOptions | None:
    """The speaker options from typed field values, or None when labels are not asked for."""
    if not diarize:
        return None
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise InvalidInputError(
            f"min_speakers ({min_speakers}) is above max_speakers ({max_speakers})",
            param="min_speakers",
        )
    known_names, clips = _known(names, references)
    return SpeakerOptions(
        num_speakers=num_speakers,
        min_speakers=min_speakers,
        max_speakers=max_speakers,
        known_speaker_names=known_names,
        known_speaker_references=clips,
        keep_words=keep_words,
    )


def with_speakers(options: TranscribeOptions, speakers: SpeakerOptions | None) -> TranscribeOptions:
    """The options with speaker labels on: labels go on words, so words are timed."""
    if speakers is None:
        return options
    return msgspec.structs.replace(options, word_timestamps=True, speakers=speakers)
