"""Batched long-form: the language is read from the first batch's own encoder pass."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import BatchedInferencePipeline

from app.transcription.audio import decode_audio
from app.transcription.encoder_context import DEFAULT_POLICY
from app.transcription.engine import FasterWhisperTranscriber
from app.transcription.long_form import AdaptiveBatchedPipeline
from app.transcription.models import ModelSources
from app.transcription.progress import Estimate
from app.transcription.single_pass import SinglePassWhisperModel
from app.transcription.types import TranscribeOptions
from tests.conftest import make_settings, shared_clip

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def model() -> SinglePassWhisperModel:
    """The service's model class on the bundled multilingual base, int8, adaptive context."""
    settings = make_settings()
    path = ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base")
    loaded = SinglePassWhisperModel(str(path), device="cpu", compute_type="int8")
    loaded.encoder_context = DEFAULT_POLICY
    return loaded


def encoder_calls(model: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of every encoder pass the model makes from now on."""
    calls: list[tuple[int, ...]] = []
    encode = model._encode

    def counted(features: Any) -> Any:
        calls.append(tuple(features.shape))
        return encode(features)

    monkeypatch.setattr(model, "_encode", counted)
    return calls


def german_minute() -> Any:
    """About a minute of German speech: the Picovoice clip, repeated."""
    clip = decode_audio(Path(shared_clip("de_picovoice_test_de.wav")).read_bytes())
    return np.concatenate([clip] * 12)


def test_detection_reads_the_first_batch_and_decodes_as_the_stock_pipeline(
    model: SinglePassWhisperModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auto language: one encoder pass per batch, none of its own; same language and text."""
    audio = german_minute()
    stock_segments, stock_info = BatchedInferencePipeline(model).transcribe(audio, batch_size=4)
    stock_texts = [s.text for s in stock_segments]
    calls = encoder_calls(model, monkeypatch)
    segments, info = AdaptiveBatchedPipeline(model).transcribe(audio, batch_size=4)
    texts = [s.text for s in segments]
    assert (info.language, stock_info.language) == ("de", "de")
    assert info.language_probability > 0.9
    assert info.all_language_probs is not None and info.all_language_probs[0][0] == "de"
    assert texts == stock_texts
    assert all(len(shape) == 3 for shape in calls), calls  # every pass is a batch of chunks


def test_a_given_language_needs_no_detection(
    model: SinglePassWhisperModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the language given, the pipeline decodes as asked and reports that language."""
    calls = encoder_calls(model, monkeypatch)
    segments, info = AdaptiveBatchedPipeline(model).transcribe(
        german_minute(), batch_size=4, language="de"
    )
    assert list(segments)
    assert (info.language, info.language_probability) == ("de", 1)
    assert all(len(shape) == 3 for shape in calls), calls


def test_a_batch_split_over_replicas_gives_the_same_transcript(
    model: SinglePassWhisperModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """parallel=2: parts encoded once each on two threads; language and text kept, times close.

    A part is encoded on its own longest chunk's context, which may be shorter than the
    whole batch's: word times may then move by a frame or two, never the words.
    """
    audio = german_minute()
    whole, whole_info = AdaptiveBatchedPipeline(model).transcribe(
        audio, batch_size=4, word_timestamps=True
    )
    expected = [(s.text, [(w.start, w.end) for w in s.words or []]) for s in whole]
    assert len(expected) >= 2  # more than one chunk: there is a batch to split
    threads: set[int] = set()
    calls = encoder_calls(model, monkeypatch)
    encode = model._encode

    def noting_thread(features: Any) -> Any:
        threads.add(threading.get_ident())
        return encode(features)

    monkeypatch.setattr(model, "_encode", noting_thread)
    segments, info = AdaptiveBatchedPipeline(model, parallel=2).transcribe(
        audio, batch_size=4, word_timestamps=True
    )
    got = [(s.text, [(w.start, w.end) for w in s.words or []]) for s in segments]
    assert (info.language, whole_info.language) == ("de", "de")
    assert [text for text, _ in got] == [text for text, _ in expected]
    for (_, times), (_, expected_times) in zip(got, expected, strict=True):
        assert len(times) == len(expected_times)
        assert np.allclose(times, expected_times, atol=0.1)
    assert len(threads) == 2
    assert all(len(shape) == 3 for shape in calls), calls  # no pass of detection's own


def test_progress_moves_per_part_and_the_second_file_is_timed_by_the_first() -> None:
    """tiny.en on the 120 s talk (two batches): more shares than batches, rising, 1.0 last."""
    settings = make_settings()
    path = ModelSources(None, settings.model_cache_dir, allow_download=False).locate("tiny.en")
    tiny = SinglePassWhisperModel(str(path), device="cpu", compute_type="int8", num_workers=2)
    tiny.encoder_context = DEFAULT_POLICY
    transcriber = FasterWhisperTranscriber(tiny, parallel=2)
    audio = decode_audio(Path(shared_clip("en_longform_tedlium_120s.flac")).read_bytes())
    options = TranscribeOptions(language="en", long_form_batch_size=4)
    runs: list[list[tuple[float, Estimate | None]]] = []
    for _ in range(2):
        runs.append([])
        transcriber.transcribe(
            audio,
            options,
            lambda share, estimate=None, seen=runs[-1]: seen.append((share, estimate)),
            lambda: False,
        )
    for seen in runs:
        shares = [share for share, _ in seen]
        assert shares == sorted(shares) and shares[-1] == 1.0 and shares.count(1.0) == 1
        assert len(set(shares)) > 2, shares  # two batches, yet the halves of the first show
    first, second = runs
    guess = first[0][1]  # a fresh model has no pace for its first batch: only a prior
    assert guess is not None and guess.guessed and 0.8 < guess.until < 1
    estimated = second[0][1]  # the second file's first batch is estimated at the first's pace
    assert estimated is not None and not estimated.guessed
    assert 0.8 < estimated.until < 1 and estimated.until_s > 0
    assert estimated.total_s > estimated.until_s
