"""Fixtures for the speaker tests: the bundled embedder and conversations from shared clips."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from app.bench.conversations import Conversation, build_conversation
from app.transcription.speakers import SpeakerEmbedder, load_embedder
from tests.conftest import SHARED_AUDIO, shared_clip


@pytest.fixture(scope="session")
def embedder() -> SpeakerEmbedder:
    """The bundled d-vector embedder, loaded (and hash-checked) once."""
    return load_embedder()


@pytest.fixture
def conversation() -> Callable[..., Conversation]:
    """Builds a conversation of the given voices with turns of 1.9-6 s (seeded)."""

    def build(voices: Sequence[str], turns: int = 12, seed: int = 0) -> Conversation:
        shared_clip("en_jfk.flac")
        rng = random.Random(seed)  # noqa: S311 (reproducible test material)
        lengths = [rng.uniform(1.9, 6.0) for _ in range(turns)]
        return build_conversation(SHARED_AUDIO, voices, lengths, seed=seed)

    return build
