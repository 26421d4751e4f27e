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

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.base import QueueCounts, QueueFullError
from app.backends.fairness import QueuePolicy, client_of, round_robin
from app.backends.redis.conn import (
    OUTAGE_ERRORS,
    as_text,
    reachable,
    refusal_code,
    unavailable_as_503,
    warn_if_persistent,
)
from app.backends.redis.keys import DELETE, FAIR_LINES, RESERVE, SUBMIT, WITHDRAW, Keys
from app.backends.redis.notify import (
    LiveJobs,
    decode_job,
    encode_job,
    final_record,
    stop_tasks,
    supervised,
)
from app.backends.redis.registry import read_counts
from app.clock import Clock
from app.transcription.jobs import Job, JobNotifier, Payload
from app.transcription.models import NoModelAllowedError

__all__ = ["PLACE_HOLD_S", "RedisBackend"]

log = structlog.get_logger(__name__)

# A place held for an upload lapses after this long, should its API node die mid-upload.
PLACE_HOLD_S = 15 * 60
COUNTS_EVERY_S = 1.0
# Record and upload of a waiting job outlive its deadline by this much, so the API
# nodes fail it with a reason first; should none be up, they expire anyway.
WAIT_TTL_MARGIN_S = 60
EXPIRED_PER_SWEEP = 50


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
        max_wait_s: float = 3600.0,
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
        self._max_wait_s = max(1, round(max_wait_s))
        self._fleet_changed = asyncio.Event()
        self.live = LiveJobs(
            client, keys, notifier, clock=clock, on_fleet_change=self._fleet_changed.set
        )
        self._notifier = notifier
        self._counts = QueueCounts(waiting=0, running=0, waiting_bytes=0)
        self._reserve = client.register_script(RESERVE)
        self._submit = client.register_script(SUBMIT)
        self._withdraw = client.register_script(WITHDRAW)
        self._fair_lines = client.register_script(FAIR_LINES)
        self._delete = client.register_script(DELETE)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Read the fleet once (routing is right from the first request), then follow the
        workers' changes and keep the counts current; check persistence once.

        Each loop is supervised: one that fails unexpectedly is logged and restarted."""
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with asyncio.timeout(COUNTS_EVERY_S * 3):
                self._counts = await read_counts(self._client, self._keys)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(supervised("redis-changes", self.live.follow), name="redis-changes"),
            loop.create_task(supervised("redis-counts", self._count_forever), name="redis-counts"),
        ]
        with contextlib.suppress(*OUTAGE_ERRORS):
            await warn_if_persistent(self._client)

    async def close(self) -> None:
        """Stop the background tasks and close the connections."""
        await stop_tasks(self._tasks)
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
        if model is not None and not self._offered(model):
            await self._recount()  # a worker that joined a moment ago
        if model is not None and not self._offered(model):
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
                    keys.deadlines,
                    keys.entries,
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
                    self._max_wait_s + WAIT_TTL_MARGIN_S,
                    int(time.time() * 1000) + self._max_wait_s * 1000,
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
                order = [as_text(task) for task in round_robin(lines or [])]
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
        keys = self._keys
        async with unavailable_as_503("cancel"):
            failed = await self._withdraw_waiting(job, reason)
            withdrawn = failed is not None
            if not withdrawn:
                await self._client.set(keys.cancel(job.id), reason, ex=self._ttl_s)
                await self._client.publish(keys.cancels, job.id)
        if failed is not None:
            self.live.apply(failed)
            if not job.is_final:  # an object this process does not follow
                job.fail(reason, self._clock.now())
                self._notifier.notify(job)
        return True

    async def delete(self, task_id: str) -> Job | None:
        """Erase the task's record and upload now."""
        if not task_id.isalnum():
            return None  # never a key pattern
        keys = self._keys
        async with unavailable_as_503("delete"):
            # The record names the stream its entry is in; the script checks again.
            before = await self._client.get(keys.job(task_id))
            model = decode_job(before).options.model if before is not None else None
            data = await self._delete(
                keys=[*self._queue_keys(task_id), keys.stream_for(model), *self._fair_keys()],
                args=[task_id],
            )
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

    def _offered(self, model: str) -> bool:
        return any(model in worker.models for worker in self._counts.workers)

    async def _recount(self) -> None:
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with asyncio.timeout(COUNTS_EVERY_S * 3):
                self._counts = await read_counts(self._client, self._keys)

    async def _count_forever(self) -> None:
        """Recount every second, or at once when a worker joins or leaves; fail the
        waiting jobs whose wait ran out."""
        while True:
            try:
                async with asyncio.timeout(COUNTS_EVERY_S * 3):
                    self._counts = await read_counts(self._client, self._keys)
                    await self._expire_waiting()
            except OUTAGE_ERRORS:
                pass  # /readyz says so; the next round tries again
            except redis.exceptions.ResponseError as exc:
                log.warning("redis_refused", operation="counts", error=refusal_code(exc))
            self._fleet_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COUNTS_EVERY_S):
                    await self._fleet_changed.wait()

    def _queue_keys(self, task_id: str) -> list[str]:
        keys = self._keys
        return [
            keys.waiting,
            keys.waiting_bytes,
            keys.job(task_id),
            keys.audio(task_id),
            keys.deadlines,
            keys.entries,
        ]

    def _fair_keys(self) -> list[str]:
        return [self._keys.client_of, self._keys.waiting_by_client]

    async def _withdraw_waiting(self, job: Job, reason: str) -> Job | None:
        """Fail `job` if it still waits (its upload and queue entry gone); the failed record."""
        failed = final_record(job)
        failed.fail(reason, self._clock.now())
        withdrawn = await self._withdraw(
            keys=[
                *self._queue_keys(job.id),
                self._keys.stream_for(job.options.model),
                *self._fair_keys(),
            ],
            args=[job.id, encode_job(failed), self._ttl_s],
        )
        if not withdrawn:
            return None
        await self._client.publish(self._keys.changes, encode_job(failed))
        return failed

    async def _expire_waiting(self) -> None:
        """Fail the waiting jobs no worker took within JOB_MAX_WAIT_S (any node may do it)."""
        now_ms = int(time.time() * 1000)
        overdue = await self._client.zrangebyscore(
            self._keys.deadlines, "-inf", now_ms, start=0, num=EXPIRED_PER_SWEEP
        )
        for raw in overdue:
            task_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            data = await self._client.get(self._keys.job(task_id))
            if data is None:  # its record lapsed too: clear what is left
                await self._delete(
                    keys=[*self._queue_keys(task_id), self._keys.stream, *self._fair_keys()],
                    args=[task_id],
                )
                continue
            job = decode_job(data)
            model = job.options.model
            if not self._counts.workers:
                why, offered = "no worker is alive", False
            elif model is not None and not self._offered(model):
                why, offered = f"no live worker offers model {model}", False
            else:
                why, offered = "the queue was too long", True
            reason = (
                f"no worker took this job within {self._max_wait_s} s ({why}); "
                "please upload it again"
            )
            failed = await self._withdraw_waiting(job, reason)
            if failed is not None:
                log.warning("job_failed", reason="wait_expired", offered=offered)
                self.live.apply(failed)
            await self._client.zrem(self._keys.deadlines, task_id)
