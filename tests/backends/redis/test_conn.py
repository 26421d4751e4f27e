"""Start-up checks against a real redis-server: persistence warning and reachability."""

from __future__ import annotations

import structlog

from app.backends.redis.conn import Backoff, connect, reachable, warn_if_persistent
from tests.backends.redis.cluster_rig import RedisProcess
from tests.conftest import make_settings


async def test_persistence_on_is_reported_once_at_start(redis_proc: RedisProcess) -> None:
    """RDB snapshots or AOF on: a warning naming the cure; RAM-only Redis: silence."""
    client = connect(make_settings(queue_backend="redis", redis_url=redis_proc.url))
    try:
        with structlog.testing.capture_logs() as quiet:
            assert await warn_if_persistent(client) is False
        assert quiet == []
        redis_proc.client.config_set("save", "3600 1")
        with structlog.testing.capture_logs() as logged:
            assert await warn_if_persistent(client) is True
        assert [entry["event"] for entry in logged] == ["redis_persistence_on"]
        assert logged[0]["rdb_snapshots"] is True
    finally:
        await client.aclose()


async def test_an_unreachable_redis_is_a_reason_not_a_hang(redis_proc: RedisProcess) -> None:
    """PING answered: no reason; nobody listening: a reason naming Redis, within seconds."""
    client = connect(make_settings(queue_backend="redis", redis_url=redis_proc.url))
    assert await reachable(client) is None
    await client.aclose()
    redis_proc.process.terminate()
    redis_proc.process.wait(timeout=10)
    gone = connect(make_settings(queue_backend="redis", redis_url=redis_proc.url))
    try:
        reason = await reachable(gone)
    finally:
        await gone.aclose()
    assert reason is not None and "Redis" in reason


def test_retries_back_off_up_to_a_cap_and_start_over_after_a_success() -> None:
    """Waits double from 0.5 s to at most 5 s (±20 % jitter); an answer resets them."""
    backoff = Backoff()
    waits = [backoff.next_s() for _ in range(6)]
    for wait_s, nominal in zip(waits, [0.5, 1, 2, 4, 5, 5], strict=True):
        assert nominal * 0.8 <= wait_s <= nominal * 1.2
    backoff.reset()
    assert backoff.next_s() <= 0.6
