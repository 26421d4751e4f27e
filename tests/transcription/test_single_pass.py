"""One encoder pass per window gives the same result as faster-whisper's transcribe()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faster_whisper import WhisperModel

from app.transcription.audio import decode_audio
from app.transcription.encoder_context import FULL_POLICY
from app.transcription.models import ModelSources
from app.transcription.single_pass import SinglePassWhisperModel
from tests.conftest import make_settings, shared_clip

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def base_path() -> Path:
    """The bundled multilingual base model's directory."""
    settings = make_settings()
    return ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base")


def _run(model: Any, audio: Any, **options: Any) -> tuple[Any, list[tuple[float, float, str]]]:
    segments, info = model.transcribe(audio, beam_size=5, **options)
    return info, [(s.start, s.end, s.text) for s in segments]


class CountingModel(SinglePassWhisperModel):
    """Counts encoder calls."""

    encodes = 0

    def encode(self, features: Any) -> Any:
        """Count, then encode."""
        type(self).encodes += 1
        return super().encode(features)


@pytest.mark.parametrize(
    "clip", ["en_jfk.flac", "de_picovoice_test_de.wav", "en_longform_tedlium_120s.flac"]
)
def test_single_pass_equals_transcribe(base_path: Path, clip: str) -> None:
    """Segments, times and language equal faster-whisper's own transcribe() with auto language."""
    audio = decode_audio(shared_clip(clip).read_bytes())
    if clip.startswith("en_longform"):
        audio = audio[: 16000 * 45]  # two windows are enough to cover seek > 0
    stock = WhisperModel(str(base_path), device="cpu", compute_type="int8")
    # The full context: this pins the single pass alone (the adaptive one has its own tests).
    single = SinglePassWhisperModel(
        str(base_path), device="cpu", compute_type="int8", encoder_context=FULL_POLICY
    )
    stock_info, stock_segments = _run(stock, audio)
    info, segments = _run(single, audio)
    assert segments == stock_segments
    assert info.language == stock_info.language
    assert info.language_probability == pytest.approx(stock_info.language_probability, abs=0.02)


def test_single_pass_encodes_the_first_window_once(base_path: Path) -> None:
    """A short clip with language auto costs one encoder pass, not two."""
    audio = decode_audio(shared_clip("en_jfk.flac").read_bytes())
    model = CountingModel(str(base_path), device="cpu", compute_type="int8")
    CountingModel.encodes = 0
    _run(model, audio)
    assert CountingModel.encodes == 1


def test_given_language_and_word_timestamps_still_work(base_path: Path) -> None:
    """With a given language nothing is kept; word timestamps come out inside the audio."""
    audio = decode_audio(shared_clip("en_jfk.flac").read_bytes())
    model = SinglePassWhisperModel(str(base_path), device="cpu", compute_type="int8")
    segments, info = model.transcribe(audio, language="en", word_timestamps=True)
    words = [w for s in segments for w in s.words]
    assert info.language == "en"
    assert words and all(0 <= w.start <= w.end <= 11.05 for w in words)
