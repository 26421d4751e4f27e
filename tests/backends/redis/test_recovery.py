"""Redis restarts, flushes and refusals against a real redis-server: every loop keeps going."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from app.backends.base import JOB_LOST_REASON, BackendUnavailableError, FleetWorker
from app.backends.redis.fleet import WorkerPresence
from app.backends.redis.keys import Keys
from app.backends.redis.notify import supervised
from app.backends.redis.queue import ensure_groups
from app.transcription.jobs import JobStatus
from app.transcription.types import Transcript
from app.transcription.worker import batch_key
from tests.backends.redis.cluster_rig import RedisProcess
from tests.backends.redis.test_store import Node, consumer, make_job
from tests.transcription.rig import FakeClock


@pytest.fixture
async def node(redis_proc: RedisProcess) -> AsyncIterator[Node]:
    """One API node with its background loops running."""
    started = Node(redis_proc.url)
    await started.backend.start()
    yield started
    await started.backend.close()


async def test_a_worker_reads_again_after_redis_comes_back_empty(
    node: Node, redis_proc: RedisProcess
) -> None:
    """FLUSHALL (a RAM-only restart) removes the group: the reader recreates it and takes
    the next upload instead of dying on NOGROUP."""
    worker = consumer(redis_proc.url, "w1")
    await ensure_groups(worker._client, worker.streams)
    redis_proc.client.flushall()
    job = make_job()
    await node.queue(job)
    try:
        batch = await asyncio.wait_for(worker.next_batch(1, batch_key), 10)
        assert [entry.job.id for entry in batch] == [job.id]
    finally:
        await worker._client.aclose()


async def test_a_job_lost_with_redis_fails_visibly_for_its_waiter(
    node: Node, redis_proc: RedisProcess
) -> None:
    """The record vanished (restart): the node's live object fails with the lost reason
    within seconds, so a waiting client gets an answer instead of waiting for ever."""
    job = make_job()
    await node.queue(job)
    redis_proc.client.flushall()
    await asyncio.wait_for(node.notifier.wait_until_final(job), 5)
    assert job.status is JobStatus.FAILED and job.error == JOB_LOST_REASON


async def test_a_job_no_worker_takes_fails_after_the_wait_bound(
    redis_proc: RedisProcess,
) -> None:
    """JOB_MAX_WAIT_S passed: failed with the reason, upload and queue entry gone, the
    record expires with the result TTL."""
    waiting = Node(redis_proc.url, max_wait_s=1)
    await waiting.backend.start()
    try:
        job = make_job()
        await waiting.queue(job)
        assert 0 < redis_proc.client.ttl(f"whisper:audio:{job.id}") <= 61
        await asyncio.wait_for(waiting.notifier.wait_until_final(job), 6)
        assert job.status is JobStatus.FAILED
        assert job.error is not None and "no worker took this job within 1 s" in job.error
        assert "no worker is alive" in job.error
        assert redis_proc.audio_keys() == []
        assert redis_proc.client.zcard("whisper:waiting") == 0
        assert redis_proc.client.zcard("whisper:deadlines") == 0
        assert redis_proc.client.xlen("whisper:jobs") == 0
        assert redis_proc.client.hlen("whisper:entries") == 0
        assert 0 < redis_proc.client.ttl(f"whisper:job:{job.id}") <= 60
    finally:
        await waiting.backend.close()


async def test_out_of_memory_is_a_503_with_its_reason(node: Node, redis_proc: RedisProcess) -> None:
    """Under `maxmemory` with noeviction a write is refused: 503 naming memory, not a 500."""
    redis_proc.client.config_set("maxmemory-policy", "noeviction")
    redis_proc.client.config_set("maxmemory", 1)
    try:
        with pytest.raises(BackendUnavailableError) as refused:
            await node.queue(make_job())
    finally:
        redis_proc.client.config_set("maxmemory", 0)
    assert "out of memory" in str(refused.value)


async def test_a_read_only_replica_is_a_503_with_its_reason(
    node: Node, redis_proc: RedisProcess
) -> None:
    """READONLY (a primary demoted mid-failover) is a 503 saying a failover is under way."""
    redis_proc.client.replicaof("127.0.0.1", 1)  # nobody there: it stays a read-only replica
    try:
        with pytest.raises(BackendUnavailableError) as refused:
            await node.queue(make_job())
    finally:
        redis_proc.client.replicaof("no", "one")
    assert "read-only replica" in str(refused.value)


async def test_the_heartbeat_registers_again_after_a_flush(redis_proc: RedisProcess) -> None:
    """A worker's registration comes back with its next beat; API nodes read it without SCAN."""
    worker = consumer(redis_proc.url, "w1")
    presence = WorkerPresence(worker._client, keys=Keys(), queue=worker, clock=FakeClock())
    describe = FleetWorker(name="w1", device="cpu", models=("tiny.en",), batch_size=1,
                           running_jobs=0)  # fmt: skip
    node = Node(redis_proc.url)
    try:
        await presence._beat(describe)
        await node.backend.start()  # reads the fleet before the first request
        assert [w.name for w in node.backend.counts().workers] == ["w1"]
        redis_proc.client.flushall()
        await presence._beat(describe)
        assert redis_proc.client.zrange("whisper:workers", 0, -1) == [b"w1"]
        for _ in range(50):  # pushed on `whisper:fleet`, or the next recount
            if node.backend.counts().workers:
                break
            await asyncio.sleep(0.05)
        assert [w.name for w in node.backend.counts().workers] == ["w1"]
    finally:
        await node.backend.close()
        await worker._client.aclose()


async def test_a_background_loop_that_fails_is_started_again() -> None:
    """An unforeseen error ends one run of the loop, never the loop: it is logged and rerun."""
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("unforeseen")
        await asyncio.Event().wait()

    task = asyncio.ensure_future(supervised("flaky", flaky))
    for _ in range(40):
        if runs >= 2:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert runs == 2


async def test_a_waiting_job_withdrawn_by_delete_leaves_nothing(
    node: Node, redis_proc: RedisProcess
) -> None:
    """delete() without a cancel first: the queue place, its bytes, the stream entry and
    every key of the task go in one step."""
    client = aioredis.Redis.from_url(redis_proc.url)
    try:
        await ensure_groups(client, [Keys().stream])
    finally:
        await client.aclose()
    baseline = redis_proc.client.dbsize()
    job = make_job()
    await node.queue(job)
    assert await node.backend.delete(job.id) is not None
    assert redis_proc.client.zcard("whisper:waiting") == 0
    assert redis_proc.client.get("whisper:waiting_bytes") == b"0"
    assert redis_proc.client.xlen("whisper:jobs") == 0
    assert not any(job.id.encode() in key for key in redis_proc.client.scan_iter())
    # Counters that stay: the byte total and the arrival sequence; and the entries hash
    # and deadlines went away with their last member.
    assert redis_proc.client.dbsize() == baseline + 2


async def test_jobs_run_and_deleted_leave_redis_as_it_was(
    node: Node, redis_proc: RedisProcess
) -> None:
    """Three jobs taken, finished and deleted by their owner: DBSIZE is back at its baseline
    and no key names any of them (stream entries deleted, not only acked)."""
    worker = consumer(redis_proc.url, "w1")
    writer = asyncio.ensure_future(worker._notifier.write_forever())
    await ensure_groups(worker._client, worker.streams)

    async def run_one() -> str:
        job = make_job()
        await node.queue(job)
        (taken,) = await asyncio.wait_for(worker.next_batch(1, batch_key), 10)
        taken.job.finish(
            Transcript(text="hi", language="en", language_probability=1.0, duration=1.0,
                       segments=[]),
            datetime.now(UTC),
        )  # fmt: skip
        worker._notifier.notify(taken.job)
        worker.done(taken.job)
        assert await worker._notifier.flush(timeout_s=5)
        return job.id

    try:
        await node.backend.delete(await run_one())  # the counters exist from here on
        baseline = redis_proc.client.dbsize()
        ids = [await run_one() for _ in range(3)]
        finished = await node.backend.get(ids[0], owner=None)
        assert finished is not None and finished.status is JobStatus.FINISHED
        assert finished.options.initial_prompt is None  # inputs are not kept with a result
        for task_id in ids:
            await node.backend.delete(task_id)
        assert redis_proc.client.dbsize() == baseline
        assert redis_proc.client.xlen("whisper:jobs") == 0
        names = b" ".join(redis_proc.client.scan_iter())
        assert not any(task_id.encode() in names for task_id in ids)
    finally:
        writer.cancel()
        await worker._client.aclose()
