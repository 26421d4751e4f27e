"""Adaptive encoder context: shorter windows, failure signs, and the full-context redo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline
from faster_whisper.audio import pad_or_trim

from app.transcription.audio import decode_audio
from app.transcription.encoder_context import (
    DEFAULT_POLICY,
    FULL_CONTEXT_FRAMES,
    FULL_POLICY,
    ContextPolicy,
    Decoding,
    FailureThresholds,
    policy_for,
    row_content_frames,
    shows_failure,
)
from app.transcription.long_form import AdaptiveBatchedPipeline
from app.transcription.models import ModelSources
from app.transcription.single_pass import SinglePassWhisperModel
from tests.conftest import make_settings, shared_clip

TIMESTAMP_BEGIN = 50364
PRECISION = 0.02


def test_short_content_gets_margin_floor_and_rounding() -> None:
    """A short window gets content + margin, at least the floor, in steps of the multiple."""
    policy = ContextPolicy(floor_frames=1000, margin_frames=200, multiple=128)
    assert policy.frames_for(300) == 1024  # the floor, rounded up
    assert policy.frames_for(1100) == 1408  # 1300 rounded up to 11 x 128
    assert policy.frames_for(2900) == FULL_CONTEXT_FRAMES  # never above 30 s
    assert policy.frames_for(3000) == FULL_CONTEXT_FRAMES


def test_full_policy_and_setting_names() -> None:
    """ENCODER_CONTEXT=full always encodes 3000 frames; adaptive is the default policy."""
    assert FULL_POLICY.frames_for(100) == FULL_CONTEXT_FRAMES
    assert policy_for("full") is FULL_POLICY
    assert policy_for("adaptive") is DEFAULT_POLICY
    assert DEFAULT_POLICY.frames_for(100) < FULL_CONTEXT_FRAMES
    assert FULL_POLICY.label == "full" and "margin" in DEFAULT_POLICY.label


def test_content_frames_stop_where_the_zero_padding_starts() -> None:
    """Each padded window's content length is found, even where its last frames are quiet."""
    rng = np.random.default_rng(3)
    quiet = np.full((80, 50), -1.5, dtype=np.float32)  # clipped log-mel silence, not padding
    first = np.concatenate([rng.normal(size=(80, 400)).astype(np.float32), quiet], axis=1)
    second = rng.normal(size=(80, 1200)).astype(np.float32)
    batch = np.stack([pad_or_trim(first), pad_or_trim(second)])
    assert row_content_frames(batch) == [450, 1200]
    assert row_content_frames(np.zeros((80, 3000), dtype=np.float32)) == [0]


def _decoding(tokens: list[int], text: str = "a sentence", logprob: float = -0.2) -> Decoding:
    return Decoding(tokens=tokens, text=text, avg_logprob=logprob, no_speech_prob=0.1)


def _fails(decoding: Decoding, content_s: float = 5.0) -> bool:
    return shows_failure(
        decoding,
        content_s=content_s,
        timestamp_begin=TIMESTAMP_BEGIN,
        time_precision=PRECISION,
        thresholds=FailureThresholds(),
    )


def test_failure_signs_loop_doubt_and_invented_time() -> None:
    """Repetition, a low log-probability and a timestamp past the audio are failures."""
    in_time = [TIMESTAMP_BEGIN, 100, 200, TIMESTAMP_BEGIN + 240]  # 0.0 s .. 4.8 s
    assert not _fails(_decoding(in_time))
    assert _fails(_decoding(in_time, text="the same words again " * 20))
    assert _fails(_decoding(in_time, logprob=-1.5))
    assert _fails(_decoding([TIMESTAMP_BEGIN, 100, TIMESTAMP_BEGIN + 300]))  # 6.0 s > 5 + 0.5
    silent = Decoding(tokens=in_time, text="", avg_logprob=-1.5, no_speech_prob=0.9)
    assert not _fails(silent)  # silence is skipped by the caller, not redone


# ---------------------------------------------------------------- on the real model


@pytest.fixture(scope="module")
def base_path() -> Path:
    """The bundled multilingual base model's directory."""
    settings = make_settings()
    return ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base")


@pytest.fixture(scope="module")
def model(base_path: Path) -> SinglePassWhisperModel:
    """The service's model class on base, int8."""
    return SinglePassWhisperModel(str(base_path), device="cpu", compute_type="int8")


def _transcribe(model: Any, audio: Any, policy: ContextPolicy, **options: Any) -> Any:
    model.encoder_context = policy
    model.encoded_frames = model.windows_redone = 0
    segments, info = model.transcribe(audio, beam_size=5, **options)
    return list(segments), info


@pytest.mark.real_model
def test_short_clip_is_encoded_on_a_shorter_context(model: SinglePassWhisperModel) -> None:
    """An 11 s clip is encoded once on its own length plus margin, with the same text."""
    audio = decode_audio(shared_clip("en_jfk.flac").read_bytes())
    full, _ = _transcribe(model, audio, FULL_POLICY)
    short, info = _transcribe(model, audio, DEFAULT_POLICY)
    content = len(audio) // 160
    assert model.encoded_frames == DEFAULT_POLICY.frames_for(content) < FULL_CONTEXT_FRAMES
    assert model.windows_redone == 0
    assert info.language == "en"
    assert [s.text for s in short] == [s.text for s in full]


@pytest.mark.real_model
def test_failing_window_is_redone_with_the_full_context(model: SinglePassWhisperModel) -> None:
    """A window whose short decoding fails the checks is decoded again as on the full context."""
    audio = decode_audio(shared_clip("en_ljspeech_LJ001-0002.wav").read_bytes())
    # Every decoding is "doubtful" against a threshold of 0: the redo path must run.
    strict: dict[str, Any] = {
        "log_prob_threshold": 0.0,
        "temperature": [0.0],
        "language": "en",
        "word_timestamps": True,
    }
    full, _ = _transcribe(model, audio, FULL_POLICY, **strict)
    redone, _ = _transcribe(model, audio, DEFAULT_POLICY, **strict)
    content = len(audio) // 160
    assert model.windows_redone == 1
    assert model.encoded_frames == DEFAULT_POLICY.frames_for(content) + FULL_CONTEXT_FRAMES
    assert [(s.start, s.end, s.text) for s in redone] == [(s.start, s.end, s.text) for s in full]
    # Words are aligned on the full-context output the text came from.
    assert [w for s in redone for w in s.words] == [w for s in full for w in s.words]


@pytest.mark.real_model
def test_a_sliver_of_audio_is_silence_and_never_redone(model: SinglePassWhisperModel) -> None:
    """A window with under 0.1 s of audio decodes to nothing, without a full-context redo."""
    sliver = decode_audio(shared_clip("en_jfk.flac").read_bytes())[16000 * 2 : 16000 * 2 + 800]
    # Every real decoding would be "doubtful" against a threshold of 0 and be redone.
    segments, _ = _transcribe(model, sliver, DEFAULT_POLICY, language="en", log_prob_threshold=0.0)
    assert segments == []
    assert model.windows_redone == 0
    assert model.encoded_frames == DEFAULT_POLICY.frames_for(len(sliver) // 160)


@pytest.mark.real_model
def test_batched_pipeline_redoes_failing_chunks_on_the_full_context(
    model: SinglePassWhisperModel,
) -> None:
    """Chunks that fail the checks come out as the stock full-context pipeline's."""
    # 14 s of speech: VAD chunks well under 30 s, so the batch is encoded shorter.
    audio = decode_audio(shared_clip("en_longform_tedlium_120s.flac").read_bytes())[: 16000 * 14]
    options: dict[str, Any] = {"batch_size": 4, "language": "en", "log_prob_threshold": 0.0}
    model.encoder_context = FULL_POLICY
    stock, _ = BatchedInferencePipeline(model).transcribe(audio, **options)
    stock_texts = [s.text for s in stock]
    model.encoder_context = DEFAULT_POLICY
    model.windows_redone = 0
    adaptive, _ = AdaptiveBatchedPipeline(model).transcribe(audio, **options)
    assert [s.text for s in adaptive] == stock_texts
    assert model.windows_redone >= 1


@pytest.mark.real_model
def test_setting_reaches_the_loaded_model(base_path: Path) -> None:
    """ENCODER_CONTEXT chooses the policy of the model the service loads."""
    from app.transcription.engine import FasterWhisperTranscriber
    from app.transcription.models import Placement, load_faster_whisper

    for setting, policy in (("full", FULL_POLICY), ("adaptive", DEFAULT_POLICY)):
        loaded = load_faster_whisper(base_path, Placement("cpu", "int8"), encoder_context=setting)
        assert isinstance(loaded, FasterWhisperTranscriber)
        assert loaded.model.encoder_context is policy
