"""The Whisper models this service knows, smallest first.

Order is the "size" used by every cap and step-down rule: a model is allowed
under MAX_MODEL when it does not come after it in `CATALOGUE`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATALOGUE",
    "MODEL_NAMES",
    "ModelSpec",
    "UnknownModelError",
    "canonical_model_name",
    "model_rank",
    "spec",
]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A catalogue entry."""

    name: str
    multilingual: bool
    # Rough GPU memory (MiB) needed to load it in float16 and decode one job.
    vram_mib: int
    # large-v3-turbo was fine-tuned without translation data: it transcribes only.
    translates: bool = True


CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec("tiny.en", multilingual=False, vram_mib=400, translates=False),
    ModelSpec("tiny", multilingual=True, vram_mib=400),
    ModelSpec("base.en", multilingual=False, vram_mib=550, translates=False),
    ModelSpec("base", multilingual=True, vram_mib=550),
    ModelSpec("small.en", multilingual=False, vram_mib=1100, translates=False),
    ModelSpec("small", multilingual=True, vram_mib=1100),
    ModelSpec("medium.en", multilingual=False, vram_mib=2500, translates=False),
    ModelSpec("medium", multilingual=True, vram_mib=2500),
    ModelSpec("distil-large-v3", multilingual=False, vram_mib=2200, translates=False),
    ModelSpec("large-v3-turbo", multilingual=True, vram_mib=2400, translates=False),
    ModelSpec("large-v1", multilingual=True, vram_mib=4300),
    ModelSpec("large-v2", multilingual=True, vram_mib=4300),
    ModelSpec("large-v3", multilingual=True, vram_mib=4500),
)

MODEL_NAMES: tuple[str, ...] = tuple(model.name for model in CATALOGUE)
_ALIASES = {"turbo": "large-v3-turbo", "large": "large-v3"}
_BY_NAME = {model.name: model for model in CATALOGUE}


class UnknownModelError(ValueError):
    """A model name that is not in the catalogue."""


def canonical_model_name(name: str) -> str:
    """Return the catalogue name for `name` (aliases resolved) or raise UnknownModelError."""
    cleaned = name.strip().lower()
    cleaned = _ALIASES.get(cleaned, cleaned)
    if cleaned not in _BY_NAME:
        raise UnknownModelError(name)
    return cleaned


def spec(name: str) -> ModelSpec:
    """The catalogue entry of a (canonical or alias) model name."""
    return _BY_NAME[canonical_model_name(name)]


def model_rank(name: str) -> int:
    """Position of the model in the size order (0 = smallest)."""
    return MODEL_NAMES.index(canonical_model_name(name))
