"""The API node's backend: the cluster's queue and task store, kept in Redis.

Uploads and records are written by atomic scripts (`keys`), so the bounds
(MAX_TASK_QUEUE_SIZE, MAX_QUEUED_MB, MAX_QUEUED_PER_CLIENT) hold across every
API node, and each job joins its client's line for the fair order. Results expire
by Redis TTL, refreshed on the owner's read. Records returned to callers are this
process's live objects (`LiveJobs`): the workers' changes reach them and wake
the local `JobNotifier`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import msgspec
import redis.asyncio as aioredis
import structlog

from app.backends.base import FleetWorker, QueueCounts, QueueFullError
from app.backends.fairness import QueuePolicy, client_of, round_robin
from app.backends.redis.conn import (
    OUTAGE_ERRORS,
    reachable,
    unavailable_as_503,
    warn_if_persistent,
)
from app.backends.redis.keys import FAIR_LINES, RESERVE, SUBMIT, WITHDRAW, Keys
from app.backends.redis.notify import LiveJobs, decode_job, encode_job
from app.clock import Clock
from app.transcription.jobs import Job, JobNotifier, Payload
from app.transcription.models import NoModelAllowedError

__all__ = ["PLACE_HOLD_S", "RedisBackend", "read_counts"]

log = structlog.get_logger(__name__)

# A place held for an upload lapses after this long, should its API node die mid-upload.
PLACE_HOLD_S = 15 * 60
COUNTS_EVERY_S = 1.0
_FLEET_DECODER = msgspec.msgpack.Decoder(FleetWorker)


class RedisBackend:
    """`TaskBackend` over Redis, shared by every API node and worker of a cluster."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keys: Keys,
        notifier: JobNotifier,
        clock: Clock,
        max_jobs: int,
        max_bytes: int,
        ttl_s: float,
        refresh_on_read: bool,
        max_per_client: int | None = None,
        policy: QueuePolicy = "fair",
    ) -> None:
        self._client = client
        self._keys = keys
        self._clock = clock
        self._max_jobs = max_jobs
        self._max_bytes = max_bytes
        self._max_per_client = max_per_client or max_jobs
        self._policy: QueuePolicy = policy
        self._ttl_s = max(1, round(ttl_s))
        self._refresh_on_read = refresh_on_read
        self.live = LiveJobs(client, keys, notifier)
        self._notifier = notifier
        self._counts = QueueCounts(waiting=0, running=0, waiting_bytes=0)
        self._reserve = client.register_script(RESERVE)
        self._submit = client.register_script(SUBMIT)
        self._withdraw = client.register_script(WITHDRAW)
        self._fair_lines = client.register_script(FAIR_LINES)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Follow the workers' changes, keep the counts current, check persistence once."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.live.follow(), name="redis-changes"),
            loop.create_task(self._count_forever(), name="redis-counts"),
        ]
        with contextlib.suppress(*OUTAGE_ERRORS):
            await warn_if_persistent(self._client)

    async def close(self) -> None:
        """Stop the background tasks and close the connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._client.aclose()

    # -- this node

    @property
    def max_waiting(self) -> int:
        """The cluster's bound on waiting jobs."""
        return self._max_jobs

    def running_here(self) -> list[Job]:
        """None: an API node runs no jobs, the workers do."""
        return []

    async def fail_waiting_here(self, reason: str) -> int:
        """None: the waiting jobs are in Redis and outlive this node; returns 0."""
        return 0

    # -- the intake

    async def reserve(self, expected_bytes: int, client: str | None = None) -> str:
        """Hold a place across the cluster; QueueFullError when none is free.

        A client that has MAX_QUEUED_PER_CLIENT jobs waiting is refused here at once;
        `submit` checks that again, atomically, once the body has arrived.
        """
        if client is not None:
            async with unavailable_as_503("reserve"):
                waiting = await self._client.hget(self._keys.waiting_by_client, client)
            if int(waiting or 0) >= self._max_per_client:
                raise QueueFullError("client")
        token = secrets.token_hex(8)
        now_ms = int(time.time() * 1000)
        keys = self._keys
        async with unavailable_as_503("reserve"):
            answer = await self._reserve(
                keys=[keys.waiting, keys.places, keys.waiting_bytes],
                args=[
                    now_ms,
                    now_ms + PLACE_HOLD_S * 1000,
                    token,
                    self._max_jobs,
                    self._max_bytes,
                    expected_bytes,
                ],
            )
        if answer != b"ok":
            raise QueueFullError("bytes" if answer == b"bytes" else "jobs")
        return token

    async def release(self, place: str) -> None:
        """Give the place back (it lapses by itself should Redis not answer now)."""
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with asyncio.timeout(1.0):
                await self._client.zrem(self._keys.places, place)

    async def submit(self, place: str, job: Job, payload: Payload) -> None:
        """Store the record and the upload and queue the job, in one step.

        A job that names a model goes to that model's stream; NoModelAllowedError
        (400) when no live worker offers it.
        """
        keys, model = self._keys, job.options.model
        if model is not None and not any(model in w.models for w in self._counts.workers):
            offered = sorted({name for w in self._counts.workers for name in w.models})
            raise NoModelAllowedError(
                f"no worker of this cluster offers model {model} now"
                + (f"; offered: {', '.join(offered)}" if offered else "")
            )
        stream = keys.stream_for(model)
        async with unavailable_as_503("submit"):
            answer = await self._submit(
                keys=[
                    keys.waiting,
                    keys.places,
                    keys.waiting_bytes,
                    keys.sequence,
                    keys.job(job.id),
                    keys.audio(job.id),
                    stream,
                    keys.waiting_by_client,
                    keys.client_of,
                    keys.ring(stream),
                    keys.line(stream, client_of(job)),
                ],
                args=[
                    place,
                    job.id,
                    encode_job(job),
                    bytes(payload),
                    self._max_bytes,
                    client_of(job),
                    self._max_per_client if job.client is not None else 0,
                    stream,
                ],
            )
        if answer == b"client":
            raise QueueFullError("client")
        if answer != b"ok":
            raise QueueFullError("bytes")
        self.live.adopt(job)

    # -- tasks

    async def keep(self, job: Job) -> None:
        """Write the final record with the result TTL; any node can read it."""
        async with unavailable_as_503("keep"):
            await self._client.set(self._keys.job(job.id), encode_job(job), ex=self._ttl_s)

    async def get(self, task_id: str, *, owner: str | None) -> Job | None:
        """The owner's task from Redis, this process's live object for it."""
        if not task_id.isalnum():
            return None  # never a key pattern
        async with unavailable_as_503("get"):
            data = await self._client.get(self._keys.job(task_id))
            if data is None:
                return None
            record = decode_job(data)
            if record.owner != owner:
                return None
            if record.is_final and self._refresh_on_read:
                await self._client.expire(self._keys.job(task_id), self._ttl_s)
        return self.live.adopt(record)

    async def position(self, job: Job) -> int | None:
        """1 + the jobs that start before it across the cluster; 0 while a worker runs it.

        Fair: its place in the round-robin of its stream's client lines; fifo: its
        rank among every waiting job.
        """
        if job.is_final:
            return None
        keys = self._keys
        async with unavailable_as_503("position"):
            if self._policy == "fair":
                stream = keys.stream_for(job.options.model)
                lines = await self._fair_lines(keys=[keys.ring(stream)], args=[stream])
                order = [_text(task) for task in round_robin(lines or [])]
                if job.id in order:
                    return order.index(job.id) + 1
            rank = await self._client.zrank(keys.waiting, job.id)
            if isinstance(rank, int):
                # fifo; or fair, picked by a worker a moment ago: it starts next
                return rank + 1 if self._policy == "fifo" else 1
            running = await self._client.hexists(keys.running, job.id)
        return 0 if running else None

    async def cancel(self, job: Job, reason: str) -> bool:
        """Fail a waiting job at once; ask its worker to stop a running one."""
        if job.is_final:
            return False
        failed = msgspec.structs.replace(job)
        failed.fail(reason, self._clock.now())
        keys = self._keys
        async with unavailable_as_503("cancel"):
            withdrawn = await self._withdraw(
                keys=[
                    keys.waiting,
                    keys.waiting_bytes,
                    keys.job(job.id),
                    keys.audio(job.id),
                    keys.client_of,
                    keys.waiting_by_client,
                ],
                args=[job.id, encode_job(failed), self._ttl_s],
            )
            if withdrawn:
                await self._client.publish(keys.changes, encode_job(failed))
            else:
                await self._client.set(keys.cancel(job.id), reason, ex=self._ttl_s)
                await self._client.publish(keys.cancels, job.id)
        if withdrawn:
            self.live.apply(failed)
            if not job.is_final:  # an object this process does not follow
                job.fail(reason, self._clock.now())
                self._notifier.notify(job)
        return True

    async def delete(self, task_id: str) -> Job | None:
        """Erase the task's record and upload now."""
        keys = self._keys
        async with unavailable_as_503("delete"):
            pipe = self._client.pipeline(transaction=True)
            pipe.get(keys.job(task_id))
            pipe.delete(keys.job(task_id), keys.audio(task_id))
            data, _ = await pipe.execute()
        self.live.drop(task_id)
        if data is None:
            return None
        job = decode_job(data)
        job.erase_content()
        return job

    def mark_final(self, job: Job) -> None:
        """Nothing to do: the worker that ended the job set its record's TTL."""

    async def sweep(self) -> int:
        """Redis expires records by their TTL: nothing to sweep."""
        return 0

    # -- the fleet

    def counts(self) -> QueueCounts:
        """The counts as of the last poll (at most COUNTS_EVERY_S old)."""
        return self._counts

    async def check(self) -> str | None:
        """Why Redis cannot serve now, or None."""
        return await reachable(self._client)

    async def _count_forever(self) -> None:
        while True:
            with contextlib.suppress(*OUTAGE_ERRORS):
                async with asyncio.timeout(COUNTS_EVERY_S * 3):
                    self._counts = await read_counts(self._client, self._keys)
            await asyncio.sleep(COUNTS_EVERY_S)


async def read_counts(client: aioredis.Redis, keys: Keys) -> QueueCounts:
    """Waiting and running jobs, bytes held, and the registered workers alive now."""
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.waiting)
    pipe.hlen(keys.running)
    pipe.get(keys.waiting_bytes)
    pipe.hvals(keys.waiting_by_client)
    waiting, running, held, by_client = await pipe.execute()
    names = [name async for name in client.scan_iter(match=keys.worker_pattern, count=100)]
    records = await client.mget(names) if names else []
    workers = (_FLEET_DECODER.decode(data) for data in records if isinstance(data, bytes))
    return QueueCounts(
        waiting=int(waiting),
        running=int(running),
        waiting_bytes=int(held or 0),
        workers=tuple(sorted(workers, key=lambda worker: worker.name)),
        clients=len(by_client),
        most_per_client=max((int(count) for count in by_client), default=0),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
