"""The worker's speaker stage: labels after transcription, privacy, and a missing model."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest
import structlog

from app.transcription.queue import Job, JobQueue, JobStatus, Worker
from app.transcription.speaker_stage import SpeakerStage
from app.transcription.speakers import SpeakerModelError
from app.transcription.types import SpeakerOptions, TranscribeOptions, Transcript
from tests.conftest import FakeTranscriber, fake_manager, make_settings, wav_bytes

FINAL_TIMEOUT_S = 30


def _job(speakers: SpeakerOptions) -> Job:
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(language="en", word_timestamps=True, speakers=speakers),
        audio=np.full(32_000, 0.01, dtype=np.float32),
        audio_duration=2.0,
    )


async def _run(job: Job, stage: object) -> Job:
    queue = JobQueue(max_waiting=2)
    settings = make_settings(cpu_fallback_model="base")
    worker = Worker(queue, fake_manager(settings, FakeTranscriber()), speaker_stage=stage)  # type: ignore[arg-type]
    worker.start()
    try:
        queue.submit(job)
        async with asyncio.timeout(FINAL_TIMEOUT_S):
            await job.wait_until_final()
    finally:
        await worker.stop()
    return job


async def test_reference_clips_and_names_are_gone_after_the_job() -> None:
    """The job keeps no reference clip, and no log line names a known speaker."""
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


async def test_missing_speaker_model_fails_only_that_job() -> None:
    """A stage whose model cannot load fails the job with a reason that says so."""

    def broken(audio: object, transcript: Transcript, options: SpeakerOptions) -> Transcript:
        raise SpeakerModelError("the bundled speaker model is missing")

    job = await _run(_job(SpeakerOptions()), broken)
    assert job.status is JobStatus.FAILED
    assert job.error == "speaker labels failed: the bundled speaker model is missing"


async def test_jobs_without_speakers_skip_the_stage() -> None:
    """No speaker options: the stage is never called and segments carry no speaker."""
    calls: list[int] = []

    def counting(audio: object, transcript: Transcript, options: SpeakerOptions) -> Transcript:
        calls.append(1)
        return transcript

    job = _job(SpeakerOptions())
    job.options = msgspec.structs.replace(job.options, speakers=None)
    await _run(job, counting)
    assert calls == []
    assert job.transcript is not None and job.transcript.segments[0].speaker is None


@pytest.mark.parametrize("model_path", ["/nonexistent/speaker.onnx"])
def test_speaker_model_setting_is_used(model_path: str) -> None:
    """SPEAKER_MODEL is the path the stage loads (an error names it when missing)."""
    with pytest.raises(SpeakerModelError, match="no such file"):
        SpeakerStage(model_path).embedder()
