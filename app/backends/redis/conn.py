"""Connecting to Redis, turning its outages into 503s, and the start-up persistence check.

Every call is bounded: a Redis that does not answer (down, paused, partitioned)
becomes `BackendUnavailableError` within `OPERATION_TIMEOUT_S`, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog

from app.backends.base import BackendUnavailableError
from app.config import Settings

__all__ = [
    "OPERATION_TIMEOUT_S",
    "connect",
    "describe_outage",
    "reachable",
    "unavailable_as_503",
    "warn_if_persistent",
]

log = structlog.get_logger(__name__)

OPERATION_TIMEOUT_S = 3.0
# What a client is told to wait when Redis does not answer.
OUTAGE_RETRY_AFTER_S = 5
OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TimeoutError)


def connect(settings: Settings) -> aioredis.Redis:
    """A client for REDIS_URL (redis:// or rediss://), password from the URL or the file."""
    password = None
    if settings.redis_password_file:
        password = Path(settings.redis_password_file).read_text(encoding="utf-8").strip()
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url,
        password=password,
        socket_timeout=OPERATION_TIMEOUT_S,
        socket_connect_timeout=OPERATION_TIMEOUT_S,
        health_check_interval=10,
        # Our own bound (asyncio.timeout) decides; redis-py's retries would stretch it.
        retry_on_timeout=False,
        decode_responses=False,
    )
    return client


def describe_outage(exc: BaseException) -> BackendUnavailableError:
    """The 503 a client gets while Redis does not answer (no address or detail leaks)."""
    del exc  # the log line names the kind; the client needs only "later"
    return BackendUnavailableError(
        f"the job queue (Redis) does not answer; try again in about {OUTAGE_RETRY_AFTER_S} s",
        OUTAGE_RETRY_AFTER_S,
    )


@contextlib.asynccontextmanager
async def unavailable_as_503(operation: str) -> AsyncIterator[None]:
    """Bound one Redis step by OPERATION_TIMEOUT_S; an outage raises BackendUnavailableError."""
    try:
        async with asyncio.timeout(OPERATION_TIMEOUT_S):
            yield
    except OUTAGE_ERRORS as exc:
        log.warning("redis_unavailable", operation=operation, error=type(exc).__name__)
        raise describe_outage(exc) from None


async def reachable(client: aioredis.Redis) -> str | None:
    """None when Redis answers a PING in time, else a reason for /readyz."""
    try:
        async with asyncio.timeout(OPERATION_TIMEOUT_S):
            await client.ping()
    except OUTAGE_ERRORS:
        return "the job queue (Redis) does not answer"
    except redis.exceptions.RedisError as exc:
        return f"the job queue (Redis) refuses: {type(exc).__name__}"
    return None


async def warn_if_persistent(client: aioredis.Redis) -> bool:
    """Log a warning when Redis writes to disk (RDB snapshots or AOF); True if it does.

    Uploads and transcripts pass through Redis: with persistence on they would
    reach its disk, which breaks the promise that nothing is stored. Managed
    Redis may refuse CONFIG: then nothing can be said, and nothing is logged.
    """
    try:
        async with asyncio.timeout(OPERATION_TIMEOUT_S):
            save: dict[Any, Any] = await client.config_get("save")
            appendonly: dict[Any, Any] = await client.config_get("appendonly")
    except (redis.exceptions.RedisError, TimeoutError):
        return False
    snapshots = _text(save.get(b"save", save.get("save", b"")))
    aof = _text(appendonly.get(b"appendonly", appendonly.get("appendonly", b"no")))
    persistent = bool(snapshots.strip()) or aof == "yes"
    if persistent:
        log.warning(
            "redis_persistence_on",
            rdb_snapshots=bool(snapshots.strip()),
            append_only_file=aof == "yes",
            advice='run redis-server with --save "" --appendonly no',
        )
    return persistent


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
