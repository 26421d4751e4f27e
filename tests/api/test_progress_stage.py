"""The stage in each progress event follows what the worker has recorded on the job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.api.schemas import progress_stage, seconds_left
from app.transcription.jobs import Job, JobStage, JobStatus
from app.transcription.types import Segment, TranscribeOptions, Transcript


def new_job() -> Job:
    """A job as the intake makes it: queued, ten seconds of audio, no model yet."""
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(),
        time_uploaded=datetime.now(UTC),
        audio_duration=10,
    )


def test_stages_in_the_order_a_job_passes_them() -> None:
    """queued, decoding, loading_model, first_window, transcribing, then the final status."""
    job = new_job()
    seen = [progress_stage(job)]
    job.status, job.stage = JobStatus.PROCESSING, JobStage.DECODING
    seen.append(progress_stage(job))
    job.stage = JobStage.LOADING_MODEL
    seen.append(progress_stage(job))
    job.stage, job.used_model = JobStage.TRANSCRIBING, "tiny.en"
    seen.append(progress_stage(job))
    job.progress = 0.3
    seen.append(progress_stage(job))
    empty = Transcript(text="", language="en", language_probability=1.0, duration=10, segments=[])
    job.finish(empty, datetime.now(UTC))
    seen.append(progress_stage(job))
    assert seen == [
        "queued",
        "decoding",
        "loading_model",
        "first_window",
        "transcribing",
        "finished",
    ]


def test_a_decoded_line_counts_as_transcribing_before_any_fraction() -> None:
    """A first segment means the first window is done even if no fraction came yet."""
    job = new_job()
    job.status, job.stage = JobStatus.PROCESSING, JobStage.TRANSCRIBING
    job.used_model = "base"
    job.partial_segments.append(Segment(id=0, start=0.0, end=2.0, text="hello"))
    assert progress_stage(job) == "transcribing"
    job.fail("cancelled", datetime.now(UTC))
    assert progress_stage(job) == "failed"


class StoppedClock:
    """A wall clock standing at one moment."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def monotonic(self) -> float:
        """Unused here."""
        return 0.0

    def now(self) -> datetime:
        """The moment it stands at."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Unused here."""


def test_seconds_left_after_the_first_part_at_the_pace_so_far() -> None:
    """None until a share is done; then the rest at the pace so far (20 s for 25 % -> 60 s)."""
    job = new_job()
    started = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    clock = StoppedClock(started + timedelta(seconds=20))
    assert seconds_left(job, clock) is None  # queued
    job.status, job.stage = JobStatus.PROCESSING, JobStage.TRANSCRIBING
    job.time_processing_started = started
    assert seconds_left(job, clock) is None  # the first part is still running
    job.progress = 0.25
    assert seconds_left(job, clock) == 60.0
    empty = Transcript(text="", language="en", language_probability=1.0, duration=10, segments=[])
    job.finish(empty, started)
    assert seconds_left(job, clock) is None


def test_seconds_left_prefers_the_workers_expected_end_until_it_has_passed() -> None:
    """Long audio: the worker's expected end (known before any share); past it, the pace so far."""
    job = new_job()
    started = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    clock = StoppedClock(started + timedelta(seconds=20))
    job.status, job.stage = JobStatus.PROCESSING, JobStage.TRANSCRIBING
    job.time_processing_started = started
    job.expected_done_at = started + timedelta(seconds=32.5)
    assert seconds_left(job, clock) == 12.5  # nothing done yet, the pace known
    job.expected_done_at = started + timedelta(seconds=20.5)
    job.progress = 0.5
    assert seconds_left(job, clock) == 20.0  # under a second to go: the pace so far instead


def test_no_seconds_left_while_the_share_moves_at_a_guessed_pace() -> None:
    """A model's first long file: its share moves on a guess, so no time left is promised."""
    job = new_job()
    started = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    clock = StoppedClock(started + timedelta(seconds=20))
    job.status, job.stage = JobStatus.PROCESSING, JobStage.TRANSCRIBING
    job.time_processing_started = started
    job.progress, job.progress_guessed = 0.4, True
    assert seconds_left(job, clock) is None
    job.progress_guessed = False  # a batch was timed
    assert seconds_left(job, clock) == 30.0
