"""A worker's presence in the fleet: heartbeat, registration, and cancellations from API nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.base import JOB_LOST_REASON, FleetWorker
from app.backends.redis.conn import OUTAGE_ERRORS, Backoff, as_text, refusal_code
from app.backends.redis.keys import GROUP, Keys
from app.backends.redis.notify import close_in_background
from app.backends.redis.queue import RedisWorkQueue
from app.backends.redis.registry import announce, register, unregister
from app.clock import Clock

__all__ = ["WorkerPresence", "worker_name"]

log = structlog.get_logger(__name__)

LISTEN_TIMEOUT_S = 1.0
HEARTBEAT_MAX_S = 5.0


class WorkerPresence:
    """Keeps one worker's entries and registration fresh and relays cancellations to it."""

    def __init__(
        self, client: aioredis.Redis, *, keys: Keys, queue: RedisWorkQueue, clock: Clock
    ) -> None:
        self._client = client
        self._keys = keys
        self._queue = queue
        self._clock = clock
        self._registered = False

    async def heartbeat_forever(self, describe: Callable[[], FleetWorker]) -> None:
        """Every third of JOB_CLAIM_TIMEOUT_S (5 s at most, so a Redis that came back empty
        knows this worker again soon): re-register, claim the held entries again."""
        every_s = min(HEARTBEAT_MAX_S, self._queue.claim_timeout_ms / 3000)
        while True:
            try:
                async with asyncio.timeout(max(1.0, every_s)):
                    await self._beat(describe())
            except OUTAGE_ERRORS as exc:
                log.warning("redis_unavailable", operation="heartbeat", error=type(exc).__name__)
            except redis.exceptions.ResponseError as exc:
                # NOGROUP: Redis came back empty and the held entries went with it (the
                # reader recreates the group); OOM, READONLY: the next beat tries again.
                log.warning("redis_refused", operation="heartbeat", error=refusal_code(exc))
            await self._clock.sleep(every_s)

    async def _beat(self, worker: FleetWorker) -> None:
        pipe = self._client.pipeline(transaction=False)
        ttl_ms = max(3000, self._queue.claim_timeout_ms)
        # First: a registration that lapsed (a Redis restart, a pause) is back at once.
        register(pipe, self._keys, worker, ttl_ms)
        running = [job for job in self._queue.running if not job.is_final]
        for job in running:
            pipe.expire(self._keys.job(job.id), self._queue.running_ttl_s)
        for job in running:  # kept for a takeover, should this worker die
            pipe.expire(self._keys.audio(job.id), self._queue.running_ttl_s)
        entries = self._queue.pending_entries()
        for stream in {entry.stream for entry in entries}:
            ids: list[Any] = [entry.entry_id for entry in entries if entry.stream == stream]
            # Claiming again resets the idle time that XAUTOCLAIM looks at.
            pipe.xclaim(stream, GROUP, self._queue.name, 0, ids, justid=True)
        answers = await pipe.execute(raise_on_error=False)
        if isinstance(answers[0], Exception):
            raise answers[0]
        for job, renewed in zip(running, answers[2 : 2 + len(running)], strict=True):
            if renewed == 0 and not job.cancel_requested:
                # Its record is gone (Redis restarted empty, a failover lost it, its owner
                # deleted it): nobody can read the result, so the work stops now.
                log.warning("job_lost_by_redis")
                job.cancel_reason = JOB_LOST_REASON
        if not self._registered or answers[0] == 1:  # ZADD added the name: (re)joined
            await announce(self._client, self._keys, worker.name)
            self._registered = True
        if refused := [answer for answer in answers if isinstance(answer, Exception)]:
            raise refused[0]  # NOGROUP after a restart: those entries are gone

    async def unregister(self) -> None:
        """Leave the fleet view at once on an orderly stop."""
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with asyncio.timeout(2):
                await unregister(self._client, self._keys, self._queue.name)

    async def follow_cancellations(self) -> None:
        """Stop a running job when an API node asks (its client left, its owner deleted it)."""
        backoff = Backoff()
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keys.cancels)
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                    if message is not None:
                        await self._cancel(as_text(message["data"]))
            except (*OUTAGE_ERRORS, redis.exceptions.RedisError) as exc:
                log.warning("redis_cancels_lost", error=type(exc).__name__)
                await self._clock.sleep(backoff.next_s())
            finally:
                close_in_background(pubsub)

    async def _cancel(self, task_id: str) -> None:
        job = self._queue.running_job(task_id)
        if job is None:
            return
        reason = await self._client.get(self._keys.cancel(task_id))
        job.cancel_reason = job.cancel_reason or (as_text(reason) if reason else "cancelled")


def worker_name() -> str:
    """This worker's name in the fleet: host and process id (no secret, no path)."""
    return f"{socket.gethostname()}-{os.getpid()}"
