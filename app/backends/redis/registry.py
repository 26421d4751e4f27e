"""Who is in the fleet: workers register with an expiring score; API nodes read it without SCAN.

A worker's heartbeat puts its name in the sorted set `whisper:workers` with the
time its membership lapses, and its description (`FleetWorker`) in
`whisper:worker:{name}` with the same TTL. Reading the fleet is one
ZRANGEBYSCORE and one MGET over the live members: it grows with the fleet,
never with the keyspace. A worker that joins or leaves says so on the channel
`whisper:fleet`, so API nodes route to it (or stop) at once; the once-a-second
resync covers a message lost while a connection was down.
"""

from __future__ import annotations

import time

import msgspec
import redis.asyncio as aioredis

from app.backends.base import FleetWorker, QueueCounts
from app.backends.redis.keys import Keys

__all__ = ["announce", "read_counts", "register", "unregister"]

_ENCODER = msgspec.msgpack.Encoder()
_FLEET_DECODER = msgspec.msgpack.Decoder(FleetWorker)


def _now_ms() -> int:
    # Wall clock on purpose: every process of the fleet compares these deadlines.
    return int(time.time() * 1000)


def register(pipe: aioredis.client.Pipeline, keys: Keys, worker: FleetWorker, ttl_ms: int) -> None:
    """Queue on `pipe` this worker's membership and description, both lapsing after `ttl_ms`."""
    pipe.zadd(keys.workers, {worker.name: _now_ms() + ttl_ms})
    pipe.set(keys.worker(worker.name), _ENCODER.encode(worker), px=ttl_ms)


async def announce(client: aioredis.Redis, keys: Keys, name: str) -> None:
    """Tell the API nodes that the fleet changed (a worker joined or left)."""
    await client.publish(keys.fleet, name)


async def unregister(client: aioredis.Redis, keys: Keys, name: str) -> None:
    """Leave the fleet at once (an orderly stop) and say so."""
    pipe = client.pipeline(transaction=True)
    pipe.zrem(keys.workers, name)
    pipe.delete(keys.worker(name))
    pipe.publish(keys.fleet, name)
    await pipe.execute()


async def read_counts(client: aioredis.Redis, keys: Keys) -> QueueCounts:
    """Waiting and running jobs, bytes held, and the registered workers alive now."""
    now = _now_ms()
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.workers, "-inf", now)
    pipe.zrangebyscore(keys.workers, now, "+inf")
    pipe.zcard(keys.waiting)
    pipe.hlen(keys.running)
    pipe.get(keys.waiting_bytes)
    pipe.hvals(keys.waiting_by_client)
    _, names, waiting, running, held, by_client = await pipe.execute()
    records = await client.mget([keys.worker(name.decode()) for name in names]) if names else []
    workers = (_FLEET_DECODER.decode(data) for data in records if isinstance(data, bytes))
    return QueueCounts(
        waiting=int(waiting),
        running=int(running),
        waiting_bytes=int(held or 0),
        workers=tuple(sorted(workers, key=lambda worker: worker.name)),
        clients=len(by_client),
        most_per_client=max((int(count) for count in by_client), default=0),
    )
