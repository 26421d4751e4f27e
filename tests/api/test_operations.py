"""Operations: liveness, readiness, Prometheus metrics and draining, on a fake transcriber."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from app.transcription.models import Placement
from tests.asgi_helpers import (
    eventually,
    scrape,
    upload,
    value,
    wait_final,
    wait_processing,
    wait_status,
)
from tests.conftest import FakeTranscriber, build_fake_app, wav_bytes
from tests.server_process import wait_until

ALLOWED_LABELS = {"surface", "task_type", "status", "model", "device", "reason", "le"}


async def status_of(client: AsyncTestClient[Litestar], task_id: str) -> str:
    """The task's status string."""
    return str((await client.get(f"/api/v1/tasks/{task_id}")).json()["status"])


# ---------------------------------------------------------------- health and readiness


async def test_healthz_answers_without_any_model() -> None:
    """/healthz is 200 even when no model exists: the process itself is alive."""
    app, _ = build_fake_app(FakeTranscriber(), available=set())
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_503_while_a_slow_model_load_runs() -> None:
    """While the start-up load blocks, /readyz says 503 "loading model"; then 200."""
    release = threading.Event()
    transcriber = FakeTranscriber()

    def slow_loader(path: Path, placement: Placement) -> FakeTranscriber:
        release.wait(10)
        return transcriber

    app, _ = build_fake_app(
        transcriber, loader=slow_loader, load_model_on_startup=True, cpu_fallback_model="base"
    )
    async with AsyncTestClient(app=app) as client:
        try:
            await eventually(lambda: _readiness_is(client, 503))
            loading = (await client.get("/readyz")).json()
            assert loading == {"ready": False, "reason": "loading model base"}
        finally:
            release.set()
        await eventually(lambda: _readiness_is(client, 200))
        assert (await client.get("/readyz")).json() == {"ready": True, "reason": None}


async def _readiness_is(client: AsyncTestClient[Litestar], status: int) -> bool:
    return (await client.get("/readyz")).status_code == status


async def test_readyz_is_503_with_the_reason_without_any_model() -> None:
    """No model on this machine: 503 and a reason that says so."""
    app, _ = build_fake_app(FakeTranscriber(), available=set())
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "reason": "no model is available on this server"}


async def test_readyz_turns_503_at_once_when_draining() -> None:
    """The moment shutdown begins, readiness fails so a balancer stops sending work."""
    app, service = build_fake_app(FakeTranscriber())
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/readyz")).status_code == 200
        service.begin_draining()
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the server is shutting down"


# ---------------------------------------------------------------- metrics


async def test_metrics_count_a_known_job() -> None:
    """One finished 2 s job moves jobs, audio seconds, timings and upload bytes by one job."""
    app, _ = build_fake_app(FakeTranscriber(), cpu_fallback_model="base")
    audio = wav_bytes(2.0)
    job = {"surface": "tasks", "task_type": "transcribe"}
    model = {"model": "base", "device": "cpu"}
    async with AsyncTestClient(app=app) as client:
        before = await scrape(client)
        task_id = (await upload(client, audio)).json()["task_id"]
        assert (await wait_final(client, task_id))["status"] == "finished"
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("whisper_api_jobs_total", status="finished", **job) == 1
    assert moved("whisper_api_jobs_total", status="failed", **job) == 0
    assert moved("whisper_api_audio_seconds_total", **job) == pytest.approx(2.0)
    assert moved("whisper_api_processing_seconds_count", **model) == 1
    assert value(after, "whisper_api_processing_seconds_sum", **model) > 0
    assert moved("whisper_api_real_time_factor_count", **model) == 1
    assert moved("whisper_api_upload_bytes_count", surface="tasks") == 1
    assert moved("whisper_api_upload_bytes_sum", surface="tasks") == len(audio)
    assert value(after, "whisper_api_model_loaded", **model) == 1
    assert ("whisper_api_model_load_seconds", frozenset(model.items())) in after
    assert value(after, "whisper_api_queue_depth") == 0
    assert value(after, "whisper_api_jobs_running") == 0
    assert value(after, "whisper_api_draining") == 0


async def test_metrics_count_rejected_uploads_by_reason() -> None:
    """Each kind of refused upload is counted once under its own reason."""
    transcriber = FakeTranscriber(gate=threading.Event())
    app, _ = build_fake_app(
        transcriber, max_model="tiny.en", max_upload_mb=1, max_task_queue_size=1
    )
    async with AsyncTestClient(app=app) as client:
        assert (await upload(client, b"", params={"language": "en"})).status_code == 400
        assert (await upload(client, b"\0" * (2 * 1024 * 1024))).status_code == 413
        assert (await upload(client, params={"language": "xx"})).status_code == 400
        assert (await upload(client, route="/api/v1/translate")).status_code == 400  # no_model
        running = (await upload(client, params={"language": "en"})).json()["task_id"]
        await wait_processing(client, running)
        assert (await upload(client, params={"language": "en"})).status_code == 200
        assert (await upload(client, params={"language": "en"})).status_code == 429
        samples = await scrape(client)
        assert value(samples, "whisper_api_queue_depth") == 1
        assert value(samples, "whisper_api_jobs_running") == 1
        assert transcriber.gate is not None
        transcriber.gate.set()
    for reason in ("bad_audio", "too_large", "bad_request", "no_model", "queue_full"):
        assert value(samples, "whisper_api_uploads_rejected_total", reason=reason) == 1, reason
    assert value(samples, "whisper_api_uploads_rejected_total", reason="shutting_down") == 0


async def test_metrics_tell_failed_from_cancelled_jobs() -> None:
    """An engine error counts as failed; a job its owner deleted counts as cancelled."""
    transcriber = FakeTranscriber(fail_with=RuntimeError("boom"))
    app, _ = build_fake_app(transcriber)
    async with AsyncTestClient(app=app) as client:
        failed = (await upload(client)).json()["task_id"]
        await wait_final(client, failed)
        transcriber.fail_with, transcriber.gate = None, threading.Event()
        running = (await upload(client)).json()["task_id"]
        waiting = (await upload(client)).json()["task_id"]
        await wait_processing(client, running)
        assert (await client.delete(f"/api/v1/tasks/{waiting}")).status_code == 200
        assert (await client.delete(f"/api/v1/tasks/{running}")).status_code == 200
        job = {"surface": "tasks", "task_type": "transcribe"}
        await eventually(
            lambda: _jobs_counted(client, status="cancelled", count=2, **job), limit_s=5
        )
        samples = await scrape(client)
    assert value(samples, "whisper_api_jobs_total", status="failed", **job) == 1
    assert value(samples, "whisper_api_jobs_total", status="finished", **job) == 0


async def _jobs_counted(client: AsyncTestClient[Litestar], count: int, **labels: str) -> bool:
    return value(await scrape(client), "whisper_api_jobs_total", **labels) == count


async def test_metric_labels_carry_no_identities() -> None:
    """Labels name only surface, type, status, model, device and reason: no ids, names, IPs."""
    app, _ = build_fake_app(FakeTranscriber())
    async with AsyncTestClient(app=app) as client:
        task_id = (await upload(client, name="secret-board-meeting.wav")).json()["task_id"]
        await wait_final(client, task_id)
        await upload(client, b"")
        text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
    assert task_id not in text and task_id[:8] not in text
    assert "secret-board-meeting" not in text
    assert "testclient" not in text and "127.0.0.1" not in text


async def test_each_app_has_its_own_registry() -> None:
    """Two apps in one process count their own jobs only (no global registry)."""
    first, _ = build_fake_app(FakeTranscriber())
    second, _ = build_fake_app(FakeTranscriber())
    job = {"surface": "tasks", "task_type": "transcribe", "status": "finished"}
    async with AsyncTestClient(app=first) as one, AsyncTestClient(app=second) as two:
        await wait_final(one, (await upload(one)).json()["task_id"])
        assert value(await scrape(one), "whisper_api_jobs_total", **job) == 1
        assert value(await scrape(two), "whisper_api_jobs_total", **job) == 0


# ---------------------------------------------------------------- draining


async def test_drain_finishes_the_running_job_and_fails_waiting_ones() -> None:
    """Draining: uploads get 503 + Retry-After, waiting jobs fail, the running one finishes."""
    gate = threading.Event()
    app, service = build_fake_app(FakeTranscriber(gate=gate), shutdown_grace_s=20)
    async with AsyncTestClient(app=app) as client:
        running = (await upload(client)).json()["task_id"]
        waiting = (await upload(client)).json()["task_id"]
        await wait_processing(client, running)
        drain = asyncio.create_task(service.drain(pickup=True))
        await wait_status(client, waiting, "failed")

        refused = await upload(client)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "20"
        assert "shutting down" in refused.json()["detail"]
        lost = (await client.get(f"/api/v1/tasks/{waiting}")).json()
        assert "upload it again" in lost["error"]
        assert await status_of(client, running) == "processing"
        assert not drain.done()

        gate.set()
        finished = await wait_final(client, running)  # this read is the result's pickup
        await asyncio.wait_for(drain, 5)
        samples = await scrape(client)
    assert finished["status"] == "finished" and finished["transcript"] == "hello world"
    job = {"surface": "tasks", "task_type": "transcribe"}
    assert value(samples, "whisper_api_jobs_total", status="finished", **job) == 1
    assert value(samples, "whisper_api_jobs_total", status="failed", **job) == 1
    assert value(samples, "whisper_api_uploads_rejected_total", reason="shutting_down") == 1
    assert value(samples, "whisper_api_draining") == 1


async def test_stop_waits_for_the_running_job_within_the_grace() -> None:
    """Shutting the app down lets a running job end instead of cancelling it at once."""
    gate = threading.Event()
    app, service = build_fake_app(FakeTranscriber(gate=gate), shutdown_grace_s=20)
    async with AsyncTestClient(app=app) as client:
        task_id = (await upload(client)).json()["task_id"]
        await wait_processing(client, task_id)
        job = await service.get(task_id)
        # The job may end only once the stop (leaving this block) has begun to drain.
        threading.Thread(target=lambda: _set_when(gate, lambda: service.is_draining)).start()
    assert job is not None
    assert job.status == "finished"


def _set_when(event: threading.Event, condition: Callable[[], bool]) -> None:
    """Set `event` once `condition` holds (polled from a thread)."""
    wait_until(condition, timeout_s=10)
    event.set()


@pytest.mark.parametrize("second_signal", [False, True], ids=["grace_over", "second_signal"])
async def test_a_job_still_running_when_the_grace_ends_fails_with_a_reason(
    second_signal: bool,
) -> None:
    """The grace ends (SHUTDOWN_GRACE_S passes, or a second signal calls end_grace within a
    tick): the drain itself stops the running job, which fails with why before the server goes."""
    gate = threading.Event()
    grace_s = 600 if second_signal else 0.2
    app, service = build_fake_app(FakeTranscriber(gate=gate), shutdown_grace_s=grace_s)
    try:
        async with AsyncTestClient(app=app) as client:
            task_id = (await upload(client)).json()["task_id"]
            await wait_processing(client, task_id)
            job = await service.get(task_id)
            drain = on_app_loop(client, service.drain)
            if second_signal:
                await eventually(lambda: service.is_draining)
                assert not drain.done()  # it waits for the running job, up to 600 s
                service.end_grace()
            await asyncio.wait_for(drain, 2 if second_signal else 5)
            assert job is not None and job.is_final  # answered before the server goes
            seen = (await client.get(f"/api/v1/tasks/{task_id}")).json()
    finally:
        gate.set()
    assert job.status == "failed" and seen["status"] == "failed"
    assert job.error is not None and "shut down while this job ran" in job.error


def on_app_loop(
    client: AsyncTestClient[Litestar], call: Callable[[], Coroutine[Any, Any, None]]
) -> asyncio.Future[None]:
    """Run `call` on the loop the app (and its worker) runs on, the test client's portal."""
    return asyncio.wrap_future(client.blocking_portal.start_task_soon(call))


def test_shutdown_grace_setting_is_validated() -> None:
    """SHUTDOWN_GRACE_S takes seconds (fractions allowed); a negative value is one clear line."""
    from app.config import SettingsError, load_settings

    assert load_settings({"SHUTDOWN_GRACE_S": "2.5"}).shutdown_grace_s == 2.5
    assert load_settings({}).shutdown_grace_s == 30
    with pytest.raises(SettingsError, match=r"SHUTDOWN_GRACE_S='-1' .* at least 0"):
        load_settings({"SHUTDOWN_GRACE_S": "-1"})
