"""Tests for the one-process backend's answers at the service's seam (app.backends.local)."""

from __future__ import annotations

from app.backends.local import LocalBackend, MemoryTaskStore
from app.transcription.jobs import JobStatus
from app.transcription.worker import batch_key
from tests.transcription.rig import FakeClock, make_job, new_queue

TTL_S = 60.0


def local_backend(clock: FakeClock, max_waiting: int = 4) -> LocalBackend:
    """A backend over a fresh queue and a store with a 60 s lifetime, on `clock`."""
    store = MemoryTaskStore(ttl_s=TTL_S, refresh_on_read=False, clock=clock)
    return LocalBackend(new_queue(max_waiting=max_waiting, clock=clock), store)


async def test_the_waiting_bound_is_the_queues() -> None:
    """max_waiting reports MAX_TASK_QUEUE_SIZE as the queue enforces it."""
    assert local_backend(FakeClock(), max_waiting=3).max_waiting == 3


async def test_jobs_the_worker_took_run_here() -> None:
    """running_here lists the jobs taken from the queue until the worker is done with them."""
    backend = local_backend(FakeClock())
    job = make_job()
    await backend.submit(await backend.reserve(0), job, b"\0\0")
    assert backend.running_here() == []
    [taken] = await backend.queue.next_batch(1, batch_key)
    assert backend.running_here() == [job]
    backend.queue.done(taken.job)
    assert backend.running_here() == []


async def test_shutdown_fails_every_waiting_job_here() -> None:
    """fail_waiting_here fails the waiting jobs with the reason; their records stay readable."""
    backend = local_backend(FakeClock())
    jobs = [make_job(), make_job()]
    for job in jobs:
        await backend.submit(await backend.reserve(0), job, b"\0\0")
    assert await backend.fail_waiting_here("shutting down") == 2
    assert backend.counts().waiting == 0
    for job in jobs:
        assert job.status is JobStatus.FAILED and job.error == "shutting down"
        assert await backend.get(job.id, owner=None) is job


async def test_a_job_ended_here_expires_after_the_ttl() -> None:
    """mark_final starts the expiry clock of a job the worker ended; it reads as unknown after."""
    clock = FakeClock()
    backend = local_backend(clock)
    job = make_job()
    await backend.submit(await backend.reserve(0), job, b"\0\0")
    job.fail("stopped", clock.now())
    backend.mark_final(job)
    clock.advance(TTL_S - 1)
    assert await backend.get(job.id, owner=None) is job
    clock.advance(1)
    assert await backend.get(job.id, owner=None) is None
