"""`whisper-api worker`: a worker whose loop breaks stops and says so (non-zero exit)."""

from __future__ import annotations

import asyncio

from app.cli.worker import ClusterWorker
from tests.conftest import make_settings


async def test_a_background_loop_that_ends_breaks_the_worker() -> None:
    """A loop that should run for ever ended: the wait returns False (exit 1), not silence."""
    worker = ClusterWorker(make_settings(queue_backend="redis", redis_url="redis://127.0.0.1:1/0"))

    async def broken() -> None:
        raise RuntimeError("unforeseen")

    try:
        failing = asyncio.ensure_future(broken())
        healthy = await asyncio.wait_for(
            worker._until_stopped_or_broken(asyncio.Event(), [failing]), 5
        )
        assert healthy is False
        stop = asyncio.Event()
        stop.set()
        idle = asyncio.ensure_future(asyncio.Event().wait())
        assert await worker._until_stopped_or_broken(stop, [idle]) is True
        idle.cancel()
    finally:
        await worker.client.aclose()
