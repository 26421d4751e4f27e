"""Tests for the composition of a deployment's service (app.composition)."""

from __future__ import annotations

import asyncio

from app.backends.local import LocalBackend
from app.backends.redis.store import RedisBackend
from app.composition import build_service, worker_limits
from tests.conftest import FakeTranscriber, fake_manager, make_settings
from tests.transcription.rig import make_job, pcm


async def test_the_memory_deployment_runs_its_jobs_in_this_process() -> None:
    """QUEUE_BACKEND=memory: a LocalBackend whose queue feeds this process's worker."""
    settings = make_settings(max_task_queue_size=7)
    service = build_service(settings, fake_manager(settings, FakeTranscriber()))
    backend = service.backend
    assert isinstance(backend, LocalBackend)
    assert service.worker is not None and backend.max_waiting == 7
    job = make_job()
    await service.start()
    try:
        await backend.submit(await backend.reserve(0), job, pcm())
        await asyncio.wait_for(service.wait_until_final(job), 5)
    finally:
        await service.stop()
    assert job.transcript is not None and job.transcript.text == "hello world"


async def test_an_api_node_is_a_redis_backend_and_no_worker() -> None:
    """QUEUE_BACKEND=redis: the service's backend is Redis, with no worker and no model to load."""
    settings = make_settings(
        queue_backend="redis", redis_url="redis://127.0.0.1:9/0", load_model_on_startup=True
    )
    service = build_service(settings, fake_manager(settings, FakeTranscriber()))
    assert isinstance(service.backend, RedisBackend)
    assert service.worker is None
    assert service.settings.load_model_on_startup is False
    assert service.status().max_queue_size == settings.max_task_queue_size
    await service.backend.close()


async def test_an_api_nodes_drain_has_nothing_of_its_own_to_wait_for() -> None:
    """An API node's drain fails no job and waits for none: the cluster's jobs are in Redis."""
    settings = make_settings(
        queue_backend="redis", redis_url="redis://127.0.0.1:9/0", shutdown_grace_s=600
    )
    service = build_service(settings, fake_manager(settings, FakeTranscriber()))
    await asyncio.wait_for(service.drain(pickup=True), 1)
    assert service.is_draining
    await service.backend.close()


def test_the_job_time_limit_grows_with_the_audio() -> None:
    """JOB_TIMEOUT_MIN_S plus JOB_TIMEOUT_FACTOR seconds per second of audio (defaults 120, 10)."""
    limits = worker_limits(make_settings())
    assert limits.time_limit_s(60) == 120 + 10 * 60
    assert worker_limits(make_settings(job_timeout_factor=0)).time_limit_s(600) == 120
