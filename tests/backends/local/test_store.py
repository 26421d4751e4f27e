"""Tests for the expiring in-memory task store (app.backends.local.store)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.backends.local.store import MemoryTaskStore
from app.transcription.jobs import Job, JobStatus
from app.transcription.types import Segment, TranscribeOptions, Transcript
from tests.transcription.rig import FakeClock

TTL_S = 60.0


def make_job(status: JobStatus = JobStatus.PENDING) -> Job:
    """A job with a prompt, a file name and (when finished) a transcript."""
    job = Job(
        task_type="transcribe",
        options=TranscribeOptions(language="en", initial_prompt="private prompt"),
        time_uploaded=datetime.now(UTC),
        audio_duration=1.0,
        file_name="secret.wav",
    )
    job.status = status
    if status is JobStatus.FINISHED:
        job.transcript = Transcript(
            text="private words",
            language="en",
            language_probability=1.0,
            duration=1.0,
            segments=[Segment(id=0, start=0.0, end=1.0, text=" private words")],
        )
    return job


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


def store_with(clock: FakeClock, *, refresh: bool) -> MemoryTaskStore:
    """A store with a 60 s lifetime on the fake clock."""
    return MemoryTaskStore(ttl_s=TTL_S, refresh_on_read=refresh, clock=clock)


def finished_in(store: MemoryTaskStore, status: JobStatus = JobStatus.FINISHED) -> Job:
    """Add a task that has just ended and start its expiry clock."""
    job = make_job(status)
    store.add(job)
    store.mark_final(job)
    return job


def test_finished_task_expires_after_ttl(clock: FakeClock) -> None:
    """A finished task is readable until its lifetime is over, then reads as unknown."""
    store = store_with(clock, refresh=False)
    job = finished_in(store)
    clock.advance(TTL_S - 0.001)
    assert store.get(job.id, owner=None) is job
    clock.advance(0.001)
    assert store.get(job.id, owner=None) is None
    assert len(store) == 0


def test_failed_task_expires_too(clock: FakeClock) -> None:
    """A failed task also expires after its lifetime."""
    store = store_with(clock, refresh=False)
    job = finished_in(store, JobStatus.FAILED)
    clock.advance(TTL_S)
    assert store.get(job.id, owner=None) is None


def test_expired_task_content_is_erased(clock: FakeClock) -> None:
    """Expiry drops the transcript, prompt and file name held by the job object."""
    store = store_with(clock, refresh=False)
    job = finished_in(store)
    transcript = job.transcript
    assert transcript is not None
    clock.advance(TTL_S + 1)
    assert store.get(job.id, owner=None) is None
    assert job.transcript is None
    assert job.options.initial_prompt is None
    assert job.file_name is None


def test_read_refreshes_expiry_when_enabled(clock: FakeClock) -> None:
    """With refresh on, each read restarts the lifetime from the time of the read."""
    store = store_with(clock, refresh=True)
    job = finished_in(store)
    clock.advance(50)
    assert store.get(job.id, owner=None) is job
    clock.advance(50)  # 100 s after finishing, 50 s after the last read
    assert store.get(job.id, owner=None) is job
    clock.advance(TTL_S)
    assert store.get(job.id, owner=None) is None


def test_read_does_not_refresh_when_disabled(clock: FakeClock) -> None:
    """With refresh off, reading does not extend the lifetime counted from the end."""
    store = store_with(clock, refresh=False)
    job = finished_in(store)
    clock.advance(50)
    assert store.get(job.id, owner=None) is job
    clock.advance(10)
    assert store.get(job.id, owner=None) is None


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_unfinished_tasks_never_expire(clock: FakeClock, status: JobStatus) -> None:
    """Pending and processing tasks stay however much time passes."""
    store = store_with(clock, refresh=False)
    job = make_job(status)
    store.add(job)
    assert store.get(job.id, owner=None) is job
    assert store.sweep() == 0
    clock.advance(TTL_S * 1000)
    assert store.sweep() == 0
    assert store.get(job.id, owner=None) is job
    clock.advance(TTL_S * 1000)
    assert store.get(job.id, owner=None) is job


def test_lifetime_starts_when_the_task_ends(clock: FakeClock) -> None:
    """Time spent waiting or processing does not count against the result's lifetime."""
    store = store_with(clock, refresh=False)
    job = make_job(JobStatus.PROCESSING)
    store.add(job)
    clock.advance(TTL_S * 10)
    job.status = JobStatus.FINISHED
    store.mark_final(job)
    clock.advance(TTL_S / 2)
    assert store.get(job.id, owner=None) is job


def test_sweep_removes_only_expired_tasks_and_counts_them(clock: FakeClock) -> None:
    """sweep() drops the expired tasks, keeps the rest and returns how many went."""
    store = store_with(clock, refresh=False)
    old_finished = finished_in(store)
    old_failed = finished_in(store, JobStatus.FAILED)
    clock.advance(TTL_S / 2)
    young = finished_in(store)
    pending = make_job()
    store.add(pending)
    clock.advance(TTL_S / 2)
    assert store.sweep() == 2
    assert len(store) == 2
    assert store.get(old_finished.id, owner=None) is None
    assert store.get(old_failed.id, owner=None) is None
    assert store.get(young.id, owner=None) is young
    assert store.get(pending.id, owner=None) is pending
    assert old_finished.transcript is None
    assert store.sweep() == 0


def test_sweep_on_empty_store_returns_zero(clock: FakeClock) -> None:
    """Sweeping an empty store removes nothing."""
    assert store_with(clock, refresh=True).sweep() == 0


def test_delete_forgets_and_erases_the_task(clock: FakeClock) -> None:
    """delete() returns the task, drops its transcript and prompt, and it reads as unknown."""
    store = store_with(clock, refresh=True)
    job = finished_in(store)
    assert store.delete(job.id) is job
    assert job.transcript is None
    assert job.options.initial_prompt is None
    assert job.file_name is None
    assert store.get(job.id, owner=None) is None
    assert len(store) == 0


def test_unknown_id_reads_and_deletes_as_none(clock: FakeClock) -> None:
    """An id the store never saw gives None from get and delete."""
    store = store_with(clock, refresh=True)
    store.add(make_job())
    assert store.get("no-such-task", owner=None) is None
    assert store.delete("no-such-task") is None
    assert len(store) == 1


def test_final_task_without_mark_final_still_expires(clock: FakeClock) -> None:
    """A task that became final without mark_final gets a lifetime on first check, then expires."""
    store = store_with(clock, refresh=False)
    job = make_job(JobStatus.FINISHED)
    store.add(job)
    assert store.get(job.id, owner=None) is job
    clock.advance(TTL_S)
    assert store.get(job.id, owner=None) is None


def test_another_owners_read_neither_finds_nor_refreshes_a_task(clock: FakeClock) -> None:
    """A wrong key reading a task id gets None, and the task's expiry clock is left alone."""
    store = store_with(clock, refresh=True)
    job = make_job(JobStatus.FINISHED)
    job.owner = "key-a"
    store.add(job)
    store.mark_final(job)
    clock.advance(TTL_S - 1)
    assert store.get(job.id, owner="key-b") is None
    assert store.get(job.id, owner=None) is None
    clock.advance(2)
    assert store.get(job.id, owner="key-a") is None  # expired: the wrong reads did not refresh it
