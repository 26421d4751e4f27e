"""The option values a field's type cannot check: language names and models within the cap.

Shared by every upload surface and the realtime session. Each helper raises
`InvalidInputError`, which names the offending parameter; every surface turns it
into its own error shape (task API, OpenAI, /asr).
"""

from __future__ import annotations

from app.service.errors import InvalidInputError
from app.transcription.catalogue import UnknownModelError
from app.transcription.languages import normalise_language
from app.transcription.models import ModelAboveCapError, ModelManager

__all__ = ["parse_language", "parse_model"]


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
