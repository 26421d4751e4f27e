"""Connecting to Redis, turning its outages into 503s, and the start-up persistence check.

Every call is bounded: a Redis that does not answer (down, paused, partitioned)
becomes `BackendUnavailableError` within `OPERATION_TIMEOUT_S`, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel

from app.backends.base import BackendUnavailableError
from app.config import Settings

__all__ = [
    "OPERATION_TIMEOUT_S",
    "Backoff",
    "as_text",
    "connect",
    "describe_outage",
    "reachable",
    "refusal",
    "refusal_code",
    "unavailable_as_503",
    "warn_if_persistent",
]

log = structlog.get_logger(__name__)

OPERATION_TIMEOUT_S = 3.0
# What a client is told to wait when Redis does not answer.
OUTAGE_RETRY_AFTER_S = 5
OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TimeoutError)
# Redis answers but cannot take writes now: out of memory under `maxmemory`, a replica
# (READONLY, mid-failover), a primary without its replicas, still loading. Each is a 503
# with its own reason, never a 500.
REFUSALS = {
    "OOM": "the job queue (Redis) is out of memory",
    "READONLY": "the job queue (Redis) is a read-only replica now (a failover is under way)",
    "MASTERDOWN": "the job queue (Redis) has lost its primary (a failover is under way)",
    "NOREPLICAS": "the job queue (Redis) lacks the replicas it requires",
    "LOADING": "the job queue (Redis) is still starting",
}


class Backoff:
    """How long a loop waits before it tries Redis again: doubling from `first_s` up to
    `cap_s` while Redis stays away (a fleet does not hammer a server that is starting), back
    to `first_s` after a success; with jitter, so a fleet's retries spread out."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 5.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._next_s = first_s

    def next_s(self) -> float:
        """The wait before the next try (and double the one after it)."""
        wait_s = self._next_s
        self._next_s = min(self.cap_s, self._next_s * 2)
        return wait_s * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not a secret)

    def reset(self) -> None:
        """Redis answered: the next failure waits briefly again."""
        self._next_s = self.first_s


def connect(settings: Settings) -> aioredis.Redis:
    """A client for REDIS_URL (redis:// or rediss://), password from the URL or the file.

    With REDIS_SENTINELS the server is the current primary of REDIS_SENTINEL_MASTER as the
    sentinels name it (database, user and password still from REDIS_URL or the file): after
    a failover every new connection goes to the new primary, and a connection to a demoted
    one is dropped on its first READONLY answer.
    """
    password = None
    if settings.redis_password_file:
        password = Path(settings.redis_password_file).read_text(encoding="utf-8").strip()
    options: dict[str, Any] = {
        "socket_timeout": OPERATION_TIMEOUT_S,
        "socket_connect_timeout": OPERATION_TIMEOUT_S,
        "health_check_interval": 10,
        # Our own bound (asyncio.timeout) decides; redis-py's retries would stretch it.
        "retry_on_timeout": False,
        "decode_responses": False,
    }
    if settings.redis_sentinels:
        return _via_sentinels(settings, password, options)
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url, password=password, **options
    )
    return client


def _via_sentinels(
    settings: Settings, password: str | None, options: dict[str, Any]
) -> aioredis.Redis:
    url = parse_url(settings.redis_url)
    sentinels = [
        (host, int(port))
        for host, _, port in (address.rpartition(":") for address in settings.redis_sentinels)
    ]
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs={
            "socket_timeout": OPERATION_TIMEOUT_S,
            "socket_connect_timeout": OPERATION_TIMEOUT_S,
        },
    )
    client: aioredis.Redis = sentinel.master_for(
        settings.redis_sentinel_master,
        db=url.get("db", 0),
        username=url.get("username"),
        password=password or url.get("password"),
        **options,
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
    except redis.exceptions.ResponseError as exc:
        reason = refusal(exc)
        if reason is None:
            raise
        log.warning("redis_refused", operation=operation, error=refusal_code(exc))
        raise BackendUnavailableError(
            f"{reason}; try again in about {OUTAGE_RETRY_AFTER_S} s", OUTAGE_RETRY_AFTER_S
        ) from None


def refusal_code(exc: BaseException) -> str:
    """The code of a Redis error reply (OOM, READONLY, NOGROUP, ...): redis-py keeps it
    apart from the message for the codes it knows, else it is the message's first word."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    words = str(exc).split(maxsplit=1)
    return words[0] if words else type(exc).__name__


def refusal(exc: BaseException) -> str | None:
    """What a client is told when Redis refuses for a passing reason, else None (a bug)."""
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return REFUSALS["READONLY"]
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return REFUSALS["OOM"]
    return REFUSALS.get(refusal_code(exc))


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
    snapshots = as_text(save.get(b"save", save.get("save", b"")))
    aof = as_text(appendonly.get(b"appendonly", appendonly.get("appendonly", b"no")))
    persistent = bool(snapshots.strip()) or aof == "yes"
    if persistent:
        log.warning(
            "redis_persistence_on",
            rdb_snapshots=bool(snapshots.strip()),
            append_only_file=aof == "yes",
            advice='run redis-server with --save "" --appendonly no',
        )
    return persistent


def as_text(value: object) -> str:
    """A Redis reply (bytes, or already text) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
