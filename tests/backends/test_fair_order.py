"""QUEUE_POLICY and MAX_QUEUED_PER_CLIENT, the same tests against both backends.

`memory`: this process's queue (`MemoryJobQueue` behind `LocalBackend`). `redis`: two
API nodes' `RedisBackend` and a worker's `RedisWorkQueue` on a real redis-server,
so each job below is queued through one of the two nodes in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import pytest
import redis.asyncio as aioredis

from app.backends.base import QueueFullError, TaskBackend
from app.backends.fairness import QueuePolicy
from app.backends.local import LocalBackend, MemoryJobQueue, MemoryTaskStore
from app.backends.redis.keys import Keys
from app.backends.redis.notify import PublishingNotifier
from app.backends.redis.queue import RedisWorkQueue, ensure_groups
from app.backends.redis.store import RedisBackend
from app.transcription.jobs import Job, JobNotifier, JobSource
from app.transcription.types import TranscribeOptions
from tests.backends.redis.cluster_rig import RedisProcess, redis_server
from tests.transcription.rig import FakeClock

UPLOAD = b"\x00\x01" * 50


def job_of(client: str | None, *, language: str = "en") -> Job:
    """A waiting job of `client` (a hash, as the intake gives it)."""
    return Job(
        task_type="transcribe",
        options=TranscribeOptions(language=language),
        time_uploaded=datetime.now(UTC),
        audio_duration=2.0,
        client=client,
    )


def no_batching(job: Job) -> object:
    """Every job decodes alone (BATCH_SIZE=1 in effect)."""
    return None


def by_language(job: Job) -> object:
    """Jobs of one language may share a pass."""
    return job.options.language


class Line(Protocol):
    """One deployment's queue as a test drives it."""

    async def queue(self, job: Job) -> None: ...

    async def take(
        self, size: int = 1, key: Callable[[Job], object] = no_batching
    ) -> list[Job]: ...

    async def position(self, job: Job) -> int | None: ...

    async def cancel(self, job: Job) -> bool: ...


class LocalLine:
    """The memory backend: one process's queue."""

    def __init__(self, policy: QueuePolicy, max_per_client: int) -> None:
        clock = FakeClock()
        self.jobs = MemoryJobQueue(
            max_waiting=100,
            max_waiting_bytes=10**9,
            notifier=JobNotifier(),
            clock=clock,
            max_per_client=max_per_client,
            policy=policy,
        )
        store = MemoryTaskStore(ttl_s=60, refresh_on_read=True, clock=clock)
        self.backend = LocalBackend(self.jobs, store)

    async def queue(self, job: Job) -> None:
        place = await self.backend.reserve(len(UPLOAD), job.client)
        await self.backend.submit(place, job, UPLOAD)

    async def take(self, size: int = 1, key: Callable[[Job], object] = no_batching) -> list[Job]:
        return await _take(self.jobs, size, key)

    async def position(self, job: Job) -> int | None:
        return await self.backend.position(job)

    async def cancel(self, job: Job) -> bool:
        return await self.backend.cancel(job, "deleted by its owner")


class RedisLine:
    """Two API nodes and one worker on a real redis-server."""

    def __init__(self, url: str, policy: QueuePolicy, max_per_client: int) -> None:
        self.nodes: list[TaskBackend] = []
        self._backends: list[RedisBackend] = []
        for _ in range(2):
            backend = RedisBackend(
                aioredis.Redis.from_url(url),
                keys=Keys(),
                notifier=JobNotifier(),
                clock=FakeClock(),
                max_jobs=100,
                max_bytes=10**9,
                max_per_client=max_per_client,
                policy=policy,
                ttl_s=60,
                refresh_on_read=True,
            )
            self._backends.append(backend)
            self.nodes.append(backend)
        client = aioredis.Redis.from_url(url)
        self.worker = RedisWorkQueue(
            client,
            keys=Keys(),
            notifier=PublishingNotifier(client, Keys(), ttl_s=60),
            clock=FakeClock(),
            name="w1",
            models=["tiny.en"],
            claim_timeout_s=60,
            max_attempts=2,
            policy=policy,
        )
        self._queued = 0

    async def start(self) -> None:
        await ensure_groups(self.worker._client, self.worker.streams)

    async def close(self) -> None:
        for backend in self._backends:
            await backend.close()
        await self.worker._client.aclose()

    async def queue(self, job: Job) -> None:
        node = self.nodes[self._queued % 2]  # every other job through the other API node
        self._queued += 1
        place = await node.reserve(len(UPLOAD), job.client)
        await node.submit(place, job, UPLOAD)

    async def take(self, size: int = 1, key: Callable[[Job], object] = no_batching) -> list[Job]:
        return await _take(self.worker, size, key)

    async def position(self, job: Job) -> int | None:
        return await self.nodes[1].position(job)

    async def cancel(self, job: Job) -> bool:
        return await self.nodes[0].cancel(job, "deleted by its owner")


async def _take(source: JobSource, size: int, key: Callable[[Job], object]) -> list[Job]:
    """The next batch, marked done at once (the worker finished it)."""
    batch = await asyncio.wait_for(source.next_batch(size, key), 10)
    for entry in batch:
        source.done(entry.job)
    return [entry.job for entry in batch]


LineFactory = Callable[..., Awaitable[Line]]


@pytest.fixture(params=["memory", "redis"])
async def make_line(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LineFactory]:
    """Build a queue of the parametrised backend: `await make_line(policy, max_per_client)`."""
    made: list[RedisLine] = []
    redis_ctx = None
    redis: RedisProcess | None = None
    if request.param == "redis":
        redis_ctx = redis_server(tmp_path_factory.mktemp("redis"))
        redis = redis_ctx.__enter__()

    async def build(policy: QueuePolicy = "fair", max_per_client: int = 100) -> Line:
        if redis is None:
            return LocalLine(policy, max_per_client)
        line = RedisLine(redis.url, policy, max_per_client)
        await line.start()
        made.append(line)
        return line

    yield build
    for line in made:
        await line.close()
    if redis_ctx is not None:
        redis_ctx.__exit__(None, None, None)


async def test_a_late_client_waits_one_job_behind_a_backlog(make_line: LineFactory) -> None:
    """A queues six, then B one: B is second in line and starts before A's second job."""
    line = await make_line()
    a_jobs = [job_of("client-a") for _ in range(6)]
    for job in a_jobs:
        await line.queue(job)
    b_job = job_of("client-b")
    await line.queue(b_job)
    assert await line.position(b_job) == 2
    assert await line.position(a_jobs[1]) == 3  # moved back by the late client's one job
    order = [(await line.take())[0].id for _ in range(7)]
    assert order.index(b_job.id) == 1
    assert order.index(b_job.id) < order.index(a_jobs[3].id)


async def test_clients_take_turns_first_in_first_out_within_each(make_line: LineFactory) -> None:
    """Three clients: one job of each per round, each client's jobs in their order."""
    line = await make_line()
    jobs = {name: [job_of(name) for _ in range(3)] for name in ("a", "b", "c")}
    for job in jobs["a"] + jobs["b"][:2] + jobs["c"][:1]:
        await line.queue(job)
    await line.queue(jobs["b"][2])
    await line.queue(jobs["c"][1])
    await line.queue(jobs["c"][2])
    taken = [(await line.take())[0] for _ in range(9)]
    names = [job.client for job in taken]
    assert names == ["a", "b", "c"] * 3
    for name, own in jobs.items():
        assert [job.id for job in taken if job.client == name] == [job.id for job in own]


async def test_positions_are_the_order_jobs_start_in(make_line: LineFactory) -> None:
    """Every waiting job's position is 1 + the jobs that start before it, kept current."""
    line = await make_line()
    jobs = [job_of(name) for name in "aaaabbc"]
    for job in jobs[:5]:
        await line.queue(job)
    before = await line.position(jobs[3])
    for job in jobs[5:]:  # later clients go before a backlog's tail
        await line.queue(job)
    assert (await line.position(jobs[3]) or 0) > (before or 0)
    await line.take()  # one has started: everybody else moved up
    positions = {job.id: await line.position(job) for job in jobs}
    waiting = sorted((p, i) for i, p in positions.items() if p)
    assert [p for p, _ in waiting] == list(range(1, len(waiting) + 1))
    started = [(await line.take())[0].id for _ in waiting]
    assert started == [task_id for _, task_id in waiting]


async def test_fifo_keeps_arrival_order(make_line: LineFactory) -> None:
    """QUEUE_POLICY=fifo: the late client's job starts after the whole backlog."""
    line = await make_line("fifo")
    a_jobs = [job_of("client-a") for _ in range(3)]
    b_job = job_of("client-b")
    for job in [*a_jobs, b_job]:
        await line.queue(job)
    assert await line.position(b_job) == 4
    order = [(await line.take())[0].id for _ in range(4)]
    assert order == [job.id for job in [*a_jobs, b_job]]


async def test_one_client_holds_at_most_its_share_of_waiting_jobs(make_line: LineFactory) -> None:
    """Past MAX_QUEUED_PER_CLIENT one client is refused, others are not; a start frees one."""
    line = await make_line(max_per_client=2)
    await line.queue(job_of("client-a"))
    await line.queue(job_of("client-a"))
    with pytest.raises(QueueFullError) as refused:
        await line.queue(job_of("client-a"))
    assert refused.value.limit == "client"
    await line.queue(job_of("client-b"))
    await line.take()  # one of A's starts: A may queue one more
    await line.queue(job_of("client-a"))


async def test_a_withdrawn_job_leaves_its_clients_line(make_line: LineFactory) -> None:
    """Cancelling a waiting job frees its client's share; the turns skip it."""
    line = await make_line(max_per_client=1)
    a_job, b_job = job_of("client-a"), job_of("client-b")
    await line.queue(a_job)
    await line.queue(b_job)
    assert await line.cancel(a_job) is True
    assert await line.position(b_job) == 1
    again = job_of("client-a")
    await line.queue(again)  # A's place is free again
    assert [(await line.take())[0].id for _ in range(2)] == [b_job.id, again.id]


async def test_a_batch_takes_companions_of_any_client(make_line: LineFactory) -> None:
    """Cross-request batches still join jobs of other clients that can share the pass."""
    line = await make_line()
    first, other, companion = job_of("a"), job_of("a", language="de"), job_of("b")
    for job in (first, other, companion):
        await line.queue(job)
    batch = await line.take(2, by_language)
    assert {job.id for job in batch} == {first.id, companion.id}
    assert [job.id for job in await line.take()] == [other.id]
