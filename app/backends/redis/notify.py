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

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.redis.conn import OUTAGE_ERRORS
from app.backends.redis.keys import GROUP, Keys
from app.transcription.jobs import Job, JobNotifier

__all__ = ["LiveJobs", "PublishingNotifier", "decode_job", "encode_job"]

log = structlog.get_logger(__name__)

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Job)
RESYNC_EVERY_S = 1.0
RETRY_AFTER_OUTAGE_S = 1.0


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

    def __init__(self, client: aioredis.Redis, keys: Keys, notifier: JobNotifier) -> None:
        self._client = client
        self._keys = keys
        self._notifier = notifier
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
        """Listen to the change channel and resync by polling; runs until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen_forever())
            group.create_task(self._resync_forever())

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except OUTAGE_ERRORS as exc:
                log.warning("redis_changes_lost", error=type(exc).__name__)
            await asyncio.sleep(RETRY_AFTER_OUTAGE_S)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._keys.changes)
            while True:
                message = await pubsub.get_message(timeout=RESYNC_EVERY_S)
                if message is not None and isinstance(message.get("data"), bytes):
                    self.apply(decode_job(message["data"]))
        finally:
            with contextlib.suppress(*OUTAGE_ERRORS, redis.exceptions.RedisError):
                await pubsub.aclose()

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_EVERY_S)
            with contextlib.suppress(*OUTAGE_ERRORS):
                async with asyncio.timeout(RESYNC_EVERY_S * 3):
                    await self._resync()

    async def _resync(self) -> None:
        ids = list(self._jobs)
        if not ids:
            return
        records = await self._client.mget([self._keys.job(task_id) for task_id in ids])
        for task_id, data in zip(ids, records, strict=True):
            if data is None:
                self.drop(task_id)  # expired or deleted meanwhile
            else:
                self.apply(decode_job(data))


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
        """After the job's last write: ack its entry and delete its upload."""
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
                pipe.set(keys.job(job.id), record, ex=self._ttl_s, xx=True)
            else:
                pipe.set(keys.job(job.id), record, keepttl=True, xx=True)
            pipe.publish(keys.changes, record)
        for task_id, (stream, entry_id) in finished.items():
            pipe.xack(stream, GROUP, entry_id)
            pipe.hdel(keys.tickets, keys.ticket(stream, entry_id))  # the fair order's choice
            pipe.delete(keys.audio(task_id), keys.cancel(task_id))
            pipe.hdel(keys.running, task_id)
            pipe.hdel(keys.attempts, task_id)
        await pipe.execute()
