"""Job changes across processes: workers write and publish records; API nodes apply them.

A worker changes its `Job` in place and calls `notify`, as in one process;
`PublishingNotifier` then writes the record to Redis (coalesced: the latest
state of each job, in order) and publishes it on the change channel. An API
node's `LiveJobs` keeps the `Job` objects its requests hold current from that
channel, and wakes the local `JobNotifier`, so the SSE streams and the waiting
routes work unchanged. A resync by polling catches whatever the channel missed
(a reconnect, a record read just before a change).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.base import JOB_LOST_REASON
from app.backends.redis.conn import (
    OPERATION_TIMEOUT_S,
    OUTAGE_ERRORS,
    Backoff,
    refusal_code,
)
from app.backends.redis.keys import GROUP, Keys
from app.clock import Clock, SystemClock
from app.transcription.jobs import Job, JobNotifier

__all__ = [
    "LiveJobs",
    "PublishingNotifier",
    "close_in_background",
    "decode_job",
    "encode_job",
    "final_record",
    "stop_tasks",
    "supervised",
]

log = structlog.get_logger(__name__)

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Job)
RESYNC_EVERY_S = 1.0
RETRY_AFTER_OUTAGE_S = 1.0
RESTART_AFTER_S = 1.0


async def supervised(name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a background loop that should never end; if it fails, log it and start it again.

    Its own outages each loop handles; this catches the unforeseen (a bug, an
    unexpected reply), so a dead loop never hides behind a green /readyz."""
    while True:
        try:
            await loop()
            log.error("background_task_ended", task=name)
        except Exception as exc:
            log.error("background_task_failed", task=name, error=type(exc).__name__)
        await asyncio.sleep(RESTART_AFTER_S)


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for their end, cancelling again should one swallow it
    (Python 3.11's timeouts can lose a cancellation that meets their own)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RESTART_AFTER_S)


_CLOSING: set[asyncio.Task[None]] = set()


def close_in_background(pubsub: aioredis.client.PubSub) -> None:
    """Close a subscription without waiting: redis-py shields the teardown from
    cancellation, and one that never ends would keep the loop that owned it alive
    (a node that cannot stop)."""

    async def close() -> None:
        with contextlib.suppress(*OUTAGE_ERRORS, redis.exceptions.RedisError):
            async with asyncio.timeout(OPERATION_TIMEOUT_S):
                await pubsub.aclose()

    task = asyncio.get_running_loop().create_task(close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


def final_record(job: Job) -> Job:
    """What Redis keeps of an ended job: not the prompt nor the known speakers' clips
    (the worker needed them; the result does not)."""
    kept = msgspec.structs.replace(job)
    kept.options = msgspec.structs.replace(job.options, initial_prompt=None, speakers=None)
    return kept


def encode_job(job: Job) -> bytes:
    """A record as stored in Redis."""
    return _ENCODER.encode(job)


def decode_job(data: bytes | str) -> Job:
    """A record read from Redis."""
    return _DECODER.decode(data.encode() if isinstance(data, str) else data)


def _copy_into(target: Job, source: Job) -> None:
    for name in Job.__struct_fields__:
        setattr(target, name, getattr(source, name))


class LiveJobs:
    """API node: the unfinished jobs this process holds, kept current from Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        notifier: JobNotifier,
        *,
        clock: Clock | None = None,
        on_fleet_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._clock = clock or SystemClock()
        self._keys = keys
        self._notifier = notifier
        self._on_fleet_change = on_fleet_change
        self._jobs: dict[str, Job] = {}

    @property
    def held(self) -> int:
        """Unfinished jobs this process follows."""
        return len(self._jobs)

    def adopt(self, job: Job) -> Job:
        """The one object of this process for `job`'s task, brought up to `job`'s state."""
        local = self._jobs.get(job.id)
        if local is None:
            if not job.is_final:
                self._jobs[job.id] = job
            return job
        self._apply(local, job)
        return local

    def apply(self, record: Job) -> None:
        """A changed record: update the local object (if any) and wake its waiters."""
        local = self._jobs.get(record.id)
        if local is not None:
            self._apply(local, record)

    def _apply(self, local: Job, record: Job) -> None:
        _copy_into(local, record)
        if local.is_final:
            self._jobs.pop(local.id, None)
        self._notifier.notify(local)

    def drop(self, task_id: str) -> None:
        """Stop following a task (deleted)."""
        self._jobs.pop(task_id, None)

    async def follow(self) -> None:
        """Listen to the change and fleet channels and resync by polling; until cancelled."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._listen_forever()), loop.create_task(self._resync_forever())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # an unforeseen error: `supervised` logs it and starts again
        finally:
            # Not a TaskGroup: it cancels once, and redis-py can swallow a cancellation
            # that meets its own read timeout (a listener that never stops).
            await asyncio.shield(stop_tasks(tasks))

    async def _listen_forever(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._listen(backoff)
            except (*OUTAGE_ERRORS, redis.exceptions.RedisError) as exc:
                log.warning("redis_changes_lost", error=type(exc).__name__)
            await asyncio.sleep(backoff.next_s())

    async def _listen(self, backoff: Backoff) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._keys.changes, self._keys.fleet)
            backoff.reset()
            self._on_fleet_change()  # a worker may have joined while nobody listened
            fleet = self._keys.fleet.encode()
            while True:
                message = await pubsub.get_message(timeout=RESYNC_EVERY_S)
                if message is None or not isinstance(message.get("data"), bytes):
                    continue
                if message.get("channel") == fleet:
                    self._on_fleet_change()
                else:
                    self.apply(decode_job(message["data"]))
        finally:
            close_in_background(pubsub)

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY_S)
            try:
                async with asyncio.timeout(RESYNC_EVERY_S * 3):
                    await self._resync()
            except OUTAGE_ERRORS:
                pass  # the waiters keep waiting; Redis may come back with their jobs
            except redis.exceptions.ResponseError as exc:
                log.warning("redis_refused", operation="resync", error=refusal_code(exc))

    async def _resync(self) -> None:
        ids = list(self._jobs)
        if not ids:
            return
        records = await self._client.mget([self._keys.job(task_id) for task_id in ids])
        for task_id, data in zip(ids, records, strict=True):
            if data is not None:
                self.apply(decode_job(data))
            elif (job := self._jobs.pop(task_id, None)) is not None:
                # Not deleted here (that drops it first) and not final: Redis lost it
                # (restarted empty, failed over). Its waiters get an answer now.
                log.warning("job_failed", reason="lost_by_redis")
                job.fail(JOB_LOST_REASON, self._clock.now())
                self._notifier.notify(job)


class PublishingNotifier(JobNotifier):
    """Worker: wakes local waiters, and writes and publishes each changed record in order.

    `finish` queues what follows a job's end (ack its stream entry, delete its
    upload and bookkeeping); it runs after the job's final record is written.
    While Redis is away the writes wait and are retried, never dropped.
    """

    def __init__(self, client: aioredis.Redis, keys: Keys, *, ttl_s: float) -> None:
        super().__init__()
        self._client = client
        self._keys = keys
        self._ttl_s = max(1, round(ttl_s))
        self._dirty: dict[str, Job] = {}
        self._finished: dict[str, tuple[str, str]] = {}  # task id → (stream, entry id)
        self._wake = asyncio.Event()
        self._written = asyncio.Event()

    def notify(self, job: Job) -> None:
        """Wake local waiters and schedule the record's write."""
        super().notify(job)
        self._dirty[job.id] = job
        self._wake.set()

    def finish(self, job: Job, stream: str, entry_id: str) -> None:
        """After the job's last write: ack and delete its entry, delete its upload."""
        self._dirty[job.id] = job
        self._finished[job.id] = (stream, entry_id)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Records and acks not yet written."""
        return len(self._dirty) + len(self._finished)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything is written (or `timeout_s` passed); True when it was."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.pending:
                    self._written.clear()
                    await self._written.wait()
        return not self.pending

    async def write_forever(self) -> None:
        """Write what changed, in order; runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, {}
            finished, self._finished = self._finished, {}
            try:
                async with asyncio.timeout(5):
                    await self._write(dirty, finished)
                self._written.set()
            except (*OUTAGE_ERRORS, redis.exceptions.RedisError) as exc:
                log.warning("redis_write_retry", records=len(dirty), error=type(exc).__name__)
                self._dirty = {**dirty, **self._dirty}
                self._finished = {**finished, **self._finished}
                await asyncio.sleep(RETRY_AFTER_OUTAGE_S)
                self._wake.set()

    async def _write(self, dirty: dict[str, Job], finished: dict[str, tuple[str, str]]) -> None:
        keys = self._keys
        pipe = self._client.pipeline(transaction=True)
        for job in dirty.values():
            record = encode_job(job)
            # XX: a task its owner deleted meanwhile stays deleted.
            if job.is_final:
                record = encode_job(final_record(job))
                pipe.set(keys.job(job.id), record, ex=self._ttl_s, xx=True)
            else:
                pipe.set(keys.job(job.id), record, keepttl=True, xx=True)
            pipe.publish(keys.changes, record)
        for task_id, (stream, entry_id) in finished.items():
            pipe.xack(stream, GROUP, entry_id)
            pipe.hdel(keys.tickets, keys.ticket(stream, entry_id))  # the fair order's choice
            pipe.xdel(stream, entry_id)
            pipe.hdel(keys.entries, task_id)
            pipe.delete(keys.audio(task_id), keys.cancel(task_id))
            pipe.hdel(keys.running, task_id)
            pipe.hdel(keys.attempts, task_id)
        for answer in await pipe.execute(raise_on_error=False):
            # NOGROUP: Redis came back empty, the entry is gone already; anything else
            # (OOM, READONLY) is written again after a pause.
            if isinstance(answer, Exception) and refusal_code(answer) != "NOGROUP":
                raise answer
