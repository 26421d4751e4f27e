"""Reading transcription options from form fields and query strings, the same on every surface.

Each helper raises `InvalidInputError`, which names the offending parameter; every
surface turns it into its own error shape (task API, OpenAI, /asr).
"""

from __future__ import annotations

from app.service.errors import InvalidInputError
from app.transcription.catalogue import UnknownModelError
from app.transcription.languages import normalise_language
from app.transcription.models import ModelAboveCapError, ModelManager
from app.transcription.types import SubtitleShape

__all__ = [
    "SHAPE_FIELDS",
    "InvalidInputError",
    "parse_bool",
    "parse_language",
    "parse_model",
    "parse_positive_int",
    "parse_subtitle_shape",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
SHAPE_FIELDS = ("max_line_width", "max_line_count", "max_words_per_cue")
# Far beyond any screen: a guard against absurd values, not a style rule.
_MAX_SHAPE_VALUE = 10_000


def parse_bool(raw: str | None, name: str, *, default: bool = False) -> bool:
    """1/0/true/false/yes/no/on/off (any case); empty or missing means `default`."""
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInputError(f"{name} must be true or false, not {raw!r}", param=name)


def parse_positive_int(raw: str | int | None, name: str) -> int | None:
    """A whole number of at least 1, or None when missing or empty."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(
            f"{name} must be a whole number of at least 1, not {raw!r}", param=name
        ) from None
    if not 1 <= value <= _MAX_SHAPE_VALUE:
        raise InvalidInputError(
            f"{name} must be a whole number from 1 to {_MAX_SHAPE_VALUE}, not {value}", param=name
        )
    return value


def parse_subtitle_shape(values: dict[str, str | int | None]) -> SubtitleShape:
    """max_line_width, max_line_count and max_words_per_cue from raw values (None = no limit)."""
    return SubtitleShape(
        max_line_width=parse_positive_int(values.get("max_line_width"), "max_line_width"),
        max_line_count=parse_positive_int(values.get("max_line_count"), "max_line_count"),
        max_words_per_cue=parse_positive_int(values.get("max_words_per_cue"), "max_words_per_cue"),
    )


def parse_language(raw: str | None, name: str = "language") -> str | None:
    """A Whisper language code from a code, name or regional tag; None means detect."""
    try:
        return normalise_language(raw)
    except ValueError as exc:
        raise InvalidInputError(str(exc), param=name, code="unsupported_language") from None


def parse_model(
    raw: str | None, models: ModelManager, *, default_aliases: tuple[str, ...] = ()
) -> str | None:
    """A catalogue model within MAX_MODEL, or None for the server's own choice.

    Empty, `default` and any of `default_aliases` (e.g. OpenAI's `whisper-1`) mean
    the server's choice; an unknown name or one above MAX_MODEL is refused.
    """
    if raw is None or not raw.strip():
        return None
    cleaned = raw.strip()
    if cleaned.lower() in ("default", *default_aliases):
        return None
    try:
        return models.requested_model(cleaned)
    except UnknownModelError:
        allowed = ", ".join(("default", *default_aliases, *models.names_within_cap()))
        raise InvalidInputError(
            f"unknown model {cleaned!r}; this server accepts: {allowed}",
            param="model",
            code="model_not_found",
        ) from None
    except ModelAboveCapError as exc:
        raise InvalidInputError(str(exc), param="model", code="model_not_allowed") from None
