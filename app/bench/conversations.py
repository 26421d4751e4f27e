"""Made-up conversations for the speaker tests and the ``speakers`` bench scenario.

Each voice is the speech (Silero VAD regions) of one or more clips in ../shared/audio
spoken by one person; a conversation takes turns of given lengths from the voices in a
shuffled order that never repeats a voice twice in a row, with short pauses between.
The reference says who speaks when, to the sample.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.transcription.audio import decode_audio
from app.transcription.speakers.regions import SAMPLE_RATE, speech_regions

__all__ = ["VOICES", "Conversation", "ReferenceTurn", "build_conversation", "load_voice"]

FloatArray = npt.NDArray[np.float32]

# One person per entry (LibriSpeech's four clips are all speaker 1089).
VOICES: dict[str, tuple[str, ...]] = {
    "jfk": ("en_jfk.flac",),
    "ted": ("en_longform_tedlium_120s.flac",),
    "librispeech": (
        "en_ls-test-clean_1089-134686-0000.flac",
        "en_ls-test-clean_1089-134686-0001.flac",
        "en_ls-test-clean_1089-134691-0000.flac",
        "en_ls-test-clean_1089-134691-0001.flac",
    ),
    "ljspeech": (
        "en_ljspeech_LJ001-0001.wav",
        "en_ljspeech_LJ001-0002.wav",
        "en_ljspeech_LJ001-0003.wav",
        "en_ljspeech_LJ001-0004.wav",
    ),
    "de": ("de_picovoice_test_de.wav",),
    "fr": ("fr_picovoice_test_fr.wav",),
    "ru": ("ru_coqui_ru.wav",),
    "zh": ("zh_aishell_BAC009S0724W0121.wav",),
}


@dataclass(frozen=True)
class ReferenceTurn:
    """Who spoke from ``start`` to ``end`` seconds."""

    voice: str
    start: float
    end: float


@dataclass(frozen=True)
class Conversation:
    """16 kHz audio and the truth about its speakers."""

    audio: FloatArray
    turns: tuple[ReferenceTurn, ...]

    @property
    def voices(self) -> set[str]:
        """The distinct voices that speak."""
        return {turn.voice for turn in self.turns}

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.audio) / SAMPLE_RATE


def load_voice(audio_dir: Path, voice: str) -> FloatArray:
    """The voice's speech: its clips decoded, silences between speech regions dropped.

    ``name@rate`` is that voice played ``rate`` times as fast (pitch shifted alike): a
    second voice from the same recording and microphone.
    """
    name, _, rate = voice.partition("@")
    speech = _speech(audio_dir, name)
    if not rate:
        return speech
    positions = np.arange(0, len(speech) - 1, float(rate))
    return np.asarray(np.interp(positions, np.arange(len(speech)), speech), dtype=np.float32)


def _speech(audio_dir: Path, voice: str) -> FloatArray:
    parts: list[FloatArray] = []
    for name in VOICES[voice]:
        audio = decode_audio((audio_dir / name).read_bytes())
        parts.extend(audio[start:end] for start, end in speech_regions(audio))
    return np.concatenate(parts).astype(np.float32)


def build_conversation(
    audio_dir: Path,
    voices: Sequence[str],
    turn_seconds: Sequence[float],
    *,
    seed: int = 0,
    pause_s: tuple[float, float] = (0.3, 0.7),
    level: float | None = None,
) -> Conversation:
    """Turns of ``turn_seconds`` taken in order from each voice (wrapping around).

    ``level`` scales every turn to that RMS, as one microphone and one gain would.
    """
    rng = random.Random(seed)  # noqa: S311 (reproducible test material, not secrets)
    streams = {voice: load_voice(audio_dir, voice) for voice in voices}
    cursors = dict.fromkeys(voices, 0)
    pieces: list[FloatArray] = []
    turns: list[ReferenceTurn] = []
    position = 0
    previous: str | None = None
    for index, seconds in enumerate(turn_seconds):
        # Every voice speaks once before the shuffle takes over, so none is left out.
        choices = [v for v in voices if v != previous] or list(voices)
        voice = voices[index] if index < len(voices) else rng.choice(choices)
        piece = _take(streams[voice], cursors, voice, int(seconds * SAMPLE_RATE))
        if level is not None:
            piece = piece * (level / max(float(np.sqrt(np.mean(piece**2))), 1e-6))
        pause = np.zeros(int(rng.uniform(*pause_s) * SAMPLE_RATE), dtype=np.float32)
        pieces += [piece.astype(np.float32), pause]
        turns.append(
            ReferenceTurn(voice, position / SAMPLE_RATE, (position + len(piece)) / SAMPLE_RATE)
        )
        position += len(piece) + len(pause)
        previous = voice
    return Conversation(np.concatenate(pieces).astype(np.float32), tuple(turns))


def _take(stream: FloatArray, cursors: dict[str, int], voice: str, length: int) -> FloatArray:
    start = cursors[voice] % len(stream)
    piece = (
        np.concatenate([stream[start:], stream])[:length]
        if start + length > len(stream)
        else stream[start : start + length]
    )
    cursors[voice] = start + length
    return piece
