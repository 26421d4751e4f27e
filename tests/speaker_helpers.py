"""Conversations as WAV uploads, and scoring speaker labels against the truth."""

from __future__ import annotations

import io
import itertools
import random
import wave
from collections.abc import Iterable, Sequence

import numpy as np

from app.bench.conversations import Conversation, build_conversation
from tests.conftest import SHARED_AUDIO, shared_clip


def conversation(voices: Sequence[str], turns: int = 10, seed: int = 0) -> Conversation:
    """Turns of 1.9-6 s by the given voices (clips from ../shared/audio), seeded."""
    shared_clip("en_jfk.flac")  # skips where the shared clips are missing
    rng = random.Random(seed)  # noqa: S311 (reproducible test material)
    lengths = [rng.uniform(1.9, 6.0) for _ in range(turns)]
    return build_conversation(SHARED_AUDIO, voices, lengths, seed=seed)


def wav(audio: np.ndarray) -> bytes:
    """16 kHz mono 16-bit WAV bytes of float samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def speech_on_right_label(
    talk: Conversation, spans: Iterable[tuple[float, float, str]]
) -> tuple[set[str], float]:
    """The labels used and the share of reference speech (covered by labelled spans) that
    carries the right label under the best one-to-one label-to-voice mapping."""
    spans = list(spans)
    labels = sorted({label for _, _, label in spans})
    voices = sorted(talk.voices)
    time_on: dict[tuple[str, str], float] = {}
    for start, end, label in spans:
        for turn in talk.turns:
            key = (label, turn.voice)
            time_on[key] = time_on.get(key, 0.0) + _overlap((start, end), (turn.start, turn.end))
    total = sum(time_on.values())
    best = max(
        sum(time_on.get((label, voice), 0.0) for label, voice in zip(labels, perm, strict=True))
        for perm in itertools.permutations(voices + [""] * len(labels), len(labels))
    )
    return set(labels), best / total if total else 0.0
