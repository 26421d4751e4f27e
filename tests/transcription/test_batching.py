"""Cross-request batching and batched long-form give the sequential path's results."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from app.bench.runner import word_error_rate
from app.transcription.audio import decode_audio
from app.transcription.batching import decode_short_batch, is_batchable, pick_companions
from app.transcription.encoder_context import FULL_POLICY
from app.transcription.engine import FasterWhisperTranscriber, split_on_words
from app.transcription.models import ModelSources, Placement, load_faster_whisper
from app.transcription.types import Segment, TranscribeOptions, Word
from tests.conftest import make_settings, reference_text, shared_clip

SHORT_CLIPS = [
    "en_ls-test-clean_1089-134686-0000.flac",
    "en_ls-test-clean_1089-134691-0000.flac",
    "en_ljspeech_LJ001-0002.wav",
    "en_ljspeech_LJ001-0004.wav",
    "de_picovoice_test_de.wav",
    "fr_picovoice_test_fr.wav",
]


def test_short_default_jobs_are_batchable() -> None:
    """Only short clips with default decoding options may share a batch."""
    assert is_batchable(11.0, TranscribeOptions())
    assert is_batchable(11.0, TranscribeOptions(task="translate", language="de"))
    assert not is_batchable(45.0, TranscribeOptions())
    assert not is_batchable(11.0, TranscribeOptions(word_timestamps=True))
    assert not is_batchable(11.0, TranscribeOptions(vad_filter=True))
    assert not is_batchable(11.0, TranscribeOptions(initial_prompt="Names: Ada"))
    assert not is_batchable(11.0, TranscribeOptions(temperature=0.0))
    assert not is_batchable(0.0, TranscribeOptions())


def _pick(head: tuple[str, float], waiting: list[tuple[str, float]], room: int, **kw: object):  # type: ignore[no-untyped-def]
    return pick_companions(
        head, waiting, room, key=lambda job: job[0] or None, seconds=lambda job: job[1], **kw
    )


def test_companions_of_similar_length_join_first_in_queue_order() -> None:
    """Jobs whose encoder context is nearest the head's join, returned in queue order."""
    head = ("en", 3.0)
    waiting = [("en", 28.0), ("en", 4.0), ("en", 20.0), ("en", 2.0), ("en", 15.0)]
    assert _pick(head, waiting, 2) == [("en", 4.0), ("en", 2.0)]
    assert _pick(head, waiting, 3) == [("en", 4.0), ("en", 2.0), ("en", 15.0)]
    assert _pick(head, waiting, 10) == waiting


def test_companions_need_the_heads_key_and_room() -> None:
    """Other keys never join, a None key decodes alone, and no room means nobody joins."""
    waiting = [("de", 3.0), ("en", 25.0), ("en", 3.0)]
    assert _pick(("en", 3.0), waiting, 2) == [("en", 25.0), ("en", 3.0)]
    assert _pick(("en", 3.0), waiting, 1) == [("en", 3.0)]
    assert _pick(("", 3.0), waiting, 2) == []
    assert _pick(("en", 3.0), waiting, 0) == []


def test_companions_keep_fifo_order_when_contexts_are_equal() -> None:
    """With the full context every length costs the same: the earliest arrivals join."""
    waiting = [("en", 28.0), ("en", 4.0), ("en", 3.0)]
    assert _pick(("en", 3.0), waiting, 2, policy=FULL_POLICY) == [("en", 28.0), ("en", 4.0)]


def test_split_on_words_cuts_sentences_and_pauses() -> None:
    """A long segment is cut after sentence ends and long pauses, keeping every word."""
    words = [
        Word(0.0, 0.4, " Hello", 0.9),
        Word(0.5, 0.9, " there.", 0.9),
        Word(1.0, 1.4, " Next", 0.9),
        Word(1.5, 1.9, " part", 0.9),
        Word(3.0, 3.5, " after", 0.9),
        Word(3.6, 4.0, " pause", 0.9),
    ]
    segment = Segment(id=1, start=0.0, end=4.0, text=" x", tokens=[1, 2], words=words)
    pieces = split_on_words(segment, 7, keep_words=False)
    assert [p.text for p in pieces] == [" Hello there.", " Next part", " after pause"]
    assert [(p.start, p.end) for p in pieces] == [(0.0, 0.9), (1.0, 1.9), (3.0, 4.0)]
    assert [p.id for p in pieces] == [8, 9, 10]
    assert pieces[0].tokens == [1, 2] and pieces[1].tokens == []
    assert all(p.words is None for p in pieces)
    assert split_on_words(segment, 0, keep_words=True)[2].words == words[4:]


@pytest.fixture(scope="module")
def base_transcriber() -> FasterWhisperTranscriber:
    """The bundled base model, loaded the way the service loads it."""
    settings = make_settings()
    path = ModelSources(None, settings.model_cache_dir, allow_download=False).locate("base")
    transcriber = load_faster_whisper(Path(path), Placement("cpu", "int8"))
    assert isinstance(transcriber, FasterWhisperTranscriber)
    return transcriber


def _sequential(
    transcriber: FasterWhisperTranscriber, audio: np.ndarray, options: TranscribeOptions
):  # type: ignore[no-untyped-def]
    return transcriber.transcribe(audio, options, lambda *_: None, lambda: False)


@pytest.mark.real_model
def test_batched_short_clips_match_sequential(base_transcriber: FasterWhisperTranscriber) -> None:
    """Each clip's batched text, timestamps and language match its own sequential decoding."""
    audios = [decode_audio(shared_clip(name).read_bytes()) for name in SHORT_CLIPS]
    options = [TranscribeOptions() for _ in audios]
    options[1] = TranscribeOptions(language="en")  # a given language beside detected ones
    batched = base_transcriber.decode_batch(audios, options)
    assert sum(result is not None for result in batched) >= len(audios) - 1
    for name, audio, option, result in zip(SHORT_CLIPS, audios, options, batched, strict=True):
        if result is None:
            continue
        alone = _sequential(base_transcriber, audio, option)
        assert result.language == alone.language, name
        assert word_error_rate(alone.text, result.text) <= 0.05, name
        starts = [s.start for s in result.segments]
        assert starts == sorted(starts)
        assert all(0 <= s.start < s.end <= result.duration + 0.05 for s in result.segments)
        assert [round(s.start, 2) for s in result.segments] == [
            round(s.start, 2) for s in alone.segments
        ], name


@pytest.mark.real_model
def test_batch_leaves_silence_to_the_sequential_path(
    base_transcriber: FasterWhisperTranscriber,
) -> None:
    """A clip the thresholds reject comes back as None (decoded alone), others still batch."""
    speech = decode_audio(shared_clip("en_ljspeech_LJ001-0002.wav").read_bytes())
    noise = np.random.default_rng(7).normal(0, 0.3, 16000 * 5).astype(np.float32)
    results = decode_short_batch(base_transcriber.model, [speech, noise], [TranscribeOptions()] * 2)
    assert results[0] is not None
    assert results[1] is None or not results[1].text.strip() or results[1].segments


@pytest.mark.real_model
def test_batched_long_form_keeps_quality_and_times(
    base_transcriber: FasterWhisperTranscriber,
) -> None:
    """The batched VAD pipeline stays within one WER point of sequential, with sane times."""
    clip = "en_longform_tedlium_120s.flac"
    audio = decode_audio(shared_clip(clip).read_bytes())
    reference = reference_text(clip)
    sequential = _sequential(base_transcriber, audio, TranscribeOptions())
    batched = _sequential(
        base_transcriber, audio, TranscribeOptions(long_form_batch_size=4, word_timestamps=True)
    )
    assert (
        word_error_rate(reference, batched.text)
        <= word_error_rate(reference, sequential.text) + 0.01
    )
    ends = [s.end for s in batched.segments]
    assert ends == sorted(ends) and ends[-1] <= batched.duration + 0.05
    assert max(s.end - s.start for s in batched.segments) <= 30.0
    for segment in batched.segments:
        assert segment.words
        assert all(segment.start <= w.start <= w.end <= segment.end for w in segment.words)


@pytest.mark.real_model
def test_batch_is_encoded_once_per_context_and_equals_sequential(
    base_transcriber: FasterWhisperTranscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clips of different lengths are encoded per context, never padded to a longer one."""
    names = [
        "en_ljspeech_LJ001-0002.wav",  # 1.9 s
        "en_ls-test-clean_1089-134686-0000.flac",  # 10.4 s: a longer context
        "en_ls-test-clean_1089-134691-0000.flac",  # 2.4 s: the first clip's context
    ]
    audios = [decode_audio(shared_clip(name).read_bytes()) for name in names]
    model = base_transcriber.model
    shapes: list[tuple[int, ...]] = []
    encode = model.encode

    def recording(features: np.ndarray) -> object:
        shapes.append(features.shape)
        return encode(features)

    monkeypatch.setattr(model, "encode", recording)
    options = [TranscribeOptions(language="en")] * 3
    batched = decode_short_batch(model, audios, options, parallel=1)
    monkeypatch.undo()
    contexts = [model.encoder_context.frames_for(len(a) // 160) for a in audios]
    assert contexts[0] == contexts[2] != contexts[1]
    assert sorted((shape[0], shape[-1]) for shape in shapes) == [(1, 3000), (2, 3000)]
    for name, audio, option, result in zip(names, audios, options, batched, strict=True):
        assert result is not None, name
        assert result.text == _sequential(base_transcriber, audio, option).text, name


@pytest.mark.real_model
def test_batch_split_over_replicas_decodes_parts_at_once_with_the_same_results(
    base_transcriber: FasterWhisperTranscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """parallel=2: each context group is halved, the halves run on two threads, nothing changes."""
    names = [
        "en_ljspeech_LJ001-0002.wav",
        "en_ls-test-clean_1089-134691-0000.flac",
        "en_ljspeech_LJ001-0004.wav",
        "de_picovoice_test_de.wav",
    ]
    audios = [decode_audio(shared_clip(name).read_bytes()) for name in names]
    options = [TranscribeOptions() for _ in audios]
    model = base_transcriber.model
    together = decode_short_batch(model, audios, options, parallel=1)
    calls: list[tuple[int, int]] = []  # (thread, rows) of every encoder pass
    encode = model.encode

    def recording(features: np.ndarray) -> object:
        calls.append((threading.get_ident(), features.shape[0]))
        return encode(features)

    monkeypatch.setattr(model, "encode", recording)
    split = decode_short_batch(model, audios, options, parallel=2)
    monkeypatch.undo()
    assert sum(rows for _, rows in calls) == len(audios)  # each clip encoded once
    assert len(calls) > len({model.encoder_context.frames_for(len(a) // 160) for a in audios})
    assert len({thread for thread, _ in calls}) == 2
    for name, one, other in zip(names, together, split, strict=True):
        assert one is not None and other is not None, name
        assert (other.language, other.text) == (one.language, one.text), name
        assert [(s.start, s.end) for s in other.segments] == [
            (s.start, s.end) for s in one.segments
        ], name
