"""Serving an app on the test's own event loop, for routes that hold requests open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from app.backends.local import LocalBackend, MemoryTaskStore
from app.service import TranscriptionService


def service_of(app: Litestar) -> TranscriptionService:
    """The service behind an app built by `build_app`."""
    service: TranscriptionService = app.dependencies["service"].dependency()
    return service


def local_store(service: TranscriptionService) -> MemoryTaskStore:
    """The task store of a service of the memory deployment."""
    backend = service.backend
    assert isinstance(backend, LocalBackend)
    return backend.store


@contextlib.asynccontextmanager
async def serve(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Start the service and a client on this very event loop.

    Litestar's test client runs the app in another thread and blocks the test's loop
    for each request, so it cannot hold two waiting synchronous requests at once. The
    app's lifespan is the service's start and stop, called here directly because
    pytest-asyncio sets a fixture up and tears it down in different tasks.
    """
    service = service_of(app)
    await service.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await service.stop()


async def eventually(predicate: Callable[[], Any], limit_s: float = 5.0) -> None:
    """Let the event loop run until `predicate()` holds; fail after `limit_s` seconds."""
    for _ in range(int(limit_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    pytest.fail("condition not met in time")
