"""Tests of an app in this very process, over the ASGI interface: serve it on the test's own
event loop, upload, wait for a task, scrape /metrics, read server-sent events.

Everything here is asynchronous and takes the test's client (Litestar's `AsyncTestClient`
or the `httpx.AsyncClient` of `serve`); tests/server_process.py has the synchronous
counterparts for a real server process. `eventually` is the one way a test here waits for
something: a condition checked until a deadline, never a fixed pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

from app.backends.local import LocalBackend, MemoryTaskStore
from app.service import TranscriptionService
from tests.conftest import wav_bytes

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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


async def eventually(check: Callable[[], Any], limit_s: float = 5.0) -> Any:
    """Let the event loop run until `check()` is truthy (awaited if it is a coroutine).

    Returns that value; fails the test after `limit_s` seconds.
    """
    deadline = time.monotonic() + limit_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.01)


async def upload(
    client: httpx.AsyncClient,
    data: bytes | None = None,
    *,
    route: str = "/api/v1/transcribe",
    name: str = "clip.wav",
    params: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    """POST one file (a second of tone unless `data` is given) as multipart to an upload route."""
    files = {"file": (name, wav_bytes() if data is None else data, "audio/wav")}
    return await client.post(route, files=files, params=params or {}, data=fields or {})


async def wait_status(
    client: httpx.AsyncClient, task_id: str, *statuses: str, limit_s: float = 10.0
) -> dict[str, Any]:
    """Poll the seed's status route until the task's status is one of `statuses`; its body."""

    async def reached() -> dict[str, Any] | None:
        response = await client.get("/api/v1/status", params={"task_id": task_id})
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        return body if body.get("status") in statuses else None

    state: dict[str, Any] = await eventually(reached, limit_s)
    return state


async def wait_processing(client: httpx.AsyncClient, task_id: str) -> None:
    """Poll until the task is running."""
    await wait_status(client, task_id, "processing")


async def wait_final(
    client: httpx.AsyncClient, task_id: str, limit_s: float = 10.0
) -> dict[str, Any]:
    """Poll the seed's status route until the task is finished or failed; its body."""
    return await wait_status(client, task_id, "finished", "failed", limit_s=limit_s)


async def scrape(client: httpx.AsyncClient) -> Samples:
    """GET /metrics and parse it with prometheus_client's own parser."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def sse_data(text: str) -> list[Any]:
    """The JSON payloads of the `data:` lines of a whole server-sent event stream."""
    return [
        msgspec.json.decode(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]
