"""A worker's presence in the fleet: heartbeat, registration, and cancellations from API nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog

from app.backends.base import FleetWorker
from app.backends.redis.conn import OUTAGE_ERRORS
from app.backends.redis.keys import GROUP, Keys
from app.backends.redis.queue import RedisWorkQueue
from app.clock import Clock

__all__ = ["WorkerPresence", "worker_name"]

log = structlog.get_logger(__name__)

_ENCODER = msgspec.msgpack.Encoder()
LISTEN_TIMEOUT_S = 1.0


class WorkerPresence:
    """Keeps one worker's entries and registration fresh and relays cancellations to it."""

    def __init__(
        self, client: aioredis.Redis, *, keys: Keys, queue: RedisWorkQueue, clock: Clock
    ) -> None:
        self._client = client
        self._keys = keys
        self._queue = queue
        self._clock = clock

    async def heartbeat_forever(self, describe: Callable[[], FleetWorker]) -> None:
        """Every third of JOB_CLAIM_TIMEOUT_S: claim the held entries again, re-register."""
        every_s = self._queue.claim_timeout_ms / 3000
        while True:
            with contextlib.suppress(*OUTAGE_ERRORS):
                async with asyncio.timeout(max(1.0, every_s)):
                    await self._beat(describe())
            await self._clock.sleep(every_s)

    async def _beat(self, worker: FleetWorker) -> None:
        pipe = self._client.pipeline(transaction=False)
        entries = self._queue.pending_entries()
        for stream in {entry.stream for entry in entries}:
            ids: list[Any] = [entry.entry_id for entry in entries if entry.stream == stream]
            # Claiming again resets the idle time that XAUTOCLAIM looks at.
            pipe.xclaim(stream, GROUP, self._queue.name, 0, ids, justid=True)
        ttl_ms = max(3000, self._queue.claim_timeout_ms)
        pipe.set(self._keys.worker(self._queue.name), _ENCODER.encode(worker), px=ttl_ms)
        await pipe.execute()

    async def unregister(self) -> None:
        """Leave the fleet view at once on an orderly stop."""
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with asyncio.timeout(2):
                await self._client.delete(self._keys.worker(self._queue.name))

    async def follow_cancellations(self) -> None:
        """Stop a running job when an API node asks (its client left, its owner deleted it)."""
        while True:
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._keys.cancels)
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                    if message is not None:
                        await self._cancel(_text(message["data"]))
            except OUTAGE_ERRORS as exc:
                log.warning("redis_cancels_lost", error=type(exc).__name__)
                await self._clock.sleep(1.0)

    async def _cancel(self, task_id: str) -> None:
        job = self._queue.running_job(task_id)
        if job is None:
            return
        reason = await self._client.get(self._keys.cancel(task_id))
        job.cancel_reason = job.cancel_reason or (_text(reason) if reason else "cancelled")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def worker_name() -> str:
    """This worker's name in the fleet: host and process id (no secret, no path)."""
    return f"{socket.gethostname()}-{os.getpid()}"
