"""The metrics the fleet's dashboard and alert rules read: queue waits, capacity, Redis, models."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.asgi_helpers import eventually, scrape, upload, value, wait_final
from tests.conftest import FakeTranscriber, build_fake_app, wav_bytes

MODEL = {"model": "base", "device": "cpu"}


async def test_a_finished_job_adds_its_queue_wait_by_surface() -> None:
    """A job that a worker started adds one queue wait under its surface, never negative."""
    app, _ = build_fake_app(FakeTranscriber(), cpu_fallback_model="base")
    async with AsyncTestClient(app=app) as client:
        task_id = (await upload(client, wav_bytes(1.0))).json()["task_id"]
        assert (await wait_final(client, task_id))["status"] == "finished"
        samples = await scrape(client)
    assert value(samples, "whisper_api_queue_wait_seconds_count", surface="tasks") == 1
    assert value(samples, "whisper_api_queue_wait_seconds_sum", surface="tasks") >= 0


async def test_scrape_reports_the_queue_bound_and_a_reachable_backend() -> None:
    """The queue's capacity is MAX_TASK_QUEUE_SIZE; the in-process queue always answers."""
    app, _ = build_fake_app(FakeTranscriber(), max_task_queue_size=7)
    async with AsyncTestClient(app=app) as client:
        samples = await scrape(client)
    assert value(samples, "whisper_api_queue_capacity") == 7
    assert value(samples, "whisper_api_backend_up") == 1


async def test_model_loads_and_unloads_are_counted_per_model() -> None:
    """A model loaded for a job and unloaded after it counts one load and one unload."""
    app, service = build_fake_app(
        FakeTranscriber(), cpu_fallback_model="base", unload_model_after_s=0
    )
    async with AsyncTestClient(app=app) as client:
        task_id = (await upload(client, wav_bytes(1.0))).json()["task_id"]
        assert (await wait_final(client, task_id))["status"] == "finished"
        await eventually(lambda: not service.models.loaded_models)
        samples = await scrape(client)
    assert value(samples, "whisper_api_model_loads_total", **MODEL) == 1
    assert value(samples, "whisper_api_model_unloads_total", **MODEL) == 1
