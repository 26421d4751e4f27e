"""Tests for the bounded FIFO of waiting jobs and its batching linger (app.backends.local.queue)."""

from __future__ import annotations

import asyncio

import pytest

from app.backends.base import QueueFullError
from app.transcription.jobs import JobStatus
from app.transcription.worker import batch_key
from tests.asgi_helpers import eventually
from tests.transcription.rig import FakeClock, enqueue, make_job, new_queue, notifier_of, pcm


def test_a_job_beyond_the_bound_is_refused_at_once() -> None:
    """With max_waiting jobs waiting, has_room is False and submit raises QueueFullError."""
    queue = new_queue(max_waiting=2)
    first, second = make_job(), make_job()
    enqueue(queue, first)
    assert queue.has_room()
    enqueue(queue, second)
    assert not queue.has_room()
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job(), pcm())
    assert refused.value.limit == "jobs"
    assert queue.waiting == 2


def test_waiting_bytes_are_bounded_and_freed_when_taken() -> None:
    """Uploads past MAX_QUEUED_MB are refused with limit 'bytes'; a taken job frees its bytes."""
    queue = new_queue(max_waiting=10, max_waiting_bytes=100_000)
    enqueue(queue, make_job(), pcm(2.0))  # 64 000 bytes
    assert queue.waiting_bytes == 64_000
    assert not queue.has_room(expected_bytes=64_000)  # a declared Content-Length, up front
    with pytest.raises(QueueFullError) as refused:
        queue.submit(make_job(), pcm(2.0))
    assert refused.value.limit == "bytes"
    assert queue.waiting == 1


async def test_an_upload_larger_than_the_byte_bound_waits_alone() -> None:
    """An upload bigger than the whole bound is taken when nothing else waits."""
    queue = new_queue(max_waiting_bytes=1_000)
    enqueue(queue, make_job(), pcm(1.0))
    assert queue.waiting_bytes == 32_000
    await queue.next_batch(1, batch_key)
    assert queue.waiting_bytes == 0


async def test_next_batch_is_fifo_and_marks_running() -> None:
    """next_batch hands out the oldest waiting job and counts it as running, not waiting."""
    queue = new_queue(max_waiting=3)
    jobs = [make_job(seconds=45.0) for _ in range(3)]  # long: each decodes alone
    for job in jobs:
        enqueue(queue, job, pcm(0.1))
    [first] = await queue.next_batch(4, batch_key)
    assert first.job is jobs[0] and first.payload is not None
    assert queue.running == [jobs[0]]
    assert queue.waiting == 2
    assert queue.has_room()  # a running job does not take a waiting place
    assert [queue.position(job) for job in jobs] == [0, 1, 2]
    queue.done(first.job)
    assert queue.running == []
    assert queue.position(first.job) is None


async def test_next_batch_waits_for_a_submit() -> None:
    """next_batch blocks on an empty queue and returns once a job is queued."""
    queue = new_queue(max_waiting=1)
    waiter = asyncio.create_task(queue.next_batch(1, batch_key))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter.done()
    job = make_job()
    enqueue(queue, job)
    [taken] = await asyncio.wait_for(waiter, 1)
    assert taken.job is job


async def test_cancel_waiting_job_fails_it_at_once_and_wakes_the_rest() -> None:
    """Cancelling a waiting job fails it with the reason, drops its upload and moves others up."""
    queue = new_queue(max_waiting=3)
    first, second, third = make_job(), make_job(), make_job()
    for job in (first, second, third):
        enqueue(queue, job)
    notifier = notifier_of(queue)
    third_moved = notifier.token(third)
    assert queue.cancel(second, "cancelled by the client")
    assert second.status is JobStatus.FAILED
    assert second.error == "cancelled by the client"
    assert second.is_final
    assert third_moved.is_set()
    await asyncio.wait_for(notifier.wait_until_final(second), 1)
    assert queue.position(second) is None
    assert queue.position(third) == 2
    assert queue.waiting == 2 and queue.waiting_bytes == 2 * 32_000


def test_cancel_of_unknown_job_returns_false() -> None:
    """Cancelling a job that is not in the queue does nothing and returns False."""
    queue = new_queue(max_waiting=1)
    job = make_job()
    assert not queue.cancel(job, "gone")
    assert job.status is JobStatus.PENDING
    assert job.error is None


def test_drain_fails_every_waiting_job() -> None:
    """drain() fails all waiting jobs with the reason and returns their number."""
    queue = new_queue(max_waiting=3)
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        enqueue(queue, job)
    assert queue.drain("shutting down") == 3
    assert queue.waiting == 0 and queue.waiting_bytes == 0
    assert all(job.status is JobStatus.FAILED and job.error == "shutting down" for job in jobs)


async def test_next_batch_keeps_fifo_and_skips_incompatible_jobs() -> None:
    """The oldest job leads; compatible later jobs join up to the size; others keep their place."""
    queue = new_queue(10)
    first, long_one, second, translate, third, fourth = (
        make_job(language=None),
        make_job(language=None, seconds=45.0),
        make_job(language=None),
        make_job(language=None, task="translate"),
        make_job(language=None),
        make_job(language=None),
    )
    for job in (first, long_one, second, translate, third, fourth):
        enqueue(queue, job, pcm(0.1))
    batch = [entry.job for entry in await queue.next_batch(3, batch_key)]
    assert batch == [first, second, third]
    assert [queue.position(job) for job in batch] == [0, 0, 0]
    assert queue.position(long_one) == 1 and queue.position(translate) == 2
    assert [e.job for e in await queue.next_batch(3, batch_key)] == [long_one]  # decodes alone


async def test_taking_the_head_job_wakes_everyone_behind() -> None:
    """When the running job's successor starts, each waiting job's watchers are woken at once."""
    queue = new_queue(4)
    head, behind = make_job(seconds=45.0), make_job(seconds=45.0)
    enqueue(queue, head, pcm(0.1))
    enqueue(queue, behind, pcm(0.1))
    token = notifier_of(queue).token(behind)
    await queue.next_batch(1, batch_key)
    assert token.is_set()
    assert queue.position(behind) == 1


async def test_a_batch_lingers_for_uploads_in_flight_to_join_it() -> None:
    """Jobs landing while other uploads are still being received join the first batch."""
    arriving = [3]  # three uploads in flight
    queue = new_queue(clock=FakeClock(), uploads_in_flight=lambda: arriving[0])
    jobs = [make_job() for _ in range(4)]
    enqueue(queue, jobs[0])
    taking = asyncio.create_task(queue.next_batch(4, batch_key))
    for job in jobs[1:]:
        await asyncio.sleep(0)
        enqueue(queue, job)
        arriving[0] -= 1
    batch = await asyncio.wait_for(taking, 1)
    assert [entry.job for entry in batch] == jobs


async def test_a_lone_job_does_not_linger_without_uploads_in_flight() -> None:
    """With nothing arriving, a single job is handed out at once (the clock never moves)."""
    clock = FakeClock()
    queue = new_queue(clock=clock, max_linger_s=5.0)
    job = make_job()
    enqueue(queue, job)
    [taken] = await queue.next_batch(4, batch_key)
    assert taken.job is job
    assert clock.time == 1000.0


async def test_the_linger_ends_at_its_limit() -> None:
    """An upload that never completes holds the batch back for max_linger_s, no longer."""
    clock = FakeClock()
    queue = new_queue(clock=clock, uploads_in_flight=lambda: 1, max_linger_s=0.5)
    job = make_job()
    enqueue(queue, job)
    [taken] = await asyncio.wait_for(queue.next_batch(4, batch_key), 1)
    assert taken.job is job
    assert 1000.5 <= clock.time < 1000.6


async def test_a_job_that_decodes_alone_never_lingers() -> None:
    """A job without a batch key (long audio) is handed out at once, uploads arriving or not."""
    clock = FakeClock()
    queue = new_queue(clock=clock, uploads_in_flight=lambda: 1)
    job = make_job(seconds=45.0)
    enqueue(queue, job, pcm(0.1))
    [taken] = await queue.next_batch(4, batch_key)
    assert taken.job is job
    assert clock.time == 1000.0


async def test_a_batch_cancelled_while_lingering_goes_back_to_the_head_of_the_queue() -> None:
    """A worker stopped during the linger leaves its untouched jobs waiting, in order."""
    clock = FakeClock(autoadvance=False)
    queue = new_queue(clock=clock, uploads_in_flight=lambda: 1, max_linger_s=5.0)
    first, second, later = make_job(), make_job(), make_job(seconds=45.0)
    enqueue(queue, first)
    enqueue(queue, second)
    enqueue(queue, later, pcm(0.1))
    waiting_bytes = queue.waiting_bytes
    taking = asyncio.create_task(queue.next_batch(4, batch_key))
    await eventually(lambda: queue.waiting < 3)  # taken; the linger sleeps on the clock
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    assert queue.running == []
    assert [queue.position(job) for job in (first, second, later)] == [1, 2, 3]
    assert queue.waiting_bytes == waiting_bytes
