"""The API node's backend and the worker's stream consumer against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from app.backends.base import QueueFullError
from app.backends.redis.keys import Keys
from app.backends.redis.notify import PublishingNotifier
from app.backends.redis.queue import RedisWorkQueue, ensure_groups
from app.backends.redis.store import RedisBackend
from app.transcription.jobs import Job, JobNotifier, JobStatus
from app.transcription.types import TranscribeOptions, Transcript
from app.transcription.worker import batch_key
from tests.backends.redis.cluster_rig import RedisProcess
from tests.transcription.rig import FakeClock

UPLOAD = b"\x00\x01" * 500  # 1000 bytes


def make_job() -> Job:
    """A waiting job with a file name that must never reach a key name."""
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(language="en"),
        time_uploaded=datetime.now(UTC),
        audio_duration=2.0,
        file_name="secret-interview.wav",
    )


class Node:
    """One API node's backend on the shared Redis."""

    def __init__(
        self, url: str, *, max_jobs: int = 3, max_bytes: int = 10_000, max_wait_s: float = 600
    ) -> None:
        self.notifier = JobNotifier()
        self.backend = RedisBackend(
            aioredis.Redis.from_url(url),
            keys=Keys(),
            notifier=self.notifier,
            clock=FakeClock(),
            max_jobs=max_jobs,
            max_bytes=max_bytes,
            ttl_s=60,
            refresh_on_read=True,
            max_wait_s=max_wait_s,
        )

    async def queue(self, job: Job, upload: bytes = UPLOAD) -> None:
        """Reserve a place and submit `job` into it."""
        place = await self.backend.reserve(len(upload))
        await self.backend.submit(place, job, upload)


@pytest.fixture
async def nodes(redis_proc: RedisProcess) -> AsyncIterator[tuple[Node, Node]]:
    """Two API nodes sharing one Redis."""
    first, second = Node(redis_proc.url), Node(redis_proc.url)
    yield first, second
    await first.backend.close()
    await second.backend.close()


def consumer(url: str, name: str, *, claim_timeout_s: float = 60) -> RedisWorkQueue:
    """A worker's stream consumer (its writer is not running: nothing is flushed)."""
    client = aioredis.Redis.from_url(url)
    return RedisWorkQueue(
        client,
        keys=Keys(),
        notifier=PublishingNotifier(client, Keys(), ttl_s=60),
        clock=FakeClock(),
        name=name,
        models=["tiny.en"],
        claim_timeout_s=claim_timeout_s,
        max_attempts=2,
    )


async def test_the_queue_bound_holds_across_nodes(nodes: tuple[Node, Node]) -> None:
    """MAX_TASK_QUEUE_SIZE counts the places and jobs of every node: the fourth is refused."""
    first, second = nodes
    await first.queue(make_job())
    await second.queue(make_job())
    await first.backend.reserve(100)  # an upload still arriving holds its place
    with pytest.raises(QueueFullError) as refused:
        await second.backend.reserve(100)
    assert refused.value.limit == "jobs"


async def test_the_byte_bound_holds_across_nodes(redis_proc: RedisProcess) -> None:
    """MAX_QUEUED_MB counts every node's waiting uploads."""
    first, second = Node(redis_proc.url, max_bytes=1500), Node(redis_proc.url, max_bytes=1500)
    try:
        await first.queue(make_job())
        with pytest.raises(QueueFullError) as refused:
            await second.backend.reserve(len(UPLOAD))
        assert refused.value.limit == "bytes"
    finally:
        await first.backend.close()
        await second.backend.close()


async def test_positions_and_records_are_shared(nodes: tuple[Node, Node]) -> None:
    """A job queued on one node is found, with its live position, on the other."""
    first, second = nodes
    older, newer = make_job(), make_job()
    await first.queue(older)
    await second.queue(newer)
    seen = await second.backend.get(older.id, owner=None)
    assert seen is not None and seen.file_name == "secret-interview.wav"
    assert await second.backend.position(seen) == 1
    assert await first.backend.position(newer) == 2
    assert await first.backend.get(older.id, owner="someone else") is None


async def test_an_api_node_runs_nothing_and_leaves_waiting_jobs_to_the_cluster(
    nodes: tuple[Node, Node], redis_proc: RedisProcess
) -> None:
    """On shutdown a node has no job running and none of its own to fail: Redis keeps them."""
    first, second = nodes
    job = make_job()
    await first.queue(job)
    assert first.backend.max_waiting == 3
    assert first.backend.running_here() == []
    assert await first.backend.fail_waiting_here("shutting down") == 0
    assert job.status is JobStatus.PENDING
    assert redis_proc.client.zcard("whisper:waiting") == 1
    seen = await second.backend.get(job.id, owner=None)
    assert seen is not None and await second.backend.position(seen) == 1


async def test_a_kept_live_session_is_a_final_record_with_the_result_ttl(
    nodes: tuple[Node, Node], redis_proc: RedisProcess
) -> None:
    """keep() stores a finished job any node can read (its owner only), expiring like results."""
    first, second = nodes
    job = make_job()
    job.owner = "key-0123"
    job.finish(
        Transcript(text="hi", language="en", language_probability=1.0, duration=1.0, segments=[]),
        datetime.now(UTC),
    )
    await first.backend.keep(job)
    seen = await second.backend.get(job.id, owner="key-0123")
    assert seen is not None and seen.status is JobStatus.FINISHED
    assert seen.transcript is not None and seen.transcript.text == "hi"
    assert await second.backend.get(job.id, owner=None) is None
    assert 0 < redis_proc.client.ttl(f"whisper:job:{job.id}") <= 60
    assert redis_proc.client.zcard("whisper:waiting") == 0  # nothing was queued


async def test_cancelling_a_waiting_job_frees_its_place_and_upload(
    nodes: tuple[Node, Node], redis_proc: RedisProcess
) -> None:
    """Cancel from the other node: the job fails with the reason, its upload is gone."""
    first, second = nodes
    job = make_job()
    await first.queue(job)
    seen = await second.backend.get(job.id, owner=None)
    assert seen is not None
    assert await second.backend.cancel(seen, "deleted by its owner") is True
    assert seen.status is JobStatus.FAILED and seen.error == "deleted by its owner"
    assert redis_proc.audio_keys() == []
    assert redis_proc.client.zcard("whisper:waiting") == 0
    assert redis_proc.client.get("whisper:waiting_bytes") == b"0"


async def test_key_names_hold_task_ids_only(
    nodes: tuple[Node, Node], redis_proc: RedisProcess
) -> None:
    """No key name carries a file name; a deleted task leaves no key behind."""
    first, _ = nodes
    job = make_job()
    await first.queue(job)
    names = [key.decode() for key in redis_proc.client.scan_iter()]
    assert names and not any("secret" in name for name in names)
    await first.backend.delete(job.id)
    assert not any(job.id in key.decode() for key in redis_proc.client.scan_iter())


async def test_a_job_is_failed_after_max_attempts_of_dying_workers(
    nodes: tuple[Node, Node], redis_proc: RedisProcess
) -> None:
    """Taken over past JOB_MAX_ATTEMPTS (2) starts, the job fails with a reason and is acked."""
    first, _ = nodes
    job = make_job()
    await first.queue(job)
    workers = [consumer(redis_proc.url, f"w{n}", claim_timeout_s=0.001) for n in range(3)]
    await ensure_groups(workers[0]._client, workers[0].streams)
    for worker in workers[:2]:  # each starts it, then "dies" (never acks, never heartbeats)
        batch = await asyncio.wait_for(worker.next_batch(1, batch_key), 10)
        assert [entry.job.id for entry in batch] == [job.id]
    last = workers[2]
    task = asyncio.ensure_future(last.next_batch(1, batch_key))
    notifier = last._notifier
    writer = asyncio.ensure_future(notifier.write_forever())
    try:
        for _ in range(200):  # the third start fails the job; nothing else is queued
            record = await first.backend.get(job.id, owner=None)
            if record is not None and record.is_final:
                break
            await asyncio.sleep(0.02)
        assert record is not None and record.status is JobStatus.FAILED
        assert record.error is not None and "started 2 times" in record.error
        assert redis_proc.client.xpending("whisper:jobs", "workers")["pending"] == 0
        assert redis_proc.audio_keys() == []
    finally:
        task.cancel()
        writer.cancel()
        for worker in workers:
            await worker._client.aclose()


async def test_a_running_jobs_share_and_expected_end_reach_the_other_nodes(
    nodes: tuple[Node, Node], redis_proc: RedisProcess
) -> None:
    """What a worker's progress ticker sets on a job is in the record every node reads."""
    first, second = nodes
    job = make_job()
    await first.queue(job)
    job.status, job.progress = JobStatus.PROCESSING, 0.42
    job.expected_done_at = datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)
    client = aioredis.Redis.from_url(redis_proc.url)
    publisher = PublishingNotifier(client, Keys(), ttl_s=60)
    writer = asyncio.get_running_loop().create_task(publisher.write_forever())
    try:
        publisher.notify(job)
        assert await publisher.flush(timeout_s=5)
    finally:
        writer.cancel()
        await client.aclose()
    seen = await second.backend.get(job.id, owner=None)
    assert seen is not None and seen is not job
    assert (seen.progress, seen.expected_done_at) == (0.42, job.expected_done_at)
