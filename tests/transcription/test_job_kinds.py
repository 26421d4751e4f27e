"""Per-job model choice, language-detection jobs and streamed segments through the worker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from app.transcription.catalogue import UnknownModelError
from app.transcription.engine import speech_windows
from app.transcription.jobs import Job, JobStatus
from app.transcription.models import ModelAboveCapError
from app.transcription.types import TaskType, TranscribeOptions
from tests.conftest import FakeTranscriber, fake_manager, make_settings
from tests.transcription.rig import enqueue, start_rig, wait_until


def make_job(options: TranscribeOptions, task_type: TaskType = "transcribe") -> Job:
    """A one-second job of quiet noise (not digital silence) with `options`."""
    return Job(
        task_type=task_type,
        options=options,
        time_uploaded=datetime.now(UTC),
        raw_pcm=True,
        audio_duration=1.0,
    )


async def run_one(job: Job, transcriber: FakeTranscriber, **settings: object) -> Job:
    """Run `job` on a fresh worker over the fake manager and return it once final."""
    rig = start_rig(transcriber, settings=make_settings(**settings))
    try:
        enqueue(rig.queue, job)
        await rig.final(job)
    finally:
        await rig.worker.stop()
    return job


def test_requested_model_is_canonical_and_capped() -> None:
    """Aliases resolve, names above MAX_MODEL and unknown names are refused."""
    manager = fake_manager(make_settings(max_model="small"), FakeTranscriber())
    assert manager.requested_model("BASE") == "base"
    assert manager.requested_model("tiny.en") == "tiny.en"
    with pytest.raises(ModelAboveCapError, match="MAX_MODEL=small"):
        manager.requested_model("turbo")
    with pytest.raises(UnknownModelError):
        manager.requested_model("whisper-1")
    assert manager.names_within_cap()[-1] == "small"


def test_plan_puts_the_requested_model_first() -> None:
    """A job's own model replaces the server's target at the head of its candidates."""
    # MAX_MODEL set: without it a CPU server is capped at CPU_FALLBACK_MODEL (small here).
    settings = make_settings(cpu_fallback_model="small", max_model="large-v3")
    manager = fake_manager(settings, FakeTranscriber())
    assert manager.plan(needs_multilingual=True)[0] == "small"
    assert manager.plan(needs_multilingual=True, model="tiny") == [
        "tiny",
        "base",
        "small",
        "medium",
        "large-v3-turbo",
        "large-v1",
        "large-v2",
        "large-v3",
    ]
    assert manager.plan(needs_multilingual=False, model="tiny.en")[0] == "tiny.en"


async def test_job_model_choice_is_reported_with_step_down() -> None:
    """A job asking for tiny (not on disk) steps up to base; target and used are both kept."""
    job = await run_one(make_job(TranscribeOptions(language="de", model="tiny")), FakeTranscriber())
    assert job.status is JobStatus.FINISHED
    assert (job.target_model, job.used_model) == ("tiny", "base")

    english = await run_one(
        make_job(TranscribeOptions(language="en", model="tiny.en")), FakeTranscriber()
    )
    assert (english.target_model, english.used_model) == ("tiny.en", "tiny.en")


async def test_detect_job_runs_on_a_multilingual_model_and_keeps_the_detection() -> None:
    """A detect job finishes with a detection (no transcript) on base, never on tiny.en."""
    transcriber = FakeTranscriber(language="fr")
    job = await run_one(
        make_job(TranscribeOptions(task="detect"), task_type="detect"),
        transcriber,
        develop_mode=True,
    )
    assert job.status is JobStatus.FINISHED
    assert job.transcript is None
    assert job.detection is not None
    assert job.detection.language == "fr"
    assert job.used_model == "base"
    assert transcriber.calls == []  # detection never transcribes


async def test_segments_are_published_while_decoding() -> None:
    """Decoded segments appear on the job while it runs; at the end the transcript holds them."""
    gate = threading.Event()
    transcriber = FakeTranscriber(text="one two three four", segment_count=4, gate=gate)
    rig = start_rig(transcriber, gate=gate)
    job = make_job(TranscribeOptions(language="en"))
    try:
        enqueue(rig.queue, job)
        await wait_until(rig.notifier, job, lambda: bool(job.partial_segments))
        assert [s.text for s in job.partial_segments] == [" one"]
        gate.set()
        await rig.final(job)
    finally:
        gate.set()
        await rig.worker.stop()
    assert job.transcript is not None
    assert [s.text for s in job.transcript.segments] == [" one", " two", " three", " four"]
    assert job.partial_segments == []  # not kept twice


def test_speech_windows_cover_the_audio_when_there_is_no_speech() -> None:
    """Silence (no speech for the VAD) falls back to 30 s windows of the raw audio."""
    silence = np.zeros(16000 * 75, dtype=np.float32)
    windows, speech_seconds = speech_windows(silence)
    assert speech_seconds == 0.0
    assert [len(w) for w in windows] == [16000 * 30, 16000 * 30, 16000 * 15]


def test_speech_windows_are_spread_over_long_audio() -> None:
    """More windows than allowed are thinned out evenly over the audio, keeping the first."""
    block = 16000 * 30
    # Twelve 30 s blocks of faint DC, block i at level i * 1e-5: no speech, easy to tell apart.
    audio = np.repeat(np.arange(12, dtype=np.float32) * np.float32(1e-5), block)
    windows, _ = speech_windows(audio, max_windows=3)
    levels = [round(float(window[0]) / 1e-5) for window in windows]
    assert levels == [0, 4, 8]
