"""The worker's speaker stage: labels after transcription, privacy, and a missing model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest
import structlog

from app.transcription.jobs import Job, JobStatus
from app.transcription.speakers import SpeakerModelError
from app.transcription.speakers.stage import ReferenceAudioError, SpeakerStage, check_references
from app.transcription.types import SpeakerOptions, TranscribeOptions, Transcript
from app.transcription.worker import SpeakerStageCall, Worker
from tests.conftest import FakeTranscriber, fake_manager, make_settings, wav_bytes
from tests.transcription.rig import FakeClock, enqueue, new_queue, notifier_of

FINAL_TIMEOUT_S = 30


def _job(speakers: SpeakerOptions | None) -> Job:
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(language="en", word_timestamps=True, speakers=speakers),
        time_uploaded=datetime.now(UTC),
        raw_pcm=True,
        audio_duration=2.0,
    )


async def _run(job: Job, stage: SpeakerStageCall) -> Job:
    queue = new_queue()
    worker = Worker(
        queue,
        fake_manager(make_settings(cpu_fallback_model="base"), FakeTranscriber()),
        notifier=notifier_of(queue),
        clock=FakeClock(),
        speaker_stage=stage,
    )
    worker.start()
    try:
        enqueue(queue, job)
        await asyncio.wait_for(notifier_of(queue).wait_until_final(job), FINAL_TIMEOUT_S)
    finally:
        await worker.stop()
    return job


async def test_reference_clips_and_names_are_gone_after_the_job() -> None:
    """The job keeps no reference clip, no log line names a known speaker, erase drops names."""
    speakers = SpeakerOptions(
        known_speaker_names=("Zebediah",), known_speaker_references=(wav_bytes(2.0),)
    )
    with structlog.testing.capture_logs() as logs:
        job = await _run(_job(speakers), SpeakerStage())
    assert job.status is JobStatus.FINISHED, job.error
    assert job.options.speakers is not None
    assert job.options.speakers.known_speaker_references == ()
    assert job.transcript is not None and job.transcript.segments[0].speaker
    assert "Zebediah" not in repr(logs)
    assert any(entry["event"] == "speaker_stage_finished" for entry in logs)
    job.erase_content()
    assert job.options.speakers is None


async def test_missing_speaker_model_fails_only_that_job() -> None:
    """A stage whose model cannot load fails the job with a reason that says so."""

    def broken(audio: np.ndarray, transcript: Transcript, options: SpeakerOptions) -> Transcript:
        raise SpeakerModelError("the bundled speaker model is missing")

    job = await _run(_job(SpeakerOptions()), broken)
    assert job.status is JobStatus.FAILED
    assert job.error == "speaker labels failed: the bundled speaker model is missing"


async def test_jobs_without_speakers_skip_the_stage() -> None:
    """No speaker options: the stage is never called and segments carry no speaker."""
    calls: list[int] = []

    def counting(audio: np.ndarray, transcript: Transcript, options: SpeakerOptions) -> Transcript:
        calls.append(1)
        return transcript

    job = await _run(_job(None), counting)
    assert calls == []
    assert job.transcript is not None and job.transcript.segments[0].speaker is None


def test_reference_clips_must_be_audio() -> None:
    """A reference that is not audio is refused, naming its entry and the field."""
    check_references(SpeakerOptions(known_speaker_references=(wav_bytes(2.0),)))
    with pytest.raises(ReferenceAudioError, match="entry 1") as caught:
        check_references(SpeakerOptions(known_speaker_references=(wav_bytes(2.0), b"hello")))
    assert caught.value.param == "known_speaker_references[]"


def test_speaker_model_setting_is_used() -> None:
    """SPEAKER_MODEL is the path the stage loads (an error names it when missing)."""
    with pytest.raises(SpeakerModelError, match="no such file"):
        SpeakerStage("/nonexistent/speaker.onnx").embedder()
