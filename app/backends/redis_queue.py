"""The worker's side of the Redis queue: a consumer of the job stream, with takeover.

Workers read the stream `whisper:jobs` in the consumer group `workers`, so the
oldest waiting job always goes to the next free worker (FIFO across the fleet).
A worker that can batch looks at the entries behind the one it took and reads
as many as share its batch key, in order, so short jobs still share a pass.
An entry stays pending until its job's final record is written; while the job
runs its worker claims it again every third of JOB_CLAIM_TIMEOUT_S (the
heartbeat), so a long job is never stolen. A worker
that dies stops heartbeating: after JOB_CLAIM_TIMEOUT_S another worker takes the
entry over with XAUTOCLAIM, at most JOB_MAX_ATTEMPTS deliveries in all, then the
job fails with a reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.base import FleetWorker
from app.backends.redis_conn import OUTAGE_ERRORS
from app.backends.redis_keys import GROUP, TAKE, Keys
from app.backends.redis_notify import PublishingNotifier, decode_job
from app.clock import Clock
from app.transcription.jobs import Job, JobStage, JobStatus
from app.transcription.queue import QueuedJob

__all__ = ["RedisWorkQueue", "ensure_group"]

log = structlog.get_logger(__name__)

READ_BLOCK_S = 1.0
_FLEET_ENCODER = msgspec.msgpack.Encoder()


async def ensure_group(client: aioredis.Redis, keys: Keys) -> None:
    """Create the stream and its consumer group once (another process may have)."""
    try:
        await client.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
    except redis.exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class RedisWorkQueue:
    """What the `Worker` takes jobs from in a cluster: the stream, one entry at a time."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keys: Keys,
        notifier: PublishingNotifier,
        clock: Clock,
        name: str,
        claim_timeout_s: float,
        max_attempts: int,
    ) -> None:
        self._client = client
        self._keys = keys
        self._notifier = notifier
        self._clock = clock
        self.name = name
        self._claim_timeout_ms = max(1, round(claim_timeout_s * 1000))
        self._max_attempts = max_attempts
        self._take = client.register_script(TAKE)
        self._running: dict[str, tuple[Job, str]] = {}  # task id → (job, stream entry id)
        # Entries read for a batch they turned out not to fit (another worker read the ones
        # that did first): this worker's next jobs, in order.
        self._held: collections.deque[tuple[str, str]] = collections.deque()
        self._closed = False

    @property
    def reserved(self) -> int:
        """Uploads in flight are another node's business: the worker never lingers for them."""
        return 0

    @property
    def running(self) -> list[Job]:
        """The jobs this worker has taken and not finished."""
        return [job for job, _ in self._running.values()]

    async def close(self) -> None:
        """Take no more jobs (SIGTERM); hand entries read but not started to the others."""
        self._closed = True
        held, self._held = list(self._held), collections.deque()
        if held:
            # Claimed again as long idle: any worker's XAUTOCLAIM takes them at once.
            with contextlib.suppress(*OUTAGE_ERRORS):
                async with asyncio.timeout(3):
                    await self._client.xclaim(
                        self._keys.stream,
                        GROUP,
                        self.name,
                        0,
                        [entry_id for entry_id, _ in held],
                        idle=self._claim_timeout_ms,
                        justid=True,
                    )
            log.info("jobs_handed_back", count=len(held))

    async def next_batch(self, max_size: int, key: Callable[[Job], object]) -> list[QueuedJob]:
        """The next jobs for this worker: an abandoned one first, else the oldest new one,
        plus the entries right behind it that share its batch key (up to `max_size`)."""
        while True:
            if self._closed:
                await asyncio.Event().wait()  # until the worker is stopped
            try:
                entry = await self._next_entry()
                if entry is not None:
                    taken = await self._start(*entry)
                    if taken is not None:
                        batch = [taken]
                        if max_size > 1 and key(taken.job) is not None:
                            await self._gather(batch, max_size, key)
                        return batch
            except OUTAGE_ERRORS as exc:
                log.warning("redis_unavailable", operation="next_job", error=type(exc).__name__)
                await self._clock.sleep(1.0)

    async def _next_entry(self) -> tuple[str, str] | None:
        if self._held:
            return self._held.popleft()
        return await self._claim_abandoned() or await self._read_new()

    async def _gather(
        self, batch: list[QueuedJob], max_size: int, key: Callable[[Job], object]
    ) -> None:
        """Read the entries behind the head that share its key; keep any that do not fit."""
        if self._held:
            return  # those come first, in order
        head_key = key(batch[0].job)
        fitting = await self._fitting_entries(max_size - len(batch), key, head_key)
        if not fitting:
            return
        async with asyncio.timeout(3):
            answer = await self._client.xreadgroup(
                GROUP, self.name, {self._keys.stream: ">"}, count=len(fitting)
            )
        streams: list[Any] = answer or []  # type: ignore[assignment]
        for _stream, entries in streams:
            for entry_id, fields in entries:
                entry = (_text(entry_id), _text(fields[b"id"]))
                if entry[0] not in fitting:  # another worker read the fitting one first
                    self._held.append(entry)
                    continue
                # A waiting job's record does not change: its key is still the peeked one.
                taken = await self._start(*entry)
                if taken is not None:
                    batch.append(taken)

    async def _fitting_entries(
        self, count: int, key: Callable[[Job], object], head_key: object
    ) -> set[str]:
        """The undelivered entries at the stream's head that share `head_key` (a leading run)."""
        async with asyncio.timeout(3):
            groups = await self._client.xinfo_groups(self._keys.stream)
            last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == GROUP), None)
            if last is None:
                return set()
            upcoming = await self._client.xrange(
                self._keys.stream, min=f"({_text(last)}", count=count
            )
            if not upcoming:
                return set()
            ids = [_text((fields or {})[b"id"]) for _, fields in upcoming]
            records = await self._client.mget([self._keys.job(task_id) for task_id in ids])
        fitting: set[str] = set()
        for (entry_id, _), record in zip(upcoming, records, strict=True):
            if record is None or key(decode_job(record)) != head_key:
                break  # FIFO: never skip a job that cannot join
            fitting.add(_text(entry_id))
        return fitting

    def top_up(self, batch: list[QueuedJob], max_size: int, key: Callable[[Job], object]) -> None:
        """Nothing to add later: the batch was gathered when it was read (see `_gather`)."""

    def done(self, job: Job) -> None:
        """The job has ended: ack its entry once its final record is written."""
        entry = self._running.pop(job.id, None)
        if entry is not None:
            self._notifier.finish(job, entry[1])

    async def _read_new(self) -> tuple[str, str] | None:
        async with asyncio.timeout(READ_BLOCK_S + 3):
            answer = await self._client.xreadgroup(
                GROUP,
                self.name,
                {self._keys.stream: ">"},
                count=1,
                block=int(READ_BLOCK_S * 1000),
            )
        streams: list[Any] = answer or []  # type: ignore[assignment]
        for _stream, entries in streams:
            for entry_id, fields in entries:
                return _text(entry_id), _text(fields[b"id"])
        return None

    async def _claim_abandoned(self) -> tuple[str, str] | None:
        async with asyncio.timeout(3):
            answer = await self._client.xautoclaim(
                self._keys.stream,
                GROUP,
                self.name,
                min_idle_time=self._claim_timeout_ms,
                start_id="0-0",
                count=1,
            )
        for entry_id, fields in answer[1]:
            if not fields:  # trimmed away meanwhile
                await self._client.xack(self._keys.stream, GROUP, entry_id)
                continue
            log.warning("job_taken_over", task_id=_text(fields[b"id"]))
            return _text(entry_id), _text(fields[b"id"])
        return None

    async def _start(self, entry_id: str, task_id: str) -> QueuedJob | None:
        """Take the job's record and upload; None when it is gone or ended (acked now)."""
        keys = self._keys
        async with asyncio.timeout(3):
            answer = await self._take(
                keys=[
                    keys.waiting,
                    keys.waiting_bytes,
                    keys.job(task_id),
                    keys.audio(task_id),
                    keys.running,
                    keys.attempts,
                    keys.cancel(task_id),
                ],
                args=[task_id, self.name],
            )
        if not answer:
            await self._client.xack(keys.stream, GROUP, entry_id)
            return None
        record, upload, attempts, reason = answer
        job = decode_job(record)
        self._running[job.id] = (job, entry_id)
        if int(attempts) > self._max_attempts:
            log.error("job_failed", reason="attempts_exhausted", attempts=int(attempts) - 1)
            job.fail(
                f"the job was started {int(attempts) - 1} times and each time its worker "
                "stopped; please upload it again",
                self._clock.now(),
            )
            self._notifier.notify(job)
            self.done(job)
            return None
        _restart(job)
        if reason:
            job.cancel_reason = _text(reason)
        return QueuedJob(job, upload)

    # -- heartbeat, registration, cancellations

    async def heartbeat_forever(self, describe: Callable[[], FleetWorker]) -> None:
        """Keep this worker's running entries and its registration fresh; until cancelled."""
        every_s = self._claim_timeout_ms / 3000
        while True:
            with contextlib.suppress(*OUTAGE_ERRORS):
                async with asyncio.timeout(max(1.0, every_s)):
                    await self._beat(describe())
            await self._clock.sleep(every_s)

    async def _beat(self, worker: FleetWorker) -> None:
        pipe = self._client.pipeline(transaction=False)
        entries: list[Any] = [entry_id for _, entry_id in self._running.values()]
        entries += [entry_id for entry_id, _ in self._held]
        if entries:  # claiming again resets the idle time that XAUTOCLAIM looks at
            pipe.xclaim(self._keys.stream, GROUP, self.name, 0, entries, justid=True)
        ttl_ms = max(3000, self._claim_timeout_ms)
        pipe.set(self._keys.worker(self.name), _FLEET_ENCODER.encode(worker), px=ttl_ms)
        await pipe.execute()

    async def unregister(self) -> None:
        """Leave the fleet view at once on an orderly stop."""
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with asyncio.timeout(2):
                await self._client.delete(self._keys.worker(self.name))

    async def follow_cancellations(self) -> None:
        """Stop a running job when an API node asks (its client left, its owner deleted it)."""
        while True:
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._keys.cancels)
                while True:
                    message = await pubsub.get_message(timeout=READ_BLOCK_S)
                    if message is not None:
                        await self._cancel(_text(message["data"]))
            except OUTAGE_ERRORS as exc:
                log.warning("redis_cancels_lost", error=type(exc).__name__)
                await self._clock.sleep(1.0)

    async def _cancel(self, task_id: str) -> None:
        entry = self._running.get(task_id)
        if entry is None:
            return
        reason = await self._client.get(self._keys.cancel(task_id))
        job = entry[0]
        job.cancel_reason = job.cancel_reason or (_text(reason) if reason else "cancelled")


def _restart(job: Job) -> None:
    """A job taken over starts afresh: nothing of an earlier attempt's progress remains."""
    job.status = JobStatus.PENDING
    job.stage = JobStage.QUEUED
    job.progress = 0.0
    job.partial_segments = []


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
